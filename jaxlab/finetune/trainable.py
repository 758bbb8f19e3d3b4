"""Which parameters train, and how fast: `optimizer.frozen`, `optimizer.lr_multipliers`
and LoRA's frozen base weights.

The optimizer becomes `optax.multi_transform` over two labels: 'frozen' parameters get
`optax.set_to_zero()` (no state), 'trained' ones the configured optimizer, which
multi_transform hands a masked tree, so its state (Adam's moments, momentum) holds the
trained parameters alone. A learning-rate multiplier scales a trained parameter's
update after the optimizer (decoupled weight decay included, as a smaller learning rate
would); a multiplier of 0 freezes. The train step also passes frozen parameters through
untouched (`keep_frozen`), so they stay bitwise equal, -0.0 included.
"""

import dataclasses
import math

import jax
import optax

from jaxlab.errors import UserError
from jaxlab.finetune import lora, patterns

FROZEN, TRAINED = 'frozen', 'trained'


@dataclasses.dataclass(frozen=True)
class Trainability:
  frozen: tuple = ()  # patterns
  multipliers: tuple = ()  # ((pattern, factor), ...)
  lora: bool = False  # base weights frozen; adapters (and init.reset's parameters) train
  reset: tuple = ()  # init.reset's patterns: fresh parameters, trained under LoRA too

  @classmethod
  def from_config(cls, config):
    return cls(frozen=patterns.parse(config.optimizer.frozen),
               multipliers=patterns.parse_multipliers(config.optimizer.lr_multipliers),
               lora=lora.enabled(config), reset=patterns.parse(config.init.reset))

  @property
  def active(self):
    """Whether anything differs from training every parameter at the base rate."""
    return bool(self.frozen or self.multipliers or self.lora)

  def is_frozen(self, name):
    if patterns.matches(name, self.frozen) or patterns.multiplier(name, self.multipliers) == 0:
      return True
    return self.lora and not lora.is_adapter(name) and not patterns.matches(name, self.reset)

  def labels(self, params):
    return patterns.map_with_names(lambda name, _: FROZEN if self.is_frozen(name) else TRAINED,
                                   params)

  def wrap(self, tx):
    """The optimizer `tx` restricted to the trained parameters, at their rates."""
    if not self.active:
      return tx
    if self.multipliers:
      tx = optax.chain(tx, optax.stateless(self._scale_by_multipliers))
    return optax.multi_transform({FROZEN: optax.set_to_zero(), TRAINED: tx}, self.labels)

  def _scale_by_multipliers(self, updates, params=None):
    del params
    # Under multi_transform the frozen leaves are masked out (no leaves), the paths kept.
    return patterns.map_with_names(
        lambda name, u: u * patterns.multiplier(name, self.multipliers), updates)

  def keep_frozen(self, old_params, new_params):
    """*compiled* new_params with every frozen parameter taken from old_params."""
    if not self.active:
      return new_params
    return patterns.map_with_names(lambda name, old, new: old if self.is_frozen(name) else new,
                                   old_params, new_params)

  def check(self, params):
    """Refuses patterns that match no parameter (a typo would silently train everything)
    and a run that would train nothing."""
    names = patterns.paths(params)
    unmatched = [(key, p) for key, ps in (('optimizer.frozen', self.frozen),
                                          ('optimizer.lr_multipliers',
                                           [p for p, _ in self.multipliers]))
                 for p in ps if not any(patterns.matches(n, (p,)) for n in names)]
    if unmatched:
      key, pattern = unmatched[0]
      raise UserError(f'--config.{key}: the pattern {pattern!r} matches no parameter of the '
                      f'model. Patterns are regular expressions matched in full against '
                      f'\'/\'-joined paths; this model\'s are: {_listed(names)}.')
    if all(self.is_frozen(n) for n in names):
      raise UserError('Every parameter is frozen (--config.optimizer.frozen, a learning-rate '
                      'multiplier of 0 or LoRA\'s frozen base weights), so training would change '
                      'nothing. Freeze fewer parameters, or give --config.lora.modules layers '
                      f'to adapt. The model\'s parameters: {_listed(names)}.')

  def counts(self, params):
    """(trained, total) numbers of parameter values."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    sizes = [(self.is_frozen(patterns.path_name(path)), math.prod(leaf.shape))
             for path, leaf in leaves]
    return sum(n for frozen, n in sizes if not frozen), sum(n for _, n in sizes)


def _listed(names, limit=12):
  return ', '.join(names[:limit]) + (f' ... ({len(names)} in all)' if len(names) > limit else '')
