"""The compiled training functions of a (task, model, mesh, optimizer): blocks of
train steps on the device-resident set or on streamed batches, and the step's FLOPs."""

import dataclasses
import functools

import jax
import numpy as np

from jaxlab import flops
from jaxlab import programs as inference_programs
from jaxlab import modeling
from jaxlab.parallel import sharding
from jaxlab.train import optimizer, state as state_lib, step as step_lib


class TrainPrograms:

  def __init__(self, config, task, mesh, num_steps):
    self.config, self.task, self.mesh, self.num_steps = config, task, mesh, num_steps
    tx, learning_rate = optimizer.create(config.optimizer, num_steps)
    model, self.layout = state_lib.layout(config, task, tx, mesh)
    self.step_config = step_lib.StepConfig(
        model=model, task=task, tx=tx, learning_rate=learning_rate,
        grad_accum_steps=int(config.grad_accum_steps), remat=config.remat,
        batch_sharding=sharding.batch_sharding(mesh))
    variables_layout = modeling.Layout(
        modeling.Variables(self.layout.shapes.params, self.layout.shapes.model_state),
        modeling.Variables(self.layout.shardings.params, self.layout.shardings.model_state),
        self.layout.param_table)
    self.inference = inference_programs.Programs(task, model, mesh, variables_layout)

  @property
  def tx(self):
    return self.step_config.tx

  def resident_block(self, length, steps_per_epoch, batch_size):
    """The jitted `length`-step block over the device-resident set (state donated)."""
    replicated = sharding.replicated(self.mesh)
    by_example = sharding.batch_sharding(self.mesh)
    return jax.jit(
        functools.partial(step_lib.train_block, block_len=length, steps_per_epoch=steps_per_epoch,
                          batch_size=batch_size, step_config=self.step_config),
        in_shardings=(self.layout.shardings, replicated, by_example),
        out_shardings=(self.layout.shardings, replicated), donate_argnums=0)

  def streamed_block(self):
    """The jitted block over stacked streamed batches (its length from their shape)."""
    return jax.jit(
        functools.partial(step_lib.train_block_streamed, step_config=self.step_config),
        in_shardings=(self.layout.shardings, inference_programs.block_sharding(self.mesh)),
        out_shardings=(self.layout.shardings, sharding.replicated(self.mesh)),
        donate_argnums=0)

  def step_flops(self, batch_size):
    """Model FLOPs of one train step on the whole global batch (jaxlab.flops): counted
    without remat and in one micro-batch, which change the work but not the model's."""
    batch = {name: jax.ShapeDtypeStruct((batch_size, *shape), dtype)
             for name, (shape, dtype) in self.task.batch_spec().items()}
    plain = dataclasses.replace(self.step_config, remat='none', grad_accum_steps=1)
    return flops.traced_flops(functools.partial(step_lib.train_step, step_config=plain),
                              self.layout.shapes, batch)


def abstract_batches(task, length, batch_size, mesh, with_mask):
  """ShapeDtypeStructs of `length` stacked streamed batches, for compiling ahead."""
  block = inference_programs.block_sharding(mesh)
  spec = {name: (shape, np.dtype(dtype)) for name, (shape, dtype) in task.batch_spec().items()}
  if with_mask:
    spec['mask'] = ((), np.dtype(np.float32))
  return {name: jax.ShapeDtypeStruct((length, batch_size, *shape), dtype, sharding=block)
          for name, (shape, dtype) in spec.items()}
