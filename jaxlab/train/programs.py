"""The compiled training functions of a (task, model, mesh, optimizer): blocks of
train steps on the device-resident set or on streamed batches, and the step's FLOPs."""

import dataclasses
import functools

import jax
import numpy as np

from jaxlab.perf import flops
from jaxlab.errors import UserError
from jaxlab.inference import programs as inference_programs
from jaxlab.models import modeling
from jaxlab.finetune import trainable
from jaxlab.parallel import sharding
from jaxlab.train import distill, optimizer, state as state_lib, step as step_lib
from jaxlab.privacy import dp_sgd as privacy


class TrainPrograms:

  def __init__(self, config, task, mesh, num_steps, num_examples=None):
    self.config, self.task, self.mesh, self.num_steps = config, task, mesh, num_steps
    tx, learning_rate = optimizer.create(config.optimizer, num_steps)
    self.trainability = trainable.Trainability.from_config(config)
    tx = self.trainability.wrap(tx)  # frozen parameters: no update, no optimizer state
    model, self.layout = state_lib.layout(config, task, tx, mesh)
    self.trainability.check(self.layout.shapes.params)
    dp_sgd = privacy.DpSgd.from_config(config, num_examples) if config.privacy.enabled else None
    if dp_sgd is not None:
      _check_private(self.layout, config)
    distillation, self.teacher = distill.load(config, task, mesh)
    self.step_config = step_lib.StepConfig(
        model=model, task=task, tx=tx, learning_rate=learning_rate,
        grad_accum_steps=int(config.grad_accum_steps), remat=config.remat,
        batch_sharding=sharding.batch_sharding(mesh), privacy=dp_sgd, distill=distillation,
        trainability=self.trainability if self.trainability.active else None,
        scan=int(config.steps_per_loop) > 1)
    variables_layout = modeling.Layout(
        modeling.Variables(self.layout.shapes.params, self.layout.shapes.model_state),
        modeling.Variables(self.layout.shardings.params, self.layout.shardings.model_state),
        self.layout.param_table)
    self.inference = inference_programs.Programs(task, model, mesh, variables_layout)

  @property
  def tx(self):
    return self.step_config.tx

  @property
  def teacher_args(self):
    """The blocks' arguments after the data: the distillation teacher's Variables."""
    return () if self.teacher is None else (self.teacher,)

  def _teacher_shardings(self):
    return tuple(sharding.replicated(self.mesh) for _ in self.teacher_args)

  def resident_block(self, length, steps_per_epoch, batch_size, shapes=None):
    """The jitted `length`-step block over the device-resident set (state donated); its
    batches' features cut to `shapes` ({name: shape}: a length bucket's), if given."""
    replicated = sharding.replicated(self.mesh)
    by_example = sharding.batch_sharding(self.mesh)
    return jax.jit(
        functools.partial(step_lib.train_block, block_len=length, steps_per_epoch=steps_per_epoch,
                          batch_size=batch_size, shapes=shapes, step_config=self.step_config),
        in_shardings=(self.layout.shardings, replicated, by_example, *self._teacher_shardings()),
        out_shardings=(self.layout.shardings, replicated), donate_argnums=0)

  def streamed_block(self):
    """The jitted block over stacked streamed batches (its length from their shape)."""
    return jax.jit(
        functools.partial(step_lib.train_block_streamed, step_config=self.step_config),
        in_shardings=(self.layout.shardings, inference_programs.block_sharding(self.mesh),
                      *self._teacher_shardings()),
        out_shardings=(self.layout.shardings, sharding.replicated(self.mesh)),
        donate_argnums=0)

  def counts_block_flops(self):
    """Whether a traced block's model FLOPs per step are the step's: the step then holds
    nothing that step_flops leaves out (remat, micro-batches, DP-SGD, a teacher)."""
    plain = self.step_config
    return (plain.remat == 'none' and plain.grad_accum_steps == 1 and plain.privacy is None
            and plain.distill is None)

  def block_flops(self, traced_block, length):
    """Model FLOPs of one step, from a `length`-step block already traced for compiling
    (its jaxpr), so the step is not traced a second time; None where
    `counts_block_flops()` is False."""
    if not self.counts_block_flops():
      return None
    return flops.closed_jaxpr_flops(traced_block.jaxpr) / length

  def mean_block_flops(self, traced_blocks):
    """Model FLOPs per step over blocks of several shapes [(traced, length, steps)], weighted
    by the steps each trains; None where `counts_block_flops()` is False."""
    counted = [(self.block_flops(traced, length), steps) for traced, length, steps in traced_blocks]
    if any(per_step is None for per_step, _ in counted):
      return None
    return sum(per_step * steps for per_step, steps in counted) / sum(s for _, s in counted)

  def step_flops(self, batch_size):
    """Model FLOPs of one train step on the whole global batch (jaxlab.perf.flops): counted
    without remat and in one micro-batch, which change the work but not the model's
    (nor do DP-SGD's per-example gradients; a distillation teacher's forward pass is
    not the model's either)."""
    batch = {name: jax.ShapeDtypeStruct((batch_size, *shape), dtype)
             for name, (shape, dtype) in self.task.batch_spec().items()}
    plain = dataclasses.replace(self.step_config, remat='none', grad_accum_steps=1, privacy=None,
                                distill=None)
    return flops.traced_flops(functools.partial(step_lib.train_step, step_config=plain),
                              self.layout.shapes, batch)


def _check_private(layout, config):
  """Refuses DP-SGD where its accounting would not hold."""
  if jax.tree.leaves(layout.shapes.model_state):
    raise UserError(f'--config.privacy.enabled=True cannot train the model '
                    f'{config.model.name!r}: it keeps state computed across the batch (e.g. '
                    'BatchNorm statistics), so one example affects the others\' outputs past '
                    'the per-example clipping. Pick a model without batch statistics (e.g. '
                    'GroupNorm or LayerNorm variants, or the cnn and mlp models).')
  if jax.process_count() > 1:
    raise UserError('--config.privacy.enabled=True runs on one process (any number of its '
                    'devices): multi-process DP-SGD is not supported yet. Train on one host.')


def abstract_batches(task, length, batch_size, mesh, with_mask, spec=None):
  """ShapeDtypeStructs of `length` stacked streamed batches, for compiling ahead (of `spec`,
  a length bucket's, where given; else the task's batch_spec)."""
  block = inference_programs.block_sharding(mesh)
  spec = {name: (shape, np.dtype(dtype))
          for name, (shape, dtype) in (spec or task.batch_spec()).items()}
  if with_mask:
    spec['mask'] = ((), np.dtype(np.float32))
  return {name: jax.ShapeDtypeStruct((length, batch_size, *shape), dtype, sharding=block)
          for name, (shape, dtype) in spec.items()}
