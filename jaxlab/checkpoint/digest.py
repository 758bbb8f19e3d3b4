"""Content digests of array trees and JSON records, for verifying checkpoints.

Orbax guards against torn saves but not against damaged bytes: the array chunks it
writes carry no checksum. A digest per leaf, saved beside the arrays and compared
after a restore, catches both flipped bytes and stale data.

An array's digest is computed on its devices by a compiled function: each 32-bit
word of the array is mixed with its position (murmur3's finaliser) and the results
are summed modulo 2**32, twice with different seeds. Integer sums are exact and
order-free, so the digest is the same for any sharding or device count (a checkpoint
saved on 8 devices verifies on 1), and nothing is copied to the host but 8 bytes a
leaf.

A small tree whose arrays already sit in host memory (the CPU backend) is digested by
NumPy instead, with the same arithmetic and so the same digests: compiling the
digest program costs a small run more than the whole save (half a second for an MLP).
"""

import functools
import hashlib
import json
import math

import jax
import jax.numpy as jnp
import numpy as np

_SEEDS = (0x9E3779B9, 0x7F4A7C15)


def _fmix32(h):
  """murmur3's finaliser: every input bit flips each output bit with probability 1/2."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def _words(x):
  """The array's bits as a flat uint32 vector (narrower types widened, wider split)."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
  return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32).reshape(-1)


def _leaf_digest(x):
  words = _words(x)
  position = jnp.arange(words.size, dtype=jnp.uint32)
  return jnp.stack([jnp.sum(_fmix32(words ^ _fmix32(position ^ jnp.uint32(seed))),
                            dtype=jnp.uint32) for seed in _SEEDS])


@functools.partial(jax.jit, static_argnums=1)
def _digests(tree, out_sharding):
  digests = jax.tree.map(_leaf_digest, tree)
  return jax.lax.with_sharding_constraint(digests, out_sharding) if out_sharding else digests


def _replicated_sharding(tree):
  for leaf in jax.tree.leaves(tree):
    if isinstance(getattr(leaf, 'sharding', None), jax.sharding.NamedSharding):
      return jax.sharding.NamedSharding(leaf.sharding.mesh, jax.sharding.PartitionSpec())
  return None


def path_name(path):
  """'params/dense/0/kernel' for a tree path."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path)


# Trees up to this size whose arrays are in host memory are digested by NumPy.
HOST_DIGEST_MAX_BYTES = 64 << 20


def _np_fmix32(h):
  """_fmix32 in NumPy: uint32 products wrap modulo 2**32 as XLA's do."""
  h = h ^ (h >> np.uint32(16))
  h = h * np.uint32(0x85EBCA6B)
  h = h ^ (h >> np.uint32(13))
  h = h * np.uint32(0xC2B2AE35)
  return h ^ (h >> np.uint32(16))


def _np_leaf_digest(x):
  """_leaf_digest of one array held in host memory, in NumPy (the same words: 64-bit
  values split low word first, as bitcast_convert_type does on little-endian hosts)."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  x = np.ascontiguousarray(x)
  if x.dtype == np.bool_:
    x = x.view(np.uint8)
  unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint32}[x.dtype.itemsize]
  words = x.reshape(-1).view(unsigned).astype(np.uint32, copy=False)
  position = np.arange(words.size, dtype=np.uint32)
  with np.errstate(over='ignore'):
    return np.array([np.sum(_np_fmix32(words ^ _np_fmix32(position ^ np.uint32(seed))),
                            dtype=np.uint32) for seed in _SEEDS], np.uint32)


def _on_host(tree):
  """Whether every leaf is a small, whole array in host memory (numpy, or jax on CPU)."""
  leaves, total = jax.tree.leaves(tree), 0
  for leaf in leaves:
    if isinstance(leaf, jax.Array):
      if not leaf.is_fully_addressable or any(d.platform != 'cpu' for d in leaf.devices()):
        return False
    elif not isinstance(leaf, (np.ndarray, np.generic)):
      return False
    total += leaf.nbytes
  return total <= HOST_DIGEST_MAX_BYTES


def tree_digests(tree):
  """{leaf path: 16 hex digits} for a tree of (possibly sharded) jax arrays."""
  if jax.process_count() == 1 and _on_host(tree):
    return host_digests(tree)
  return device_digests(tree)


def device_digests(tree):
  """tree_digests by one compiled program on the arrays' devices."""
  return _as_hex(jax.device_get(_digests(tree, _replicated_sharding(tree))))


def host_digests(tree):
  """tree_digests computed by NumPy, for arrays in host memory."""
  return _as_hex(jax.tree.map(_np_leaf_digest, tree))


def _as_hex(digests):
  return {path_name(path): ''.join(f'{int(word):08x}' for word in np.asarray(value))
          for path, value in jax.tree_util.tree_leaves_with_path(digests)}


def json_digest(record):
  """SHA-256 of a JSON-able record in canonical form (sorted keys, no spaces)."""
  text = json.dumps(record, sort_keys=True, separators=(',', ':'))
  return hashlib.sha256(text.encode()).hexdigest()


def mismatches(expected, actual):
  """Leaf paths whose digests differ or that one side lacks, sorted."""
  return sorted(path for path in set(expected) | set(actual)
                if expected.get(path) != actual.get(path))


SLICE_BYTES = 64 << 20  # the most of one leaf processed at once


@jax.jit
def _slice_terms(x, offset):
  """The digest sums of one slice whose first word sits at flat position `offset`."""
  words = _words(x)
  position = jnp.arange(words.size, dtype=jnp.uint32) + offset
  return jnp.stack([jnp.sum(_fmix32(words ^ _fmix32(position ^ jnp.uint32(seed))),
                            dtype=jnp.uint32) for seed in _SEEDS])


def _leaf_digest_in_slices(x, chunk_bytes):
  if x.ndim == 0 or x.nbytes <= chunk_bytes:
    return np.asarray(_slice_terms(x, jnp.uint32(0)))
  row_words = math.prod(x.shape[1:]) * max(x.dtype.itemsize // 4, 1)
  rows = max(1, chunk_bytes // (x.nbytes // x.shape[0]))
  total = np.zeros(2, np.uint64)
  for start in range(0, x.shape[0], rows):
    offset = jnp.uint32((start * row_words) % (1 << 32))
    total += np.asarray(_slice_terms(x[start:start + rows], offset), np.uint64)
  return (total % (1 << 32)).astype(np.uint32)


def tree_digests_in_slices(tree, chunk_bytes=SLICE_BYTES):
  """{leaf path: 16 hex digits}, equal to `tree_digests(tree)`, computed a slice of rows at
  a time: `tree_digests` compiles one program over the whole tree, and XLA:CPU
  materialises two 32-bit words per parameter word in it (twice the model, transiently),
  which an imported model cannot afford. The sums are order-free over words mixed with
  their flat position, so the slices' terms (positions offset by each slice's start) add
  up to the same value."""
  digest_of = functools.partial(_leaf_digest_in_slices, chunk_bytes=chunk_bytes)
  return {path_name(path): ''.join(f'{int(word):08x}' for word in digest_of(leaf))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
