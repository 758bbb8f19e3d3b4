"""jaxlab.models.dense: the dense products with a hand-written VJP compute what
autodiff of the plain ops computes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxlab.models import dense


@pytest.mark.parametrize('spec, x_shape, kernel_shape', [
    ('BLD,DNH->BLNH', (2, 5, 8), (8, 3, 4)),  # attention's query projection
    ('BLNH,NHD->BLD', (2, 5, 3, 4), (3, 4, 8)),  # its output projection
])
def test_einsum_values_and_gradients_match_jnp_einsum(spec, x_shape, kernel_shape):
  x = jax.random.normal(jax.random.PRNGKey(0), x_shape)
  kernel = jax.random.normal(jax.random.PRNGKey(1), kernel_shape)

  def loss(op):
    return jax.jit(jax.value_and_grad(lambda x, k: (jnp.sin(op(spec, x, k)) ** 2).sum(), (0, 1)))

  (ours, our_grads), (theirs, their_grads) = loss(dense.einsum)(x, kernel), loss(jnp.einsum)(x, kernel)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5)
  for a, b in zip(our_grads, their_grads):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_dot_general_gradients_match_lax_dot_general():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 6))
  kernel = jax.random.normal(jax.random.PRNGKey(1), (6, 5))
  numbers = (((2,), (0,)), ((), ()))

  def grads(op):
    return jax.jit(jax.grad(lambda x, k: (jax.nn.silu(op(x, k, numbers)) ** 2).sum(), (0, 1)))

  for a, b in zip(grads(dense.dot_general)(x, kernel), grads(lax.dot_general)(x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('spec, contracted', [
    ('BLD,DNH->BLNH', 1), ('BLNH,NHD->BLD', 2), ('BLD, DF -> BLF', 1),
    ('BLD,FD->BLF', 0),  # kernel contracted on its last axis
    ('BLD,DNH->BNLH', 0),  # output axes reordered
    ('BD,DF,FG->BG', 0), ('...D,DF->...F', 0), ('BD,BD->B', 0)])
def test_fast_path_covers_only_trailing_contractions(spec, contracted):
  assert dense._trailing_contraction(spec) == contracted  # pylint: disable=protected-access


def test_other_contractions_fall_back_to_jnp_einsum():
  x = jnp.arange(6.0).reshape(2, 3)
  kernel = jnp.arange(12.0).reshape(4, 3)
  np.testing.assert_array_equal(dense.einsum('BD,FD->BF', x, kernel),
                                jnp.einsum('BD,FD->BF', x, kernel))
