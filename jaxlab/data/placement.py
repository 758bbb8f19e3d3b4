"""Where a data set lives while it is used: whole on the devices, or streamed."""

import os

import jax

from jaxlab.data import info as data_lib
from jaxlab.parallel import mesh as mesh_lib


def choose(data_config, info, num_examples, mesh, per_device=True):
  """'device' or 'stream', as data.placement says; `auto` places a set on the devices
  when what each device would hold fits in data.device_memory_share of its memory
  (the training set is split over the data-parallel devices; a test set is not)."""
  if data_config.placement != 'auto':
    return data_config.placement
  held = data_lib.example_bytes(info) * num_examples
  if per_device:
    held /= mesh_lib.data_shards(mesh)
  return 'device' if held <= data_config.device_memory_share * device_memory() else 'stream'


def device_memory():
  """Bytes of memory of one device (the host's memory for CPU devices)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if stats.get('bytes_limit'):
    return int(stats['bytes_limit'])
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
