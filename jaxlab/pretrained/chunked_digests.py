"""The checkpoint digests of `jaxlab.checkpoint.digest`, computed a slice of rows at a time.

`digest.tree_digests` compiles one program over the whole tree, and XLA:CPU materialises
two 32-bit words per parameter word in it: twice the model's size, transiently. For an
imported model that would break the "no full extra copy" budget, so the import computes
the same sums slice by slice: a leaf's digest is an order-free sum mod 2**32 over its
words, each mixed with its flat position, so summing the slices' terms (positions offset
by each slice's start) gives exactly `digest.tree_digests`'s value.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.checkpoint import digest

CHUNK_BYTES = 64 << 20  # the most of one leaf processed at once


@jax.jit
def _slice_terms(x, offset):
  """The digest sums of one slice whose first word sits at flat position `offset`."""
  words = digest._words(x)  # pylint: disable=protected-access
  position = jnp.arange(words.size, dtype=jnp.uint32) + offset
  return jnp.stack([jnp.sum(digest._fmix32(words ^ digest._fmix32(position ^ jnp.uint32(seed))),  # pylint: disable=protected-access
                            dtype=jnp.uint32) for seed in digest._SEEDS])  # pylint: disable=protected-access


def _leaf_digest(x, chunk_bytes):
  if x.ndim == 0 or x.nbytes <= chunk_bytes:
    return np.asarray(_slice_terms(x, jnp.uint32(0)))
  row_words = math.prod(x.shape[1:]) * max(x.dtype.itemsize // 4, 1)
  rows = max(1, chunk_bytes // (x.nbytes // x.shape[0]))
  total = np.zeros(2, np.uint64)
  for start in range(0, x.shape[0], rows):
    offset = jnp.uint32((start * row_words) % (1 << 32))
    total += np.asarray(_slice_terms(x[start:start + rows], offset), np.uint64)
  return (total % (1 << 32)).astype(np.uint32)


def tree_digests(tree, chunk_bytes=CHUNK_BYTES):
  """{leaf path: 16 hex digits}, equal to `jaxlab.checkpoint.digest.tree_digests(tree)`."""
  digest_of = functools.partial(_leaf_digest, chunk_bytes=chunk_bytes)
  return {digest.path_name(path): ''.join(f'{int(word):08x}' for word in digest_of(leaf))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
