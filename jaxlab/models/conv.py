"""A 2-D convolution whose backward pass is written as ordinary NHWC/HWIO convolutions.

Why: inside `lax.scan` (several train steps per compiled call), XLA:CPU keeps
autodiff's backward convolutions in non-canonical dimension orders and runs them
with a slow generic loop emitter, about 10x slower than the same step outside
a loop. Expressing both gradients as canonical forward convolutions (plus
explicit transposes) gives the same numbers and the fast kernels everywhere.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

NHWC = ('NHWC', 'HWIO', 'NHWC')


def conv_general_dilated_canonical_vjp(inputs, kernel, window_strides, padding,
                                       lhs_dilation=None, rhs_dilation=None,
                                       dimension_numbers=None, feature_group_count=1,
                                       precision=None, **kwargs):
  """Drop-in for `lax.conv_general_dilated` (what nnx.Conv calls); the fast path
  covers stride-1, undilated, ungrouped NHWC convolutions, the rest falls back."""
  kwargs = {k: v for k, v in kwargs.items() if v is not None}  # e.g. out_sharding=None
  simple = (inputs.ndim == 4 and tuple(window_strides) == (1, 1) and not kwargs
            and feature_group_count == 1 and _is_unit(lhs_dilation) and _is_unit(rhs_dilation)
            and _is_nhwc(dimension_numbers, inputs.ndim))
  if not simple:
    return lax.conv_general_dilated(inputs, kernel, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(inputs.shape[1:3], kernel.shape[:2], (1, 1), padding)
  return conv2d_nhwc(inputs, kernel, tuple(tuple(p) for p in padding), precision)


def _is_unit(dilation):
  return dilation is None or all(d == 1 for d in dilation)


def _is_nhwc(dimension_numbers, ndim):
  if dimension_numbers is None:
    return False
  return lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, NHWC) == \
      lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, dimension_numbers)


def _conv(x, w, padding, precision):
  return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=NHWC,
                                  precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d_nhwc(x_BxHxWxI, w_KxKxIxO, padding, precision):
  return _conv(x_BxHxWxI, w_KxKxIxO, padding, precision)


def _forward(x, w, padding, precision):
  return _conv(x, w, padding, precision), (x, w)


def _backward(padding, precision, residuals, dy_BxHxWxO):
  x, w = residuals
  (pad_top, pad_bottom), (pad_left, pad_right) = padding
  kh, kw = w.shape[:2]
  # d/dx: correlate dy with the kernel rotated by 180 degrees, in/out swapped.
  w_flipped_KxKxOxI = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  dx_padding = ((kh - 1 - pad_top, kh - 1 - pad_bottom), (kw - 1 - pad_left, kw - 1 - pad_right))
  dx = _conv(dy_BxHxWxO.astype(w.dtype), w_flipped_KxKxOxI, dx_padding, precision)
  # d/dw: a convolution over the batch, with channels as the batch dimension.
  x_IxHxWxB = x.transpose(3, 1, 2, 0)
  dy_HxWxBxO = dy_BxHxWxO.astype(x.dtype).transpose(1, 2, 0, 3)
  dw_IxKxKxO = _conv(x_IxHxWxB, dy_HxWxBxO, padding, precision)
  return dx.astype(x.dtype), dw_IxKxKxO.transpose(1, 2, 0, 3).astype(w.dtype)


conv2d_nhwc.defvjp(_forward, _backward)
