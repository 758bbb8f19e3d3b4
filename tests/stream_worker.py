"""One process of a streaming check: reads a TrainStream and eval batches on a mesh of all
the devices (in `order` given), checks that every local shard holds the rows it should,
and saves what this process's shards hold to OUT (npz), with the rows its source was asked.

  python -m tests.stream_worker PROCESS_ID NUM_PROCESSES PORT OUT DEVICE_ORDER
  (DEVICE_ORDER: 'ids' for devices by id, 'interleaved' for process-alternating devices)
"""

import sys

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxlab.data import order, stream
from tests import test_stream as cases


def mesh_of(device_order):
  devices = sorted(jax.devices(), key=lambda d: d.id)
  if device_order == 'interleaved':  # each process holds non-contiguous pieces of a batch
    devices = sorted(devices, key=lambda d: (devices.index(d) % jax.local_device_count(),
                                             d.process_index))
  return Mesh(np.array(devices).reshape(-1, 2), ('data', 'fsdp'))


def held(array):
  """This process's shards placed in a global-shaped numpy array, and where they are."""
  values, have = np.zeros(array.shape, array.dtype), np.zeros(array.shape, bool)
  for shard in array.addressable_shards:
    values[shard.index], have[shard.index] = np.asarray(shard.data), True
  return values, have


def main(process_id, num_processes, port, out, device_order):
  if num_processes > 1:
    jax.distributed.initialize(f'127.0.0.1:{port}', num_processes=num_processes,
                               process_id=process_id, initialization_timeout=60)
  mesh = mesh_of(device_order)
  source = cases.RecordingSource(cases.make_source(cases.NUM_EXAMPLES), bad=cases.BAD)
  results = {}
  with stream.TrainStream(source, sharding=NamedSharding(mesh, P(None, ('data', 'fsdp'))),
                          **cases.TRAIN) as blocks:
    for block in blocks:
      for name, array in block.arrays.items():
        values, have = held(array)
        results.setdefault(name, []).append(values)
        results.setdefault(f'have_{name}', []).append(have)
      check_shards(block)
  evals = stream.eval_batches(source, example_spec=cases.SPEC, batch_size=8,
                              transform=cases.tag_transform,
                              sharding=NamedSharding(mesh, P(('data', 'fsdp'))))
  for batch in evals:
    for name, array in batch.items():
      values, have = held(array)
      results.setdefault(f'eval_{name}', []).append(values)
      results.setdefault(f'have_eval_{name}', []).append(have)
  np.savez(out, asked=np.array(source.asked), num_bad_eval=len(evals.bad_records),
           **{k: np.concatenate(v) for k, v in results.items()})
  print(f'process {jax.process_index()} of {jax.process_count()}: '
        f'{len(source.asked)} reads', flush=True)


def check_shards(block):
  """Each shard of `index` holds exactly the rows order.batch_rows names at its place."""
  t = cases.TRAIN
  want = np.stack([order.batch_rows(t['seed'], s, t['steps_per_epoch'], t['batch_size'],
                                    cases.NUM_EXAMPLES) for s in range(block.start, block.end)])
  want = np.where(np.isin(want, list(cases.BAD)), 0, want)
  for shard in block.arrays['index'].addressable_shards:
    np.testing.assert_array_equal(np.asarray(shard.data), want[shard.index])


if __name__ == '__main__':
  process_id, num_processes, port = map(int, sys.argv[1:4])
  main(process_id, num_processes, port, *sys.argv[4:])
