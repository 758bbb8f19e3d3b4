"""Streaming placement: global batches read by Grain from a random-access source.

The rows of step t are `order.batch_rows(seed, t, ...)` (or a bucketed order's), the same
rows the device-resident path gathers, so both placements feed identical batches. Each process reads only the part
of every global batch that its own devices hold, and `jax.make_array_from_process_local_data`
joins the parts into global arrays.

Resume: a block's `state` is {'step': end, plus the order's parameters}. The position in the
data is a function of the step alone, so `TrainStream(..., start_step=state['step'],
resume_state=state)` starts Grain's dataset at that step and carries on exactly. Nothing in
the state depends on the number of processes or Grain workers: restore it with any of them.
Grain's own iterator state is not saved, because it is per process and per worker count;
here building the dataset from `start_step` is the same positioning, without those ties.
"""

import atexit
import dataclasses
import functools
import queue
import threading

from absl import flags
from absl import logging
import grain
import jax
import numpy as np

from jaxlab.data import environment, order, sources

# Per Python process (the main one, or each Grain worker): threads reading whole steps.
_READ = grain.ReadOptions(num_threads=4, prefetch_buffer_size=8)
_END = object()


@dataclasses.dataclass(frozen=True)
class Block:
  """Steps [start, end): arrays name -> global jax.Array [end - start, batch, ...], with `mask`."""
  start: int
  end: int
  arrays: dict
  bad_records: list  # (source repr, index, reason) met on this process while building the block
  state: dict  # JSON-able; `resume_state=` with start_step=state['step'] resumes exactly here


def local_positions(sharding, global_shape, axis):
  """Positions along `axis` held by this process's devices: its sorted pieces, concatenated.

  That is the layout `make_array_from_process_local_data` expects of the local data (pieces
  need not be contiguous). Every other axis must be whole on each device.
  """
  pieces = set()
  for index in sharding.addressable_devices_indices_map(global_shape).values():
    bounds = [s.indices(n)[:2] for s, n in zip(index, global_shape)]
    if any(b != (0, n) for i, (b, n) in enumerate(zip(bounds, global_shape)) if i != axis):
      raise ValueError(f'{sharding} splits an axis other than the batch axis ({axis}) of '
                       f'{global_shape}; a stream can only split the batch axis.')
    pieces.add(bounds[axis])
  pieces = sorted(pieces)
  if any(start < stop for (_, stop), (start, _) in zip(pieces, pieces[1:])):
    raise ValueError(f'this process\'s devices hold overlapping, unequal pieces {pieces} of the '
                     f'batch axis of {global_shape}; use a mesh whose batch shards are disjoint.')
  return np.concatenate([np.arange(start, stop) for start, stop in pieces])


def _read_rows(source, spec, transform, key_prefix, positions, rows, cut=False):
  """A local batch of `rows` (-1: padding), and the bad records met (zeros, mask 0 there).
  `cut`: the spec is a length bucket's, and longer features are cut to it (their padding)."""
  batch = {name: np.zeros((len(rows), *shape), dtype) for name, (shape, dtype) in spec.items()}
  mask, bad = np.zeros(len(rows), np.float32), []
  for slot, (row, position) in enumerate(zip(rows.tolist(), positions.tolist())):
    if row < 0:
      continue
    try:
      example = source[row]
      if transform is not None:
        example = transform(example, (*key_prefix, position))
    except sources.BadRecord as error:
      bad.append((repr(source), row, str(error.reason)))
      continue
    except ImportError as error:  # the machine, not the record: stop, never skip
      raise environment.missing_dependency(error, f'record {row} of {source!r}') from error
    for name, (shape, dtype) in spec.items():
      if name not in example:
        raise KeyError(f'example {row} of {source!r} has no {name!r} (it has {sorted(example)}):'
                       ' example_spec names what source[i] returns after the transform')
      value = np.asarray(example[name])
      if cut and value.ndim == len(shape):
        value = value[tuple(slice(0, n) for n in shape)]
      if value.shape != tuple(shape) or not np.can_cast(value.dtype, dtype, 'same_kind'):
        raise ValueError(f'example {row} of {source!r}: {name!r} is {value.dtype}'
                         f'{list(value.shape)}, example_spec says {np.dtype(dtype)}{list(shape)}')
      batch[name][slot] = value
    mask[slot] = 1.0
  return dict(batch, mask=mask), bad


