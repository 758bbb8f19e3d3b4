"""The pure, compiled functions of training and evaluation.

`train_step(state, images, labels) -> (state, metrics)` is one optimizer step;
`train_block` runs `block_len` of them inside one `lax.scan`, drawing each batch
from the device-resident data set, so Python never paces a small model.
"""

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax

from jaxlab.data import augment, pipeline

REMAT_POLICIES = {
    'none': None,
    'full': jax.checkpoint_policies.nothing_saveable,
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """Everything static about a step: closed over, never traced."""
  model: Any  # state.ModelDef
  tx: Any  # optax.GradientTransformation
  learning_rate: Callable  # schedule: step -> lr
  pixel_max: float
  compute_dtype: Any
  augment: tuple = ()  # names from jaxlab.data.augment
  grad_accum_steps: int = 1
  remat: str = 'none'
  batch_sharding: Any = None


def preprocess(images_uint8, step_config, key=None):
  x = images_uint8.astype(jnp.float32) / step_config.pixel_max
  if key is not None and step_config.augment:
    x = augment.apply(step_config.augment, x, key)
  return x.astype(step_config.compute_dtype)


def loss_fn(params, model_state, images, labels, key, step_config):
  x = preprocess(images, step_config, jax.random.fold_in(key, 0))
  rngs = nnx.Rngs(dropout=jax.random.fold_in(key, 1))
  logits, new_model_state = step_config.model.apply(params, model_state, x, train=True, rngs=rngs)
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  accuracy = (jnp.argmax(logits, -1) == labels).mean()
  return loss, (new_model_state, accuracy)


def _grads(params, model_state, images, labels, key, step_config):
  loss_function = functools.partial(loss_fn, step_config=step_config)
  if step_config.remat != 'none':  # recompute activations in the backward pass
    loss_function = jax.checkpoint(loss_function, policy=REMAT_POLICIES[step_config.remat])
  return jax.value_and_grad(loss_function, has_aux=True)(
      params, model_state, images, labels, key)


def _accumulated_grads(params, model_state, images, labels, key, step_config):
  """Mean gradient over `grad_accum_steps` micro-batches, one at a time in memory."""
  n = step_config.grad_accum_steps
  if n == 1:
    return _grads(params, model_state, images, labels, key, step_config)
  micro_images = images.reshape(n, -1, *images.shape[1:])
  micro_labels = labels.reshape(n, -1)

  def body(carry, micro):
    grad_sum, loss_sum, acc_sum, state = carry
    index, x, y = micro
    (loss, (state, acc)), grads = _grads(params, state, x, y, jax.random.fold_in(key, index),
                                         step_config)
    return (jax.tree.map(jnp.add, grad_sum, grads), loss_sum + loss, acc_sum + acc, state), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  (grads, loss, acc, model_state), _ = lax.scan(
      body, (zeros, 0.0, 0.0, model_state), (jnp.arange(n), micro_images, micro_labels))
  return (loss / n, (model_state, acc / n)), jax.tree.map(lambda g: g / n, grads)


def global_norm(tree):
  # Plain sums of squares: optax.tree.norm cost ~60 us/step on the small MLP on XLA:CPU
  # (a third of the step); this fuses into ~30. (A concatenate + dot was no faster and
  # sometimes made XLA:CPU's threads fight over the 2 cores, 10x slower.)
  return jnp.sqrt(sum(jnp.sum(jnp.square(leaf.astype(jnp.float32)))
                      for leaf in jax.tree.leaves(tree)))


def train_step(state, images, labels, step_config):
  key = jax.random.fold_in(state.rng, state.step)
  (loss, (model_state, accuracy)), grads = _accumulated_grads(
      state.params, state.model_state, images, labels, key, step_config)
  updates, opt_state = step_config.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {'loss': loss, 'accuracy': accuracy, 'grad_norm': global_norm(grads),
             'learning_rate': step_config.learning_rate(state.step)}
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                            model_state=model_state)
  return new_state, metrics


def train_block(state, epoch_perms_KxN, images, labels, *, block_len, steps_per_epoch,
                batch_size, step_config):
  """`block_len` train steps in one scan; batch t is drawn from the epoch permutations."""
  indices_SxB = pipeline.block_indices(epoch_perms_KxN, state.step, block_len,
                                       steps_per_epoch, batch_size)

  def body(state, indices_B):
    batch_images = images[indices_B]
    batch_labels = labels[indices_B]
    if step_config.batch_sharding is not None:
      batch_images = lax.with_sharding_constraint(batch_images, step_config.batch_sharding)
      batch_labels = lax.with_sharding_constraint(batch_labels, step_config.batch_sharding)
    return train_step(state, batch_images, batch_labels, step_config)

  return lax.scan(body, state, indices_SxB)


def predict_logits(state, images_NxHxWxC, *, eval_batch_size, step_config):
  """Logits for a padded set of images, `eval_batch_size` at a time (N divisible by it)."""
  batches = images_NxHxWxC.reshape(-1, eval_batch_size, *images_NxHxWxC.shape[1:])

  def one_batch(batch):
    if step_config.batch_sharding is not None:
      batch = lax.with_sharding_constraint(batch, step_config.batch_sharding)
    logits, _ = step_config.model.apply(state.params, state.model_state,
                                        preprocess(batch, step_config), train=False)
    return logits.astype(jnp.float32)

  logits = lax.map(one_batch, batches)
  return logits.reshape(-1, logits.shape[-1])


def eval_outputs(state, images, labels, *, eval_batch_size, step_config):
  """Per-example predicted class and loss: the host turns these into metrics."""
  logits = predict_logits(state, images, eval_batch_size=eval_batch_size,
                          step_config=step_config)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.argmax(logits, -1), losses
