"""The blocks a run trains: spans of steps_per_loop steps (one compiled call each, ending at
multiples of steps_per_loop from step 0), their lengths, and, where the training set has
length buckets, each block's bucket: the shapes the trainer compiles a block for."""

from jaxlab.data import order as order_lib
from jaxlab.errors import UserError


def steps_per_loop(config):
  return max(1, int(config.steps_per_loop))


def end(step, config, num_steps):
  """Where the block holding `step` ends."""
  return order_lib.block_span(step, steps_per_loop(config), num_steps)[1]


def run_order(config, splits, steps_per_epoch):
  """The run's data order: plain, or drawing each batch and block from one length bucket."""
  buckets = splits.buckets
  if buckets is not None and config.privacy.enabled:
    raise UserError('--config.privacy.enabled=True samples each batch from the whole training '
                    'set, so its batches cannot be drawn from one length bucket: set '
                    '--config.data.num_buckets=0 and --config.data.bucket_boundaries=() to '
                    'train with privacy.')
  return order_lib.make(
      config.seed, len(splits.train), config.data.batch_size, steps_per_epoch,
      bucket_of=None if buckets is None else buckets.of_examples(splits.train),
      bounds=None if buckets is None else buckets.bounds, steps_per_loop=steps_per_loop(config))


def lengths(start, num_steps, loop):
  """Every block length a run from `start` to `num_steps` uses (first, full, last)."""
  first_end = order_lib.block_span(start, loop, num_steps)[1]
  found = {first_end - start}
  if first_end < num_steps:
    last_start = max(first_end, (num_steps - 1) // loop * loop)
    found.add(num_steps - last_start)
    if last_start > first_end:
      found.add(loop)
  return found


def shapes(epoch_order, buckets, start, num_steps, loop):
  """{(length, bucket): steps} of every block from `start`: the lengths alone (bucket
  None) without buckets, else each block's bucket from the order."""
  if buckets is None:
    return {(length, None): length for length in lengths(start, num_steps, loop)}
  found, step = {}, start
  while step < num_steps:
    end = order_lib.block_span(step, loop, num_steps)[1]
    key = (end - step, epoch_order.block_bucket(step, end))
    found[key] = found.get(key, 0) + end - step
    step = end
  return found


def describe_buckets(buckets, planned):
  """The log line of a bucketed run: its buckets and the steps each trains."""
  steps = {}
  for (_, bucket), count in planned.items():
    steps[bucket] = steps.get(bucket, 0) + count
  listed = ', '.join(f'up to {buckets.label(b)}: {steps.get(b, 0)} steps'
                     for b in range(len(buckets.bounds)))
  return (f'Training batches from {len(buckets.bounds)} length buckets ({listed}); the train '
          'step compiles once per bucket used.')
