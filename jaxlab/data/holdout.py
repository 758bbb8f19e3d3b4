"""The test split of your own files when they come without one: data.validation_split.

As Keras's `validation_split` does: the examples are shuffled with a seed and the last
`int(fraction * n)` are held out. Not stratified (Keras does not stratify either): with
few examples of a class, the held-out share of that class varies. The seed is
data.split_seed, not the run's `seed`, so runs that vary `seed` share one test set.
"""

import numpy as np

from jaxlab.errors import UserError

DEFAULT_FRACTION = 0.2


def fraction(data_config, has_test_split, what):
  """The share to hold out: None where the data has its own test split."""
  if has_test_split:
    if data_config.validation_split is not None:
      raise UserError(f'{what} has its own test split, so --config.data.validation_split='
                      f'{data_config.validation_split} has nothing to hold out from; drop it, '
                      'or remove the test split to hold out a share of the training data.')
    return None
  if data_config.validation_split is None:
    return DEFAULT_FRACTION
  return float(data_config.validation_split)


def split(count, share, seed, what):
  """(training indices, held-out indices), each sorted: disjoint, covering 0..count-1,
  a function of (count, share, seed) alone."""
  held = int(share * count)
  if held < 1 or held >= count:
    raise UserError(f'{what} has {count} examples: --config.data.validation_split={share:g} '
                    f'holds out {held} of them, leaving {count - held} to train on. Both need '
                    'at least one; add examples, or change validation_split.')
  order = np.random.default_rng(seed).permutation(count)
  return np.sort(order[:-held]), np.sort(order[-held:])
