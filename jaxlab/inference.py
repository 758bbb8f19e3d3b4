"""Loading a trained run from its workdir alone: config, data info and a checkpoint."""

import dataclasses
from typing import Any

import ml_collections

from jaxlab import checkpoint as checkpoint_lib
from jaxlab import config as config_lib
from jaxlab import storage
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.train import session as session_lib


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  config: Any
  info: Any
  model: Any  # session.Model
  state: Any
  step: int


def resolve_step(checkpointer, which, workdir):
  steps = checkpointer.all_steps()
  if not steps:
    raise UserError(f'No checkpoint in {workdir}/checkpoints: train first with `jaxlab train '
                    f'--config=... --workdir={workdir}`.')
  if which == 'latest':
    return checkpointer.latest_step()
  if which == 'best':
    return checkpointer.best_step() or checkpointer.latest_step()
  if str(which).isdigit() and int(which) in steps:
    return int(which)
  raise UserError(f'--checkpoint={which} matches no checkpoint in {workdir}; use best, latest '
                  f'or one of the saved steps {steps}.')


def load(workdir, which='best'):
  """The model and state of `which` checkpoint, on a data-parallel mesh of this machine."""
  workdir = storage.absolute(workdir)
  config = config_lib.load_from_workdir(workdir)
  info = session_lib.load_dataset_info(workdir)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, best_metric=config.checkpoint.best_metric, best_mode=config.checkpoint.best_mode,
      read_only=True)
  step = resolve_step(checkpointer, which, workdir)
  # A checkpoint from any mesh restores onto this machine's devices, data-parallel.
  mesh = mesh_lib.create(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)))
  try:
    model, state = _restore(checkpointer, step, config, info, mesh)
  except checkpoint_lib.DamagedCheckpoint as error:
    intact = _intact_steps(checkpointer, [s for s in checkpointer.all_steps() if s != step],
                           config, info, mesh)
    choice = (f'Intact checkpoints: {", ".join(map(str, intact))}; pass --checkpoint=STEP with '
              'one of them' if intact else 'No other checkpoint is intact; retrain')
    raise UserError(f'Cannot use {workdir}: {error}. {choice} (`jaxlab train` on this workdir '
                    'sets damaged steps aside and resumes from the newest intact one).') from None
  finally:
    checkpointer.close()
  return TrainedRun(config, info, model, state, step)


def _restore(checkpointer, step, config, info, mesh):
  meta = checkpointer.restore_meta(step)
  model = session_lib.Model.create(config, info, meta['steps_per_epoch'], mesh)
  state, _ = checkpointer.restore(step, model.layout)
  return model, state


def _intact_steps(checkpointer, steps, config, info, mesh):
  """The steps among `steps` whose checkpoints restore and verify."""
  intact = []
  for step in sorted(steps):
    try:
      _restore(checkpointer, step, config, info, mesh)
      intact.append(step)
    except checkpoint_lib.DamagedCheckpoint:
      pass
  return intact
