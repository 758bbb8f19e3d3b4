"""A 2-D convolution whose backward pass is written as ordinary NHWC/HWIO convolutions.

Why: inside `lax.scan` (several train steps per compiled call), XLA:CPU keeps
autodiff's backward convolutions in non-canonical dimension orders and runs them
with a slow generic loop emitter, about 10x slower than the same step outside
a loop (50x for a strided convolution's gradients). Expressing both gradients as
canonical forward convolutions (plus explicit transposes) gives the same numbers and
the fast kernels everywhere. A strided convolution's gradients are the same two
convolutions with the output gradient dilated by the stride (lhs_dilation for the
input's gradient, rhs_dilation for the kernel's), which XLA:CPU runs with its fast
kernels too, without materialising the zeros.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxlab.models import layers

NHWC = ('NHWC', 'HWIO', 'NHWC')


def conv_general_dilated_canonical_vjp(inputs, kernel, window_strides, padding,
                                       lhs_dilation=None, rhs_dilation=None,
                                       dimension_numbers=None, feature_group_count=1,
                                       precision=None, **kwargs):
  """Drop-in for `lax.conv_general_dilated` (what nnx.Conv calls); the fast path
  covers undilated, ungrouped NHWC convolutions of any stride, the rest falls back."""
  kwargs = {k: v for k, v in kwargs.items() if v is not None}  # e.g. out_sharding=None
  simple = (inputs.ndim == 4 and not kwargs and feature_group_count == 1
            and _is_unit(lhs_dilation) and _is_unit(rhs_dilation)
            and _is_nhwc(dimension_numbers, inputs.ndim))
  if not simple:
    return lax.conv_general_dilated(inputs, kernel, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  strides = tuple(int(s) for s in window_strides)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(inputs.shape[1:3], kernel.shape[:2], strides, padding)
  return conv2d_nhwc(inputs, kernel, strides, tuple(tuple(p) for p in padding), precision)


def _is_unit(dilation):
  return dilation is None or all(d == 1 for d in dilation)


def _is_nhwc(dimension_numbers, ndim):
  if dimension_numbers is None:
    return False
  return lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, NHWC) == \
      lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, dimension_numbers)


def _conv(x, w, padding, precision, strides=(1, 1), lhs_dilation=None, rhs_dilation=None):
  return lax.conv_general_dilated(x, w, strides, padding, lhs_dilation, rhs_dilation,
                                  dimension_numbers=NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d_nhwc(x_BxHxWxI, w_KxKxIxO, strides, padding, precision):
  return _conv(x_BxHxWxI, w_KxKxIxO, padding, precision, strides)


def _forward(x, w, strides, padding, precision):
  return _conv(x, w, padding, precision, strides), (x, w)


def _backward(strides, padding, precision, residuals, dy_BxHxWxO):
  x, w = residuals
  dx_padding, dw_padding = [], []
  for axis in range(2):
    size, kernel, low = x.shape[1 + axis], w.shape[axis], padding[axis][0]
    # The output gradient dilated by the stride: where each output read the input from.
    dilated = (dy_BxHxWxO.shape[1 + axis] - 1) * strides[axis] + 1
    dx_padding.append((kernel - 1 - low, size + low - dilated))
    dw_padding.append((low, kernel - 1 + dilated - size - low))
  # d/dx: correlate dy with the kernel rotated by 180 degrees, in/out swapped.
  w_flipped_KxKxOxI = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  dx = _conv(dy_BxHxWxO.astype(w.dtype), w_flipped_KxKxOxI, dx_padding, precision,
             lhs_dilation=strides)
  # d/dw: a convolution over the batch, with channels as the batch dimension.
  x_IxHxWxB = _stored(x).transpose(3, 1, 2, 0)
  dy_HxWxBxO = dy_BxHxWxO.astype(x.dtype).transpose(1, 2, 0, 3)
  dw_IxKxKxO = _conv(x_IxHxWxB, dy_HxWxBxO, dw_padding, precision, rhs_dilation=strides)
  return dx.astype(x.dtype), dw_IxKxKxO.transpose(1, 2, 0, 3).astype(w.dtype)


conv2d_nhwc.defvjp(_forward, _backward)


def _stored(x_BxHxWxI):
  """x, computed into memory before the transpose that follows it.

  Why: XLA:CPU fuses the elementwise ops that produce x (in a ResNet, the BatchNorm,
  ReLU and residual adds of several blocks) into that transpose, recomputing them in
  a loop that reads each input at a stride of H*W*I floats: for CIFAR ResNet-18's
  first stage ~20x slower than transposing x once it is stored (a third of the whole
  train step). A product with the identity is an op those elementwise ops cannot be
  fused across (XLA:CPU drops optimization barriers); it is exact (x*1 plus zeros)
  and costs a 1x1 convolution. Other backends transpose x directly.
  """
  if jax.default_backend() != 'cpu':
    return x_BxHxWxI
  with jax.named_scope(layers.NOT_MODEL_FLOPS):
    identity_IxI = jnp.eye(x_BxHxWxI.shape[-1], dtype=x_BxHxWxI.dtype)
    return jnp.einsum('bhwi,ij->bhwj', x_BxHxWxI, identity_IxI,
                      precision=lax.Precision.HIGHEST)
