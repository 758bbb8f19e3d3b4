"""Loads a Hugging Face checkpoint on 8 fake CPU devices and prints, as JSON (last line),
how each device's slice compares with a load onto one device.

Started by tests/test_pretrained.py with XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

import json
import sys

import jax
import ml_collections
import numpy as np

from jaxlab.parallel import mesh as mesh_lib
from jaxlab.pretrained import loading, safetensors_files


def _mesh(**sizes):
  return mesh_lib.create(ml_collections.ConfigDict(sizes))


def main(path):
  plan = loading.plan(path)
  _, one = loading.layout(plan, _mesh(data=1, fsdp=1, tensor=1))
  whole = jax.tree.map(np.asarray, loading.read_variables(plan, one.shapes, one.shardings))
  _, eight = loading.layout(plan, _mesh(data=1, fsdp=2, tensor=4))
  sharded = loading.read_variables(plan, eight.shapes, eight.shardings)

  read = []  # elements each checkpoint read returned
  original = safetensors_files.Checkpoint.read
  safetensors_files.Checkpoint.read = lambda self, name, index: _counted(
      original(self, name, index), read)
  leaves = loading.check(plan, eight.shapes)
  report = dict(devices=len(jax.devices()), split=[], differing=[], over_read=[])
  flat = dict(zip(loading.paths_and_shapes(sharded), jax.tree.leaves(sharded)))
  flat_whole = dict(zip(loading.paths_and_shapes(whole), jax.tree.leaves(whole)))
  for name, array in flat.items():
    shard_shape = array.sharding.shard_shape(array.shape)
    if shard_shape != array.shape:
      report['split'].append(name)
    for shard in array.addressable_shards:
      if shard.data.shape != shard_shape or not np.array_equal(
          np.asarray(shard.data), flat_whole[name][shard.index]):
        report['differing'].append(name)
      read.clear()
      block = leaves[name].read(shard.index, plan.checkpoint, np.float32)
      if sum(read) > block.size:  # this device read more than its slice
        report['over_read'].append(name)
  print(json.dumps(report))


def _counted(block, read):
  read.append(block.size)
  return block


if __name__ == '__main__':
  main(sys.argv[1])
