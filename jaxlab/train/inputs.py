"""The training input in its two placements, behind one interface.

`ResidentInput` ('device'): the training set is placed on the devices once, split over
the data-parallel devices (each process places only its devices' rows), and every
block gathers its batches there (cut to the block's length bucket, if any, inside the
compiled block). `StreamedInput` ('stream'): Grain reads each block's
batches from the source in the background, each process its own share, and hands
them over stacked on the devices. Both feed the rows the run's `jaxlab.data.order.Order` names, so
they train identically; `position(step)` is what a checkpoint stores to resume there.
"""

import os

import jax
import numpy as np

from jaxlab.inference import programs as programs_lib
from jaxlab.data import pipeline, sources
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.parallel import sharding
from jaxlab.runtime import messages


class ResidentInput:
  placement = 'device'

  def __init__(self, source, spec, *, epoch_order, mesh):
    by_example = sharding.batch_sharding(mesh)
    num_rows = mesh_lib.round_up_to_shards(len(source), mesh)  # padding rows are never drawn
    start, stop = pipeline.local_row_range(by_example, num_rows)
    stop = min(stop, len(source))
    if jax.process_count() > 1:
      messages.say(f'process {jax.process_index()}: training rows {start} to {stop} of {len(source)}')
    rows = sources.read_resident(source, start, stop)
    self.arrays = {name: pipeline.place_rows(np.asarray(rows[name]), start, num_rows, by_example)
                   for name in spec}
    self.permutations = pipeline.EpochPermutations(epoch_order, sharding.replicated(mesh))

  def block_args(self, start, end):
    return self.permutations.for_block(start, end - start), self.arrays

  def position(self, step):
    return {'placement': self.placement, 'step': int(step)}

  def close(self):
    pass


class StreamedInput:
  placement = 'stream'

  def __init__(self, source, spec, *, data_config, seed, batch_size, steps_per_epoch, num_steps,
               start_step, block_end, mesh, transform=None, resume_state=None, epoch_order=None,
               buckets=None):
    from jaxlab.data import bad_records, stream
    self.skip_bad_records = data_config.skip_bad_records
    self._bad = bad_records.BadRecordLog()
    self._budget = (float(data_config.max_bad_records_fraction),
                    int(data_config.min_records_for_bad_fraction))
    self._records_read, self._batch_size = 0, int(batch_size)  # since this run (re)started
    self._positions = {}
    resume = resume_state.get('stream') if resume_state else None
    block_sharding = programs_lib.block_sharding(mesh)
    if jax.process_count() > 1:
      positions = stream.local_positions(block_sharding, (1, batch_size), axis=1)
      messages.say(f'process {jax.process_index()}: streaming positions {positions[0]} to '
            f'{positions[-1] + 1} of each batch of {batch_size}')
    self._stream = stream.TrainStream(
        source, example_spec=spec, seed=seed, batch_size=batch_size,
        steps_per_epoch=steps_per_epoch, num_steps=num_steps, start_step=start_step,
        block_end=block_end, sharding=block_sharding,
        transform=transform, num_workers=num_workers(data_config, transform, source),
        skip_bad_records=data_config.skip_bad_records,
        prefetch_blocks=data_config.prefetch_blocks, resume_state=resume,
        epoch_order=epoch_order, buckets=buckets)

  def block_args(self, start, end):
    block = self._next_block()
    if (block.start, block.end) != (start, end):
      raise RuntimeError(f'the stream delivered steps [{block.start}, {block.end}) where '
                         f'[{start}, {end}) was due')
    self._bad.add(block.bad_records)
    self._records_read += (end - start) * self._batch_size
    self._check_budget()  # before the block trains: a stop keeps the work up to `start`
    self._positions = {end: block.state}
    return (block.arrays,)

  @property
  def bad_records(self):
    """Bad records skipped so far by this process."""
    return self._bad.count

  def _check_budget(self):
    """Raises TooManyBadRecords past data.max_bad_records_fraction, on every process
    alike (a collective once the minimum is read: each process reads its own records)."""
    from jaxlab.data import bad_records
    max_fraction, min_records = self._budget
    if max_fraction >= 1 or self._records_read < min_records:
      return
    bad = self.bad_records_total()
    if bad_records.over_budget(bad, self._records_read, max_fraction, min_records):
      raise bad_records.TooManyBadRecords(bad, self._records_read, max_fraction, self._bad.first)

  def _next_block(self):
    """The next block; a bad record that stops the run stops it on every process (each
    process reads only its own records, so only one may meet it)."""
    failure = block = None
    try:
      block = self._stream.next_block()
    except sources.BadRecord as error:
      failure = error
    if jax.process_count() > 1 and not self.skip_bad_records:
      from jaxlab.parallel import multihost
      if multihost.any_process(failure is not None) and failure is None:
        failure = sources.BadRecord('another process\'s share of the data', None,
                                    'a bad record stopped it')
    if failure is not None:
      raise failure
    return block

  def bad_records_total(self):
    """Bad records skipped so far by every process (collective: each reads its own)."""
    from jaxlab.parallel import multihost
    return multihost.total(self.bad_records)

  def position(self, step):
    return {'placement': self.placement, 'step': int(step), 'stream': self._positions.get(step)}

  def close(self):
    self._stream.close()
    self._bad.flush()  # the count not yet said


def num_workers(data_config, transform, source=None):
  if data_config.num_workers >= 0:
    return data_config.num_workers
  inner = getattr(source, 'source', source)  # through sources.Head (data.num_train)
  decodes = transform is not None or getattr(inner, 'decodes', False)  # e.g. image files
  return min(os.cpu_count() or 1, 8) if decodes else 0


def check_batch_spec(task, info):
  """The task's batch must be what the data holds: one clear error before compiling."""
  held = info.spec()
  problems = []
  for name, (shape, dtype) in task.batch_spec().items():
    if name not in held:
      problems.append(f'{name!r} is missing (the data holds {", ".join(sorted(held))})')
    elif held[name] != (tuple(shape), np.dtype(dtype)):
      problems.append(f'{name!r} is {held[name][1].name}{list(held[name][0])}, the task wants '
                      f'{np.dtype(dtype).name}{list(shape)}')
  if problems:
    raise UserError(f'The data set {info.name!r} does not fit the task '
                    f'{type(task).__name__}: {"; ".join(problems)}. Pick a matching '
                    '--config.data.name or --config.task.name.')
