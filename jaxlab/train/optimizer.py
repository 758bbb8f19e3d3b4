"""Optax optimizer and learning-rate schedule from `config.optimizer`."""

import jax
import optax

from jaxlab import config as config_lib
from jaxlab.errors import UserError


def schedule(opt_config, num_steps):
  base = opt_config.learning_rate
  name = opt_config.schedule
  if name == 'constant':
    return optax.constant_schedule(base)
  if name == 'warmup_cosine':
    warmup = config_lib.warmup_steps(opt_config, num_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=base, warmup_steps=warmup,
        decay_steps=max(num_steps, warmup + 1), end_value=base * opt_config.end_factor)
  raise UserError(f'Unknown schedule {name!r} in --config.optimizer.schedule; '
                  'use "constant" or "warmup_cosine".')


def _decay_mask(params):
  # Weight decay on kernels only: decaying biases and norm scales hurts and is not standard.
  return jax.tree.map(lambda p: p.ndim > 1, params)


def create(opt_config, num_steps):
  """Returns (optax transformation, learning-rate schedule)."""
  lr = schedule(opt_config, num_steps)
  name = opt_config.name
  weight_decay = opt_config.weight_decay
  b1, b2, eps = opt_config.b1, opt_config.b2, opt_config.eps
  if name == 'adam':
    core = optax.adam(lr, b1=b1, b2=b2, eps=eps)
  elif name == 'adamw':
    core = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=_decay_mask)
    weight_decay = 0.0  # applied by adamw itself, decoupled
  elif name == 'sgd':
    core = optax.sgd(lr, momentum=opt_config.momentum or None,
                     nesterov=opt_config.nesterov)
  else:
    raise UserError(f'Unknown optimizer {name!r} in --config.optimizer.name; '
                    'use "adam", "adamw" or "sgd".')
  parts = []
  if opt_config.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(opt_config.grad_clip_norm))
  if weight_decay:
    parts.append(optax.add_decayed_weights(weight_decay, mask=_decay_mask))
  return optax.chain(*parts, core), lr
