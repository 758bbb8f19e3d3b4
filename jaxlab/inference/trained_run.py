"""Loading a trained model from its workdir alone: config, data info, task, and the
parameters and model state of one checkpoint (never the optimizer state). Imports
nothing from training."""

import dataclasses
import json
from typing import Any

import ml_collections

from jaxlab.checkpoint import manager as checkpoint_lib
from jaxlab import config as config_lib
from jaxlab import data as data_lib
from jaxlab import storage, tasks
from jaxlab.models import modeling
from jaxlab.inference import programs as programs_lib
from jaxlab.workdir import files as workdir_files
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  config: Any
  info: Any  # data.DatasetInfo
  task: Any
  programs: Any  # programs.Programs
  variables: Any  # modeling.Variables
  step: int
  workdir: str
  quantization: Any = None  # quantization.json of an int8 model, None for float


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
  """The model of `which` checkpoint, on a data-parallel mesh of this machine (an int8
  model where the workdir is one that `jaxlab quantize` wrote)."""
  workdir = storage.absolute(workdir)
  config = config_lib.load_from_workdir(workdir)
  info = data_lib.load_info(workdir)
  task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config), workdir=workdir)
  # A checkpoint from any mesh restores onto this machine's devices, data-parallel.
  mesh = mesh_lib.create(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)))
  quantization = _quantization(workdir)
  if quantization:
    from jaxlab.inference import quantized  # pylint: disable=g-import-not-at-top
    model, layout = quantized.variables_layout(config, task, mesh, quantization['mode'])
  else:
    model, layout = modeling.variables_layout(config, task, mesh)
  programs = programs_lib.Programs(task, model, mesh, layout)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, best_metric=config.checkpoint.best_metric, best_mode=config.checkpoint.best_mode,
      read_only=True)
  step = resolve_step(checkpointer, which, workdir)
  try:
    variables, _ = checkpointer.restore_variables(step, layout)
  except checkpoint_lib.DamagedCheckpoint as error:
    intact = _intact_steps(checkpointer, [s for s in checkpointer.all_steps() if s != step],
                           layout)
    choice = (f'Intact checkpoints: {", ".join(map(str, intact))}; pass --checkpoint=STEP with '
              'one of them' if intact else 'No other checkpoint is intact; retrain')
    raise UserError(f'Cannot use {workdir}: {error}. {choice} (`jaxlab train` on this workdir '
                    'sets damaged steps aside and resumes from the newest intact one).') from None
  finally:
    checkpointer.close()
  return TrainedRun(config, info, task, programs, variables, step, workdir, quantization)


def _quantization(workdir):
  """The quantization.json of a workdir that `jaxlab quantize` wrote, else None."""
  path = workdir_files.path(workdir, workdir_files.QUANTIZATION)
  return json.loads(storage.read_text(path)) if storage.exists(path) else None


def _intact_steps(checkpointer, steps, layout):
  """The steps among `steps` whose checkpoints restore and verify."""
  intact = []
  for step in sorted(steps):
    try:
      checkpointer.restore_variables(step, layout)
      intact.append(step)
    except checkpoint_lib.DamagedCheckpoint:
      pass
  return intact