def _train_rows(source, spec, transform, epoch_order, buckets, num_steps, positions, step):
  rows = epoch_order.batch_rows(step)[positions]
  if buckets is None:
    return _read_rows(source, spec, transform, (epoch_order.seed, step), positions, rows)
  block = order.block_span(step, epoch_order.steps_per_loop, num_steps)
  spec = buckets.spec(spec, epoch_order.block_bucket(*block))
  return _read_rows(source, spec, transform, (epoch_order.seed, step), positions, rows, cut=True)


def _eval_rows(source, spec, transform, batch_size, positions, index):
  rows = index * batch_size + positions
  rows = np.where(rows < len(source), rows, -1)
  return _read_rows(source, spec, transform, (0, index), positions, rows)


def _iterate(dataset, num_workers):
  dataset = dataset.to_iter_dataset(_READ)
  if num_workers:
    if not flags.FLAGS.is_parsed():  # outside an absl app (notebooks, tests), grain 0.2.18's
      flags.FLAGS.mark_as_parsed()   # mp_prefetch fails reading its worker-profiling flag
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return iter(dataset)


def _global(sharding, local, batch_size, batch_axis):
  shape = lambda v: (*v.shape[:batch_axis], batch_size, *v.shape[batch_axis + 1:])
  return {name: jax.make_array_from_process_local_data(sharding, value, shape(value))
          for name, value in local.items()}


def _spans(start, num_steps, block_end):
  while start < num_steps:
    end = int(block_end(start))
    if not start < end <= num_steps:
      raise ValueError(f'block_end({start}) = {end}: want {start} < end <= num_steps={num_steps}')
    yield start, end
    start = end


def _put(out, item, stop):
  """Puts `item` unless the stream is closed first; False if closed."""
  while not stop.is_set():
    try:
      out.put(item, timeout=0.05)
      return True
    except queue.Full:
      pass
  return False


def _produce(make_iterator, spans, build, out, stop):
  """The prefetch thread: builds blocks in order, then _END, or the first exception."""
  iterator = None
  try:
    iterator = make_iterator()
    for start, end in spans:
      steps = [next(iterator) for _ in range(end - start)]
      if not _put(out, build(start, end, steps), stop):
        return
    _put(out, _END, stop)
  except BaseException as error:  # pylint: disable=broad-except  # re-raised by next_block
    _put(out, error, stop)
  finally:
    if iterator is not None:
      iterator.close()


