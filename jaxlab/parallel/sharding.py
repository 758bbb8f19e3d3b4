"""Logical axis names on parameters -> mesh axes, by rules held in the config.

Models name parameter axes ('embed', 'mlp', 'conv_out', ...); the rules say which
mesh axis each name is sharded along. A dimension the mesh axis does not divide
stays replicated (the table printed by --dry_run shows it).
"""

import jax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxlab import config as config_lib

# The batch is split over both data-parallel axes, fsdp-major. Why that order: XLA's SPMD
# partitioner (jaxlib 0.10.2, Shardy and GSPMD alike) miscompiles a dot whose weight is
# split over the batch's minor axis: x[B:(a,b), K:tensor] @ W[K:tensor, N:b] ->
# [B:(a,b), N:tensor] comes back with the middle batch shards swapped (with B over
# ('data', 'fsdp'): the speech CNN's classifier gradient on data=fsdp=tensor=2).
# Parameters are split over fsdp, never over data, so data must be the minor batch axis.
# The cost: where data spans processes and fsdp > 1, a process's rows of a batch are
# several blocks, so each reads the whole resident training set (local_row_range).
BATCH_AXES = ('fsdp', 'data')

DEFAULT_RULES = config_lib.DEFAULT_SHARDING_RULES


def batch_sharding(mesh):
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh):
  return NamedSharding(mesh, P())


def logical_specs(abstract_state):
  """Pure dict of logical PartitionSpecs from an (abstract) nnx.State."""
  return nnx.to_pure_dict(nnx.get_partition_spec(abstract_state))


def mesh_spec(logical_spec, shape, mesh, rules):
  """The mesh PartitionSpec for one parameter."""
  rules = dict(rules)
  used, axes = set(), []
  for name, size in zip(tuple(logical_spec) + (None,) * len(shape), shape):
    axis = (rules.get(name) or None) if name else None  # '' means replicated
    fits = axis and axis not in used and mesh.shape[axis] > 1 and size % mesh.shape[axis] == 0
    axes.append(axis if fits else None)
    if fits:
      used.add(axis)
  return P(*axes)


def param_shardings(logical, shapes, mesh, rules):
  """Pure dict of NamedShardings, from logical specs and ShapeDtypeStructs."""
  return jax.tree.map(
      lambda spec, leaf: NamedSharding(mesh, mesh_spec(spec, leaf.shape, mesh, rules)),
      logical, shapes, is_leaf=lambda x: isinstance(x, P))


def table(shapes, shardings):
  """Rows of (parameter path, shape, PartitionSpec) for printing and tests."""
  rows = []
  for (path, leaf), sharding in zip(jax.tree_util.tree_leaves_with_path(shapes),
                                    jax.tree.leaves(shardings)):
    rows.append(('/'.join(str(getattr(k, 'key', k)) for k in path), tuple(leaf.shape),
                 sharding.spec))
  return rows
