"""The order of the training examples: a pure function of (seed, epoch), on the host.

Both placements use it. The device-resident path uploads each epoch's permutation and
gathers its batches on the device; the streaming path reads the same rows from its
source. So the two feed identical batches, and a resumed run sees exactly the batches
an uninterrupted one would. Step t takes rows [(t mod S) * B, (t mod S + 1) * B) of
epoch t // S's permutation (S steps per epoch, B the global batch; the last partial
batch of an epoch is dropped).

With length buckets (jaxlab.data.buckets), `BucketedOrder` arranges each epoch's kept
rows so that every batch, and every block of steps_per_loop steps, is of one bucket;
that order is a pure function of (seed, epoch) too. `Order` objects carry either, and
the placements ask them for an epoch's rows and a block's bucket.
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


def block_span(step, steps_per_loop, num_steps):
  """[start, end) of the block (one compiled call) holding `step`: blocks end at multiples of
  steps_per_loop from step 0, the last at num_steps (the trainer's blocks)."""
  start = int(step) // steps_per_loop * steps_per_loop
  return start, min(start + steps_per_loop, num_steps)


class Order:
  """The order of a run's training rows: step t's are `batch_rows(seed, t, ...)`, and every
  block has the set's one shape (bucket None)."""

  def __init__(self, seed, num_examples, batch_size, steps_per_epoch):
    self.seed, self.num_examples = int(seed), int(num_examples)
    self.batch_size, self.steps_per_epoch = int(batch_size), int(steps_per_epoch)

  def epoch_rows(self, epoch):
    """The epoch's rows [num_examples]: step t of the epoch takes [t * B, (t + 1) * B)."""
    return epoch_permutation(self.seed, epoch, self.num_examples)

  def batch_rows(self, step):
    epoch, position = divmod(int(step), self.steps_per_epoch)
    return self.epoch_rows(epoch)[position * self.batch_size:(position + 1) * self.batch_size]

  def block_bucket(self, start, end):  # pylint: disable=unused-argument
    """The bucket whose shapes the block of steps [start, end) has (None: the set's)."""
    return None

  def describe(self):
    """What a stream's resume state must match (JSON-able)."""
    return dict(seed=self.seed, batch_size=self.batch_size,
                steps_per_epoch=self.steps_per_epoch, num_examples=self.num_examples)


class BucketedOrder(Order):
  """Batches of one length bucket each, and blocks of one bucket each.

  Each epoch keeps the rows the plain order keeps (the first S * B of its permutation),
  sorts them by bucket (stably: within a bucket they stay shuffled) and cuts them into
  S batches, so a batch mixes buckets only where one bucket's rows run out (at most
  buckets - 1 batches an epoch). The epoch's steps are cut where the trainer's blocks
  start (multiples of steps_per_loop from step 0); these runs of steps take consecutive
  batches of the sorted ones, the runs in a seeded random order, the batches shuffled
  within a run. A block's bucket is its steps' largest, so a block that spans two epochs
  or two buckets is padded to the longer one. All of it is a function of (seed, epoch):
  same seed, same batches, and a resumed run sees what an uninterrupted one would.
  """

  def __init__(self, seed, num_examples, batch_size, steps_per_epoch, *, bucket_of, bounds,
               steps_per_loop):
    super().__init__(seed, num_examples, batch_size, steps_per_epoch)
    self.bucket_of = np.asarray(bucket_of, np.int32)
    if len(self.bucket_of) != self.num_examples:
      raise ValueError(f'{len(self.bucket_of)} buckets for {self.num_examples} examples')
    self.bounds, self.steps_per_loop = tuple(int(b) for b in bounds), int(steps_per_loop)
    self._cache = {}

  def __getstate__(self):  # pickled to Grain's workers: without the cache
    return {k: v for k, v in self.__dict__.items() if k != '_cache'}

  def __setstate__(self, state):
    self.__dict__.update(state, _cache={})

  def _epoch(self, epoch):
    """(rows [num_examples] as epoch_rows, bucket of each of the epoch's steps [S])."""
    if epoch not in self._cache:
      if len(self._cache) >= 4:
        self._cache.pop(min(self._cache))
      self._cache[epoch] = self._arrange(epoch)
    return self._cache[epoch]

  def _arrange(self, epoch):
    steps, size = self.steps_per_epoch, self.batch_size
    permutation = epoch_permutation(self.seed, epoch, self.num_examples)
    kept = permutation[:steps * size]
    batches_SxB = kept[np.argsort(self.bucket_of[kept], kind='stable')].reshape(steps, size)
    first, loop = epoch * steps, self.steps_per_loop
    cuts = sorted({0, steps} | {s - first for s in range(-(-first // loop) * loop,
                                                         first + steps, loop)})
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [self.seed & (2**64 - 1), _STREAM, int(epoch), 1])))
    schedule, taken = np.empty(steps, np.int64), 0
    for run in rng.permutation(len(cuts) - 1):
      start, stop = cuts[run], cuts[run + 1]
      schedule[start:stop] = taken + rng.permutation(stop - start)
      taken += stop - start
    rows = np.concatenate([batches_SxB[schedule].reshape(-1), permutation[steps * size:]])
    rows = rows.astype(np.int32)
    rows.flags.writeable = False
    return rows, self.bucket_of[batches_SxB[schedule]].max(axis=1)

  def epoch_rows(self, epoch):
    return self._epoch(int(epoch))[0]

  def step_buckets(self, start, end):
    """The bucket of each step's batch in [start, end) (its largest example's)."""
    found = []
    for step in range(int(start), int(end)):
      epoch, position = divmod(step, self.steps_per_epoch)
      found.append(self._epoch(epoch)[1][position])
    return np.asarray(found, np.int32)

  def block_bucket(self, start, end):
    return int(self.step_buckets(start, end).max())

  def describe(self):
    return dict(super().describe(), buckets=list(self.bounds), steps_per_loop=self.steps_per_loop)


def make(seed, num_examples, batch_size, steps_per_epoch, *, bucket_of=None, bounds=None,
         steps_per_loop=1):
  """The plain order, or the bucketed one where the examples have buckets."""
  if bucket_of is None:
    return Order(seed, num_examples, batch_size, steps_per_epoch)
  return BucketedOrder(seed, num_examples, batch_size, steps_per_epoch, bucket_of=bucket_of,
                       bounds=bounds, steps_per_loop=steps_per_loop)
