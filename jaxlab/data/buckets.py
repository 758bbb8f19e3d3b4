"""Length buckets: batches of examples of similar lengths, each padded only to its bucket's bound.

ESPnet's, NeMo's and lhotse's bucketing by duration. A set that buckets its training
examples (`Splits.buckets`) says which feature holds an example's length (`key`, e.g.
'audio_length'), the buckets' upper bounds in that unit (ascending; the last is the
set's longest), and per bucket the shapes its batch's features are cut to (the audio to
the bound's samples, the label row to as many as those samples' output frames). An
example falls in the smallest bucket whose bound holds it. Examples are stored padded to
the longest shape; a batch of bucket b is the same rows with only the padding past b's
shapes cut off, so it holds exactly what an example built at b's size would.

`jaxlab.data.order.BucketedOrder` draws every batch from one bucket and makes every
block (the steps_per_loop steps of one compiled call, which stacks its batches) one
bucket too, so the trainer compiles its block once per bucket: a small, fixed number of
step shapes, whatever the lengths. Only the data and the order know what a bucket is;
the trainer sees a block's shapes.
"""

import dataclasses

import numpy as np

from jaxlab.data import sources
from jaxlab.errors import UserError


@dataclasses.dataclass(frozen=True)
class Buckets:
  key: str  # the feature holding each example's length ('audio_length')
  bounds: tuple  # each bucket's longest length, ascending, in the unit of `key`
  shapes: tuple  # per bucket: {feature: shape} its batches' features are cut to
  labels: tuple = ()  # per bucket: its bound in words ('2.1 s'), for the log

  def spec(self, spec, bucket):
    """An example spec {name: (shape, dtype)} with bucket `bucket`'s shapes (None: as is)."""
    if bucket is None:
      return dict(spec)
    cut = self.shapes[bucket]
    return {name: (tuple(cut.get(name, shape)), dtype) for name, (shape, dtype) in spec.items()}

  def of_examples(self, source):
    """The bucket of each example of `source` (int32), from its `key` column."""
    return assign(column(source, self.key), self.bounds)

  def label(self, bucket):
    return self.labels[bucket] if self.labels else f'{self.key} <= {self.bounds[bucket]}'


def assign(lengths, bounds):
  """The smallest bucket whose bound holds each length (int32)."""
  lengths = np.asarray(lengths)
  if len(lengths) and lengths.max() > bounds[-1]:
    raise ValueError(f'a length {lengths.max()} is over the last bucket bound {bounds[-1]}')
  return np.searchsorted(np.asarray(bounds), lengths, side='left').astype(np.int32)


def quantile_bounds(lengths, count, longest, multiple=1):
  """`count` bucket bounds that split `lengths` into about equal shares (each rounded up to
  a multiple of `multiple`, the last `longest`); repeated bounds merge."""
  inner = np.quantile(np.asarray(lengths, np.float64), np.arange(1, count) / count)
  inner = np.ceil(inner / multiple) * multiple
  return tuple(sorted({int(b) for b in inner if 0 < b < longest} | {int(longest)}))


def column(source, key):
  """One feature of every example of an in-memory source."""
  if not hasattr(source, 'rows'):
    raise UserError(f'Bucketing by length needs every training example\'s {key!r} before '
                    f'training, and {source!r} is read record by record (streamed). Turn '
                    'bucketing off (--config.data.num_buckets=0) for this set.')
  return np.asarray(sources.read_rows(source, 0, len(source))[key])


def crop(arrays, shapes, lead):
  """Each array named in `shapes` cut to that shape after its `lead` leading axes."""
  cut = lambda value, shape: value[(slice(None),) * lead + tuple(slice(0, n) for n in shape)]
  return {name: cut(value, shapes[name]) if name in shapes else value
          for name, value in arrays.items()}
