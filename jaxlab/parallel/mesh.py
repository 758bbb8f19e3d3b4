"""The device mesh described by `config.mesh` (axis name -> size, -1 fills the rest)."""

import math

import jax
import numpy as np
from jax.sharding import AxisType

from jaxlab.errors import UserError

AXES = ('data', 'fsdp', 'tensor')


def axis_sizes(mesh_config, num_devices):
  """Resolves the -1 entry so that the sizes multiply to the device count."""
  sizes = {axis: int(mesh_config[axis]) for axis in AXES}
  unknown = [axis for axis, size in sizes.items() if size == -1]
  known = math.prod(size for size in sizes.values() if size != -1)
  if len(unknown) > 1 or any(size == 0 or size < -1 for size in sizes.values()):
    raise UserError(f'Invalid mesh {sizes}: give each axis a positive size, with at most '
                    'one -1 to fill the remaining devices.')
  if unknown:
    if num_devices % known:
      raise UserError(_mismatch(sizes, num_devices))
    sizes[unknown[0]] = num_devices // known
  if math.prod(sizes.values()) > num_devices:
    raise UserError(_mismatch(sizes, num_devices))
  return sizes


def _mismatch(sizes, num_devices):
  return (f'Mesh {sizes} does not fit the {num_devices} available devices: the sizes must '
          f'multiply to {num_devices} (or less, on one host). Set one axis to -1 (e.g. '
          '--config.mesh.data=-1) to fill the remaining devices.')


def create(mesh_config, devices=None):
  """A mesh over all (global) devices, with Auto axis types: sharding is by constraints."""
  devices = jax.devices() if devices is None else devices
  sizes = axis_sizes(mesh_config, len(devices))
  shape = tuple(sizes[axis] for axis in AXES)
  if math.prod(shape) < len(devices):
    if jax.process_count() > 1:
      raise UserError(_mismatch(sizes, len(devices)))
    devices = devices[:math.prod(shape)]  # a smaller mesh on one host: the first devices
  if devices == jax.devices():
    return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * len(AXES))
  return jax.sharding.Mesh(np.asarray(devices).reshape(shape), AXES,
                           axis_types=(AxisType.Auto,) * len(AXES))


def data_shards(mesh):
  """How many ways a batch is split: over both data-parallel axes."""
  return mesh.shape['data'] * mesh.shape['fsdp']


def round_up_to_shards(count, mesh):
  shards = data_shards(mesh)
  return -(-count // shards) * shards


def check_batch_size(batch_size, mesh, what='--config.data.batch_size'):
  shards = data_shards(mesh)
  if batch_size % shards:
    raise UserError(f'{what}={batch_size} cannot be split evenly over the {shards} '
                    f'data-parallel devices of the mesh {dict(mesh.shape)}; use a multiple '
                    f'of {shards}.')


def eval_batch_size(config, mesh):
  """The eval batch, rounded up to split evenly over the devices (padding is masked)."""
  return round_up_to_shards(config.data.eval_batch_size or config.data.batch_size, mesh)
