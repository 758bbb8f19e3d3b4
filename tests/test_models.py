"""The model registry, user models by import path, and the canonical-VJP convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from jaxlab import models
from jaxlab.errors import UserError
from jaxlab.models import conv
from tests.conftest import load_config, read_metrics, run_cli


def test_user_model_by_import_path_trains(tmp_path):
  config_file = tmp_path / 'user_exp.py'
  config_file.write_text(
      'from jaxlab import config as config_lib\n'
      'def get_config(arg=None):\n'
      '  c = config_lib.defaults()\n'
      '  c.model.name = "tests.fixtures.user_models:TinyNet"\n'
      '  c.model.width = 24\n'
      '  c.num_steps = 44\n'
      '  c.steps_per_loop = 11\n'
      '  c.log_every_steps = 11\n'
      '  return c\n')
  workdir = tmp_path / 'w'
  run_cli('train', f'--config={config_file}', f'--workdir={workdir}', '--config.model.width=16',
          check=True)
  losses = [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]
  assert losses[-1] < losses[0]


@pytest.mark.parametrize('name,message', [
    ('resnet9000', 'Registered models: ' + ', '.join(sorted(models.REGISTRY))),
    ('tests.fixtures.user_models:Nope', 'has no \'Nope\''),
    ('no_such_pkg.mod:Net', 'Cannot import'),
])
def test_bad_model_names_are_user_errors(name, message):
  config = load_config('digits_cnn')
  config.model.name = name
  with pytest.raises(UserError, match=message):
    models.build(config.model, (8, 8, 1), 10, nnx.Rngs(0), jnp.float32)


def test_model_config_field_the_model_rejects_is_a_user_error():
  config = load_config('mnist_mlp')
  config.model.name = 'cnn'  # mlp's `hidden` field means nothing to the CNN
  with pytest.raises(UserError, match='hidden'):
    models.build(config.model, (28, 28, 1), 10, nnx.Rngs(0), jnp.float32)


def test_mlp_is_the_keras_quickstart_model():
  config = load_config('mnist_mlp')
  model = models.build(config.model, (28, 28, 1), 10, nnx.Rngs(0), jnp.float32)
  shapes = jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  assert shapes == {'hidden': {0: {'kernel': (784, 128), 'bias': (128,)}},
                    'head': {'kernel': (128, 10), 'bias': (10,)}}
  assert model(jnp.zeros((3, 28, 28, 1))).shape == (3, 10)


@pytest.mark.parametrize('padding', ['SAME', 'VALID', ((2, 0), (1, 1))])
def test_canonical_vjp_convolution_matches_autodiff_bitwise(padding):
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 9, 7, 3))
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 5))
  numbers = lax.conv_dimension_numbers(x.shape, w.shape, conv.NHWC)

  def reference(x, w):
    return (lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=numbers) ** 2).sum()

  def ours(x, w):
    return (conv.conv_general_dilated_canonical_vjp(x, w, (1, 1), padding,
                                                    dimension_numbers=numbers,
                                                    out_sharding=None) ** 2).sum()

  assert ours(x, w) == reference(x, w)
  for a, b in zip(jax.grad(reference, (0, 1))(x, w), jax.grad(ours, (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# Strides with sizes they divide and do not (9 and 7 rows: the last rows unread),
# ResNet's 3x3/2 and 1x1/2, and unequal strides.
@pytest.mark.parametrize('window, strides, padding', [
    (3, (2, 2), ((1, 1), (1, 1))), (1, (2, 2), 'VALID'), (3, (2, 2), 'SAME'),
    (3, (2, 1), ((2, 0), (1, 1))), (2, (3, 3), 'VALID')])
def test_canonical_vjp_of_strided_convolutions_matches_autodiff(window, strides, padding):
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 9, 7, 3))
  w = jax.random.normal(jax.random.PRNGKey(1), (window, window, 3, 5))
  numbers = lax.conv_dimension_numbers(x.shape, w.shape, conv.NHWC)

  def reference(x, w):
    return (lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=numbers) ** 2).sum()

  def ours(x, w):
    return (conv.conv_general_dilated_canonical_vjp(x, w, strides, padding,
                                                    dimension_numbers=numbers) ** 2).sum()

  assert ours(x, w) == reference(x, w)
  for a, b in zip(jax.grad(reference, (0, 1))(x, w), jax.grad(ours, (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_canonical_vjp_falls_back_for_dilated_convolutions():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 8, 8, 2))
  w = jnp.ones((3, 3, 2, 4))
  numbers = lax.conv_dimension_numbers(x.shape, w.shape, conv.NHWC)
  ours = conv.conv_general_dilated_canonical_vjp(x, w, (1, 1), 'SAME', rhs_dilation=(2, 2),
                                                 dimension_numbers=numbers)
  reference = lax.conv_general_dilated(x, w, (1, 1), 'SAME', rhs_dilation=(2, 2),
                                       dimension_numbers=numbers)
  np.testing.assert_array_equal(ours, reference)


def test_activation_stored_for_the_kernel_gradient_is_bitwise_the_activation():
  # Magnitudes from subnormal to huge, signs, and exact zeros: x*1 plus zeros is x.
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, 8)) * jnp.logspace(-40, 30, 8)
  x = x.at[0, 0, 0].set(0.0)
  np.testing.assert_array_equal(jax.jit(conv._stored)(x), x)  # pylint: disable=protected-access
