"""How one jaxlab array is made from Hugging Face tensors, one device's slice at a time.

A leaf describes a target array (its shape) and the checkpoint tensors it comes from
(`sources`, with the shapes they must have); `read(index, checkpoint, dtype)` returns the
block `index` (a tuple of slices over the target) and reads from the checkpoint only
what that block needs, so a device holding 1/8 of a kernel reads about 1/8 of it.
"""

import dataclasses
import math
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Source:
  name: str  # the checkpoint's tensor name
  shape: tuple  # the shape it must have


@dataclasses.dataclass(frozen=True)
class Rearranged:
  """target = source.transpose(perm).reshape(shape); a reshape only splits an axis into
  several or merges several into one (e.g. a (N H, D) projection into a (D, N, H) kernel)."""
  source: Source
  perm: tuple
  shape: tuple

  @property
  def sources(self):
    return (self.source,)

  def read(self, index, checkpoint, dtype):
    index = normalize(index, self.shape)
    read_t, block_shape, local = [], [], []
    for t_axes, s_axes in _groups(self._transposed_shape(), self.shape):
      if len(t_axes) == 1:  # one source axis split into s_axes: read the covering range
        rest = math.prod(self.shape[a] for a in s_axes[1:])
        first = index[s_axes[0]]
        read_t.append(slice(first.start * rest, first.stop * rest))
        block_shape += [first.stop - first.start] + [self.shape[a] for a in s_axes[1:]]
        local += [slice(None)] + [index[a] for a in s_axes[1:]]
      else:  # several source axes merged into one: read them whole
        read_t += [slice(None)] * len(t_axes)
        block_shape.append(self.shape[s_axes[0]])
        local.append(index[s_axes[0]])
    source_index = [None] * len(self.perm)
    for t_axis, source_axis in enumerate(self.perm):
      source_index[source_axis] = read_t[t_axis]
    block = checkpoint.read(self.source.name, tuple(source_index))
    block = block.transpose(self.perm).reshape(block_shape)[tuple(local)]
    return block.astype(dtype, copy=False)

  def _transposed_shape(self):
    return tuple(self.source.shape[axis] for axis in self.perm)


@dataclasses.dataclass(frozen=True)
class Stacked:
  """The layers of a scanned model, stacked on a leading axis."""
  layers: tuple  # one leaf per layer

  @property
  def shape(self):
    return (len(self.layers),) + tuple(self.layers[0].shape)

  @property
  def sources(self):
    return tuple(source for layer in self.layers for source in layer.sources)

  def read(self, index, checkpoint, dtype):
    index = normalize(index, self.shape)
    picked = range(len(self.layers))[index[0]]
    block = None
    for row, layer in enumerate(picked):  # filled in place: no second copy of the stack
      part = self.layers[layer].read(index[1:], checkpoint, dtype)
      if block is None:
        block = np.empty((len(picked),) + part.shape, dtype)
      block[row] = part
    return block


@dataclasses.dataclass(frozen=True)
class Computed:
  """A small array computed from whole source tensors (or from none: a fresh one)."""
  sources: tuple
  shape: tuple
  compute: Callable  # (*source arrays) -> array of `shape`

  def read(self, index, checkpoint, dtype):
    whole = [checkpoint.read(s.name, tuple(slice(0, n) for n in s.shape)) for s in self.sources]
    return np.asarray(self.compute(*whole), dtype)[normalize(index, self.shape)]


def linear(name, out_features, in_features, out_split=None, in_split=None):
  """A PyTorch Linear weight [out, in] as a Flax kernel [in..., out...], the in and out
  axes optionally split (e.g. out = N heads x H features)."""
  shape = tuple(in_split or (in_features,)) + tuple(out_split or (out_features,))
  return Rearranged(Source(name, (out_features, in_features)), (1, 0), shape)


def vector(name, size, split=None):
  """A bias or a norm's scale, optionally split (e.g. into N heads x H features)."""
  return Rearranged(Source(name, (size,)), (0,), tuple(split or (size,)))


def same(name, shape):
  return Rearranged(Source(name, tuple(shape)), tuple(range(len(shape))), tuple(shape))


def conv(name, out_channels, in_channels, kernel_size):
  """A PyTorch Conv2d weight [out, in, kh, kw] as a Flax kernel [kh, kw, in, out]."""
  return Rearranged(Source(name, (out_channels, in_channels, kernel_size, kernel_size)),
                    (2, 3, 1, 0), (kernel_size, kernel_size, in_channels, out_channels))


def zeros(shape):
  return Computed((), tuple(shape), lambda: np.zeros(shape, np.float32))


def normalize(index, shape):
  """Slices with explicit start and stop (step 1), one per axis."""
  index = tuple(index) + (slice(None),) * (len(shape) - len(tuple(index)))
  return tuple(slice(*s.indices(n)[:2]) for s, n in zip(index, shape))


def _groups(source_shape, target_shape):
  """Pairs (source axes, target axes) whose sizes multiply alike, left to right."""
  groups, i, j = [], 0, 0
  while i < len(source_shape) or j < len(target_shape):
    t_axes, s_axes = [i], [j]
    t_size, s_size = source_shape[i], target_shape[j]
    while t_size != s_size:
      if t_size < s_size:
        t_axes.append(len(t_axes) + i)
        t_size *= source_shape[t_axes[-1]]
      else:
        s_axes.append(len(s_axes) + j)
        s_size *= target_shape[s_axes[-1]]
    if len(t_axes) > 1 and len(s_axes) > 1:
      raise ValueError(f'cannot rearrange {source_shape} into {target_shape}')
    groups.append((tuple(t_axes), tuple(s_axes)))
    i, j = t_axes[-1] + 1, s_axes[-1] + 1
  return groups