class TrainStream:
  """Global batches for the training steps [start_step, num_steps), read by Grain from `source`.

  Blocks come in order: [start_step, block_end(start_step)), then from that end on. A thread
  keeps up to `prefetch_blocks` blocks built and on the devices ahead of `next_block`.
  `transform(example, (seed, step, position in the global batch))` runs where the rows are
  read (Grain workers when num_workers > 0), so its randomness does not depend on the number
  of workers or processes. Close the stream (or use it as a context manager) when done.

  With num_workers > 0, Grain spawns worker processes: `source` and `transform` are pickled
  to each (memory-map large arrays rather than holding them in memory), and a script must
  guard its entry point with `if __name__ == '__main__':`.

  `epoch_order` (jaxlab.data.order; default the plain order of seed, batch_size and
  steps_per_epoch) names each step's rows; with `buckets` (jaxlab.data.buckets) it is a
  BucketedOrder, and each block's features are cut to its bucket's shapes.
  """

  def __init__(self, source, *, example_spec, seed, batch_size, steps_per_epoch, num_steps,
               start_step, block_end, sharding, transform=None, num_workers=0,
               skip_bad_records=True, prefetch_blocks=2, resume_state=None, epoch_order=None,
               buckets=None):
    if steps_per_epoch * batch_size > len(source):
      raise ValueError(f'{steps_per_epoch} steps of {batch_size} need '
                       f'{steps_per_epoch * batch_size} examples per epoch; {source!r} has '
                       f'{len(source)}.')
    epoch_order = epoch_order or order.Order(seed, len(source), batch_size, steps_per_epoch)
    self._order = epoch_order.describe()
    _check_resume(resume_state, start_step, self._order)
    self._source, self._sharding, self._skip = source, sharding, skip_bad_records
    positions = local_positions(sharding, (1, batch_size), axis=1)
    read = functools.partial(_train_rows, source, example_spec, transform, epoch_order, buckets,
                             num_steps, positions)
    steps = grain.MapDataset.range(start_step, num_steps).map(read)
    self._queue, self._stop = queue.Queue(max(1, prefetch_blocks)), threading.Event()
    self._finished = None  # _END or the exception, once the thread has sent it
    self._thread = threading.Thread(
        target=_produce, name='TrainStream', daemon=True,
        args=(lambda: _iterate(steps, num_workers), _spans(start_step, num_steps, block_end),
              self._build, self._queue, self._stop))
    self._thread.start()
    atexit.register(self.close)  # before JAX's own exit handlers, which run after ours

  def _build(self, start, end, steps):
    bad = [record for _, records in steps for record in records]
    if bad and not self._skip:
      raise sources.BadRecord(self._source, bad[0][1], bad[0][2])
    local = {name: np.stack([batch[name] for batch, _ in steps]) for name in steps[0][0]}
    arrays = _global(self._sharding, local, self._order['batch_size'], batch_axis=1)
    return Block(start, end, arrays, bad, dict(self._order, step=end))

  def next_block(self):
    """The next block; StopIteration after num_steps; an error of reading re-raised here."""
    if self._finished is None:
      if self._stop.is_set():
        raise RuntimeError('next_block() on a closed TrainStream')
      item = self._queue.get()
      if not isinstance(item, Block):
        self._finished = item
    if self._finished is _END:
      raise StopIteration
    if self._finished is not None:
      raise self._finished
    return item

  def __iter__(self):
    while True:
      try:
        yield self.next_block()
      except StopIteration:
        return

  def close(self):
    """Stops the prefetch thread (and Grain's workers). Safe to call twice."""
    self._stop.set()
    self._thread.join(timeout=60)  # it stops at its next block (Grain may hang on dead workers)
    if self._thread.is_alive():
      logging.warning('TrainStream: the reading thread is still blocked in Grain after 60 s; '
                      'leaving it behind (a daemon thread).')
    atexit.unregister(self.close)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _check_resume(state, start_step, expected):
  if state is None:
    return
  if state.get('step') != start_step:
    raise ValueError(f'resume_state is the position before step {state.get("step")}, but '
                     f'start_step is {start_step}: pass start_step=resume_state["step"].')
  changed = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
  if changed:
    raise ValueError(f'resume_state was saved with another example order: {changed} '
                     '(saved, now). Resume with the same data, seed and batch size.')


class EvalBatches:
  """Examples 0..N-1 in order, as dicts of global arrays [batch, ...] with `mask`.

  The last batch is padded with mask 0. Bad records are masked out and listed, after
  iteration, in `bad_records` (this process's rows only).
  """

  def __init__(self, source, *, example_spec, batch_size, sharding, transform=None,
               num_workers=0):
    self.bad_records = []
    self._sharding, self._batch_size, self._num_workers = sharding, batch_size, num_workers
    positions = local_positions(sharding, (batch_size,), axis=0)
    read = functools.partial(_eval_rows, source, example_spec, transform, batch_size, positions)
    self._dataset = grain.MapDataset.range(-(-len(source) // batch_size)).map(read)

  def __iter__(self):
    iterator = _iterate(self._dataset, self._num_workers)
    try:
      for local, bad in iterator:
        self.bad_records.extend(bad)
        yield _global(self._sharding, local, self._batch_size, batch_axis=0)
    finally:
      iterator.close()


eval_batches = EvalBatches
