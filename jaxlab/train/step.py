"""The pure, compiled functions of training.

`train_step(state, batch) -> (state, metrics)` is one optimizer step on a batch (a
dict of named arrays; the task says what it holds and what the loss is). A block runs
`block_len` steps inside one `lax.scan`, so Python never paces a small model: from
the device-resident training set (`train_block`, batches gathered on the device) or
from batches streamed in and stacked (`train_block_streamed`).
"""

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax

from jaxlab.inference import forward
from jaxlab.data import buckets, pipeline
from jaxlab.models import layers

REMAT_POLICIES = layers.REMAT_POLICIES


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """Everything static about a step: closed over, never traced."""
  model: Any  # modeling.ModelDef
  task: Any  # tasks.base.Task
  tx: Any  # optax.GradientTransformation
  learning_rate: Callable  # schedule: step -> lr
  grad_accum_steps: int = 1
  remat: str = 'none'
  batch_sharding: Any = None
  privacy: Any = None  # train.privacy.DpSgd: per-example clipped, noised gradients
  distill: Any = None  # train.distill.Distillation: the teacher's outputs in the loss
  trainability: Any = None  # finetune.trainable.Trainability: frozen parameters pass through
  scan: bool = True  # steps_per_loop > 1: a block's steps in a lax.scan (else the step alone)


def loss_fn(params, model_state, batch, key, step_config, teacher=None):
  batch = step_config.task.train_batch(batch, jax.random.fold_in(key, 2))
  args, kwargs = step_config.task.model_inputs(batch, jax.random.fold_in(key, 0), train=True)
  rngs = nnx.Rngs(dropout=jax.random.fold_in(key, 1))
  outputs, new_model_state = step_config.model.apply(params, model_state, args, kwargs,
                                                     train=True, rngs=rngs)
  loss, metrics = step_config.task.loss(outputs.astype(jnp.float32), batch)
  if step_config.distill is not None:  # teacher: its Variables, a non-trained argument
    loss, metrics = step_config.distill.loss(loss, metrics, outputs, teacher, args, kwargs, batch)
  return loss, (new_model_state, metrics)


def _grads(params, model_state, batch, key, step_config, teacher=None):
  loss_function = functools.partial(loss_fn, step_config=step_config, teacher=teacher)
  if step_config.remat != 'none':  # recompute activations in the backward pass
    loss_function = jax.checkpoint(loss_function, policy=REMAT_POLICIES[step_config.remat])
  if step_config.privacy is not None:
    return step_config.privacy.grads(loss_function, params, model_state, batch, key)
  return jax.value_and_grad(loss_function, has_aux=True)(params, model_state, batch, key)


def _accumulated_grads(params, model_state, batch, key, step_config, teacher=None):
  """Mean gradient over `grad_accum_steps` micro-batches, one at a time in memory."""
  n = step_config.grad_accum_steps
  if n == 1:
    return _grads(params, model_state, batch, key, step_config, teacher)
  micro_batches = jax.tree.map(lambda a: a.reshape(n, -1, *a.shape[1:]), batch)

  def body(carry, micro):
    grad_sum, loss_sum, metric_sum, state = carry
    index, micro_batch = micro
    (loss, (state, metrics)), grads = _grads(params, state, micro_batch,
                                             jax.random.fold_in(key, index), step_config, teacher)
    return (jax.tree.map(jnp.add, grad_sum, grads), loss_sum + loss,
            jax.tree.map(jnp.add, metric_sum, metrics), state), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  metric_zeros = jax.tree.map(
      lambda s: jnp.zeros(s.shape, s.dtype),
      jax.eval_shape(lambda: _grads(params, model_state, jax.tree.map(lambda a: a[0],
                                                                      micro_batches),
                                    key, step_config, teacher)[0][1][1]))
  (grads, loss, metrics, model_state), _ = lax.scan(
      body, (zeros, 0.0, metric_zeros, model_state), (jnp.arange(n), micro_batches))
  mean = lambda tree: jax.tree.map(lambda x: x / n, tree)
  return (loss / n, (model_state, mean(metrics))), mean(grads)


def global_norm(tree):
  # Plain sums of squares: optax.tree.norm cost ~60 us/step on the small MLP on XLA:CPU
  # (a third of the step); this fuses into ~30. (A concatenate + dot was no faster and
  # sometimes made XLA:CPU's threads fight over the 2 cores, 10x slower.)
  return jnp.sqrt(sum(jnp.sum(jnp.square(leaf.astype(jnp.float32)))
                      for leaf in jax.tree.leaves(tree)))


def train_step(state, batch, step_config, teacher=None):
  key = jax.random.fold_in(state.rng, state.step)
  (loss, (model_state, task_metrics)), grads = _accumulated_grads(
      state.params, state.model_state, batch, key, step_config, teacher)
  updates, opt_state = step_config.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  if step_config.trainability is not None:  # bitwise unchanged, -0.0 + 0.0 included
    params = step_config.trainability.keep_frozen(state.params, params)
  metrics = {'loss': loss, **task_metrics, 'grad_norm': global_norm(grads),
             'learning_rate': step_config.learning_rate(state.step)}
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                            model_state=model_state)
  return new_state, metrics


def train_block(state, epoch_perms_KxN, data, teacher=None, *, block_len, steps_per_epoch,
                batch_size, step_config, shapes=None):
  """`block_len` train steps in one scan; step t's batch is gathered from the
  device-resident `data` (a dict of arrays) at its rows of the epoch permutations (or,
  under DP-SGD, at the rows its own sampling draws), its features cut to `shapes` (a
  length bucket's: only padding is cut) where given."""
  indices_SxB = pipeline.block_indices(epoch_perms_KxN, state.step, block_len,
                                       steps_per_epoch, batch_size)

  def body(state, indices_B):
    extra = {}
    if step_config.privacy is not None:
      key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), 4)
      indices_B, extra['mask'], extra['dp_dropped'] = step_config.privacy.sample(key)
    batch = {k: v[indices_B] for k, v in data.items()}
    if shapes:
      batch = buckets.crop(batch, shapes, lead=1)
    batch = forward.constrain(batch, step_config.batch_sharding)
    return train_step(state, {**batch, **extra}, step_config, teacher)

  return _scan(body, state, indices_SxB, step_config)


def train_block_streamed(state, batches, teacher=None, *, step_config):
  """One train step per leading index of `batches` (a dict of [block_len, batch, ...])."""
  def body(state, batch):
    return train_step(state, forward.constrain(batch, step_config.batch_sharding), step_config,
                      teacher)

  return _scan(body, state, batches, step_config)


def _scan(body, state, xs, step_config):
  """lax.scan of `body` over the leading axis of `xs`; with steps_per_loop=1, the one step
  without a loop around it: XLA:CPU runs some convolution models many times slower inside
  a loop (FCOS on a ResNet-18: 0.8 s a step alone, 14 s in a one-step scan)."""
  if step_config.scan:
    return lax.scan(body, state, xs)
  state, metrics = body(state, jax.tree.map(lambda a: a[0], xs))
  # As scan stacks them: as arrays (a constant learning rate is a Python float here).
  return state, jax.tree.map(lambda a: jnp.asarray(a)[None], metrics)
