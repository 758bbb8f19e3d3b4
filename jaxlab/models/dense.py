"""Dense products whose kernel gradient XLA:CPU computes from the stored operands.

Why: autodiff's kernel gradient of y = x.W is x^T.dy, and XLA:CPU fuses the elementwise
backward ops that produce dy (SwiGLU's gating, RMSNorm's scaling, the layer scan's
slicing of saved activations) into a transposed copy of dy made for that product. The
copy's loop then reads each of those inputs at a stride of the whole row: in lm_small's
train step (6 x 320, 16 x 256 tokens) such copies took a third of the step. Written as
a custom VJP over the flattened leading axes, the same two products read dy and x as
stored (3.3 -> 2.5 s per step on 2 cores). Only on CPU: other backends get the plain
product, and the gradients are the same products either way (tested).

`dot_general` is a drop-in for nnx.Linear's, `einsum` for nnx.Einsum's `einsum_op`;
both fall back to the plain op for what they do not cover.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax


def dot_general(inputs, kernel, dimension_numbers, precision=None, **kwargs):
  """lax.dot_general; inputs' last axis against a 2-D kernel's first takes the fast path."""
  kwargs = {k: v for k, v in kwargs.items() if v is not None}  # e.g. out_sharding=None
  if (kernel.ndim == 2 and not kwargs and _on_cpu()
      and dimension_numbers == (((inputs.ndim - 1,), (0,)), ((), ()))):
    return contract_trailing(inputs, kernel, 1, precision)
  return lax.dot_general(inputs, kernel, dimension_numbers, precision=precision, **kwargs)


def einsum(spec, inputs, kernel, precision=None, **kwargs):
  """jnp.einsum; a layer's 'AB..C,C..D->AB..D' (inputs' trailing axes against the
  kernel's leading ones, the rest kept in order) takes the fast path."""
  kwargs = {k: v for k, v in kwargs.items() if v is not None}
  contracted = _trailing_contraction(spec)
  if contracted and not kwargs and _on_cpu():
    return contract_trailing(inputs, kernel, contracted, precision)
  return jnp.einsum(spec, inputs, kernel, precision=precision, **kwargs)


def _on_cpu():
  return jax.default_backend() == 'cpu'


def _trailing_contraction(spec):
  """How many trailing input axes `spec` contracts with the kernel's leading ones, or 0
  when it is any other contraction."""
  spec = spec.replace(' ', '')
  if '->' not in spec or '.' in spec:
    return 0
  operands, output = spec.split('->')
  if operands.count(',') != 1:
    return 0
  lhs, rhs = operands.split(',')
  for count in range(1, min(len(lhs), len(rhs)) + 1):
    kept, contracted = lhs[:-count], lhs[-count:]
    if (rhs[:count] == contracted and output == kept + rhs[count:]
        and len(set(lhs + rhs)) == len(lhs) + len(rhs) - count):
      return count
  return 0


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def contract_trailing(inputs, kernel, contracted, precision):
  """inputs' last `contracted` axes against kernel's first, as one 2-D product."""
  return _forward(inputs, kernel, contracted, precision)[0]


def _forward(inputs, kernel, contracted, precision):
  inner = math.prod(kernel.shape[:contracted])
  inputs_NxK = inputs.reshape(-1, inner)
  kernel_KxM = kernel.reshape(inner, -1)
  y_NxM = jnp.dot(inputs_NxK, kernel_KxM, precision=precision)
  y = y_NxM.reshape(inputs.shape[:inputs.ndim - contracted] + kernel.shape[contracted:])
  return y, (inputs, kernel)


def _backward(contracted, precision, residuals, dy):
  inputs, kernel = residuals
  inner = math.prod(kernel.shape[:contracted])
  inputs_NxK = inputs.reshape(-1, inner)
  kernel_KxM = kernel.reshape(inner, -1)
  dy_NxM = dy.reshape(inputs_NxK.shape[0], -1).astype(inputs.dtype)
  dinputs = lax.dot_general(dy_NxM, kernel_KxM, (((1,), (1,)), ((), ())), precision=precision)
  # One product contracting the rows of both operands: nothing for XLA to fuse into.
  dkernel = lax.dot_general(inputs_NxK, dy_NxM, (((0,), (0,)), ((), ())), precision=precision)
  return dinputs.reshape(inputs.shape), dkernel.reshape(kernel.shape).astype(kernel.dtype)


contract_trailing.defvjp(_forward, _backward)
