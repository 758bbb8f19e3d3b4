"""Random-access sources of examples: what both placements read from.

A source is a sequence of examples: `len(source)` and `source[i]`, a dict of named
numpy arrays (one example: the same names, shapes and dtypes for every i). It must
be picklable, because streaming reads it from Grain's worker processes. A record that
cannot be decoded raises `BadRecord`; the streaming path skips or stops on it as
`data.skip_bad_records` says, within the budget of `jaxlab.data.bad_records`. A failure
of the machine (a missing module or codec) is not a BadRecord but a
`jaxlab.data.environment.MissingDependency`.
"""

import numpy as np


class BadRecord(Exception):
  """A record that cannot be decoded (a broken JPEG, an empty text, ...)."""

  def __init__(self, source, index, reason):
    super().__init__(f'bad record {index} of {source}: {reason}')
    self.source = source
    self.index = index
    self.reason = reason

  def __reduce__(self):  # crosses from Grain's worker processes
    return BadRecord, (self.source, self.index, self.reason)


class ArraySource:
  """Examples held as arrays with a common first axis (in memory or memory-mapped)."""

  def __init__(self, arrays, name='arrays'):
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
      raise ValueError(f'{name}: features of different lengths {sorted(lengths)}')
    self.arrays = dict(arrays)
    self.name = name

  def __len__(self):
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, index):
    return {k: np.asarray(v[index]) for k, v in self.arrays.items()}

  def rows(self, start, stop):
    """Rows [start, stop) of every feature, as arrays (views where possible)."""
    return {k: v[start:stop] for k, v in self.arrays.items()}

  def take(self, indices):
    """The rows at `indices` (any order), stacked."""
    return {k: np.asarray(v[np.asarray(indices)]) for k, v in self.arrays.items()}

  def __repr__(self):
    return self.name


class Head:
  """The first `count` examples of a source."""

  def __init__(self, source, count):
    self.source, self.count = source, min(count, len(source))

  def __len__(self):
    return self.count

  def __getitem__(self, index):
    if not 0 <= index < self.count:
      raise IndexError(index)
    return self.source[index]

  def rows(self, start, stop):
    return read_rows(self.source, start, min(stop, self.count))

  def __repr__(self):
    return repr(self.source)


def head(source, count):
  """The first `count` examples (all of them if count is None or 0)."""
  if not count or count >= len(source):
    return source
  if isinstance(source, ArraySource):
    return ArraySource(source.rows(0, count), source.name)
  return Head(source, count)


def read_resident(source, start, stop):
  """read_rows for a set to be held whole: a bad record is a UserError saying how to
  skip it (only a stream can)."""
  try:
    return read_rows(source, start, stop)
  except BadRecord as error:
    from jaxlab.errors import UserError
    raise UserError(f'{error}. A data set placed on the devices is read whole, so a bad record '
                    'cannot be skipped there: stream it (--config.data.placement=stream), which '
                    'skips and counts bad records, or repair the data.') from None


def read_rows(source, start, stop):
  """Examples [start, stop) as a dict of stacked arrays: sliced where the source holds
  arrays, decoded one by one otherwise."""
  if hasattr(source, 'rows'):
    return source.rows(start, stop)
  examples = [source[i] for i in range(start, stop)]
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]} if examples else {}
