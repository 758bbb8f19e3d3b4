"""Where a run starts: the newest intact checkpoint, or a fresh state."""


import jax
import numpy as np

from jaxlab.checkpoint import manager as checkpoint_lib
from jaxlab.finetune import init_from
from jaxlab.train import state as state_lib
from jaxlab.runtime import messages


def restore_or_init(config, task, programs, checkpointer, init_params=None):
  """(state, start step, the input's saved position or None). Damaged steps are set
  aside with a warning, so a run always resumes from verified data."""
  chief = jax.process_index() == 0
  for step in sorted(checkpointer.all_steps(), reverse=True):
    try:
      state, _, position = checkpointer.restore(step, programs.layout)
    except checkpoint_lib.DamagedCheckpoint as error:
      moved = checkpointer.set_aside(step)
      if chief:
        messages.warn(f'jaxlab: warning: {error}; moved it to {moved} and resuming from the newest '
              'intact checkpoint instead.')
      continue
    if chief:
      messages.say(f'Resuming from the checkpoint at step {step}.')
    return state, step, position
  state = state_lib.create(config, task, programs.tx, programs.layout)
  if init_from.source_workdir(config):  # fine-tuning: another run's arrays, a fresh optimizer
    state, plan, step = init_from.load(config, state, programs.layout)
    if chief:
      messages.say(init_from.describe(plan, step, init_from.source_workdir(config)))
  elif init_from.backbone_workdir(config):  # a detector's ResNet from a classifier's run
    state, plan, step = init_from.load(config, state, programs.layout, under=init_from.BACKBONE)
    if chief:
      messages.say(init_from.describe(plan, step, init_from.backbone_workdir(config)))
  if init_params is not None:
    params = jax.device_put(jax.tree.map(np.asarray, init_params),
                            programs.layout.shardings.params)
    state = state.replace(params=params)
  return state, 0, None
