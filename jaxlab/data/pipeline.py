"""Device-resident data: placed on the devices once, shuffled and batched there.

The order of the training examples is `jaxlab.data.order`'s, a function of (seed,
epoch) alone: each epoch's rows (a permutation) are computed on the host and uploaded,
and step t gathers the slice of its epoch's rows at position t mod steps_per_epoch. A
resumed run therefore sees exactly the batches the uninterrupted run would, and a
streamed run the same batches as a device-resident one.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxlab.errors import UserError


def steps_per_epoch(num_examples, batch_size):
  return num_examples // batch_size  # the last partial batch is dropped


def training_steps_per_epoch(num_examples, batch_size):
  """steps_per_epoch of a training set, which must hold at least one batch."""
  steps = steps_per_epoch(num_examples, batch_size)
  if steps == 0:
    raise UserError(f'--config.data.batch_size={batch_size} is larger than the '
                    f'{num_examples} training examples; lower it.')
  return steps


def epochs_spanned(block_len, steps_per_epoch):
  """How many epochs a block of consecutive steps can touch, at most."""
  return (block_len - 1 + steps_per_epoch - 1) // steps_per_epoch + 1


def block_indices(epoch_perms_KxN, first_step, block_len, steps_per_epoch, batch_size):
  """Example indices [block_len, batch] for the steps first_step, first_step+1, ..."""
  steps = first_step + jnp.arange(block_len)
  which_epoch = steps // steps_per_epoch - first_step // steps_per_epoch
  starts = (steps % steps_per_epoch) * batch_size
  take = lambda k, start: lax.dynamic_slice(epoch_perms_KxN[k], (start,), (batch_size,))
  return jax.vmap(take)(which_epoch, starts)


class EpochPermutations:
  """Uploads each epoch's rows (`order.epoch_rows`, a permutation) once, and hands a block
  its stack of the epochs it spans (a fixed count, so the block compiles once)."""

  def __init__(self, epoch_order, sharding):
    self._order, self._spe = epoch_order, epoch_order.steps_per_epoch
    self._sharding = sharding
    self._cache = {}
    self._stacked = (None, None)

  def _get(self, epoch):
    if epoch not in self._cache:
      self._cache = {e: p for e, p in self._cache.items() if e >= epoch - 1}
      self._cache[epoch] = place(self._order.epoch_rows(epoch), self._sharding)
    return self._cache[epoch]

  def for_block(self, first_step, block_len):
    first_epoch = first_step // self._spe
    count = epochs_spanned(block_len, self._spe)
    key = (first_epoch, count)
    if self._stacked[0] != key:  # consecutive blocks of one epoch share the stack
      self._stacked = (key, jnp.stack([self._get(first_epoch + k) for k in range(count)]))
    return self._stacked[1]


def place(array, sharding):
  """Puts a host array onto the devices with `sharding` (works across processes)."""
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def pad_to_multiple(array, multiple):
  """Pads the first axis with zeros up to a multiple (for fixed-size eval batches)."""
  remainder = (-len(array)) % multiple
  if not remainder:
    return array
  return np.concatenate([array, np.zeros((remainder, *array.shape[1:]), array.dtype)])


def local_row_range(sharding, num_rows):
  """(start, stop): the rows of a `num_rows`-row array, split by `sharding` along its
  first axis, that this process's devices hold. The whole range where the local
  devices' rows are not contiguous (then this process reads everything)."""
  slices = [index[0] for index in sharding.addressable_devices_indices_map((num_rows,)).values()]
  starts = [s.start or 0 for s in slices]
  stops = [num_rows if s.stop is None else s.stop for s in slices]
  start, stop = min(starts), max(stops)
  covered = sum(b - a for a, b in set(zip(starts, stops)))
  return (start, stop) if covered == stop - start else (0, num_rows)


def place_rows(local, offset, num_rows, sharding):
  """A `num_rows`-row global array from this process's rows [offset, offset + len(local));
  rows past the data (padding up to a multiple of the shards) are zeros."""
  local = np.asarray(local)

  def rows(index):
    start = (index[0].start or 0) - offset
    stop = (num_rows if index[0].stop is None else index[0].stop) - offset
    block = local[max(start, 0):max(min(stop, len(local)), 0)]
    missing = (stop - start) - len(block)
    if missing:
      block = np.concatenate([block, np.zeros((missing, *local.shape[1:]), local.dtype)])
    return block[(slice(None),) + tuple(index[1:])]

  return jax.make_array_from_callback((num_rows, *local.shape[1:]), sharding, rows)
