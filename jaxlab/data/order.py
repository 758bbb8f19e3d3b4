"""The order of the training examples: a pure function of (seed, epoch), on the host.

Both placements use it. The device-resident path uploads each epoch's permutation and
gathers its batches on the device; the streaming path reads the same rows from its
source. So the two feed identical batches, and a resumed run sees exactly the batches
an uninterrupted one would. Step t takes rows [(t mod S) * B, (t mod S + 1) * B) of
epoch t // S's permutation (S steps per epoch, B the global batch; the last partial
batch of an epoch is dropped).
"""

import functools

import numpy as np

_STREAM = 0x6A61786C  # 'jaxl': keeps this stream apart from other uses of the seed


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed, epoch, num_examples):
  """int32 permutation of range(num_examples) for one epoch (read-only, cached)."""
  sequence = np.random.SeedSequence([int(seed) & (2**64 - 1), _STREAM, int(epoch)])
  order = np.random.Generator(np.random.PCG64(sequence)).permutation(num_examples)
  order = order.astype(np.int32)
  order.flags.writeable = False
  return order


def batch_rows(seed, step, steps_per_epoch, batch_size, num_examples):
  """The global example indices of step `step`'s batch, in batch order."""
  epoch, position = divmod(int(step), steps_per_epoch)
  start = position * batch_size
  return epoch_permutation(seed, epoch, num_examples)[start:start + batch_size]
