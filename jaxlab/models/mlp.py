"""Multi-layer perceptron: Flatten -> [Dense -> relu]* -> Dense (logits).

`mlp` with hidden=(128,) is the Keras MNIST quickstart model.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers


class MLP(nnx.Module):

  def __init__(self, input_shape, num_classes, *, hidden=(128,), dropout_rate=0.0,
               kernel_init='glorot_uniform', dtype=jnp.float32, rngs: nnx.Rngs):
    in_features = 1
    for size in input_shape:
      in_features *= size
    self.hidden = nnx.List()
    for index, width in enumerate(hidden):
      self.hidden.append(layers.dense(in_features, width, layers.hidden_axes(index),
                                      init=kernel_init, dtype=dtype, rngs=rngs))
      in_features = width
    head_in = layers.hidden_axes(len(hidden) - 1)[1] if hidden else 'embed'
    self.head = layers.dense(in_features, num_classes, (head_in, 'classes'),
                             init=kernel_init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x_BxHxWxC, *, rngs=None):
    x_BxD = x_BxHxWxC.reshape(x_BxHxWxC.shape[0], -1)
    for layer in self.hidden:
      x_BxD = self.dropout(jax.nn.relu(layer(x_BxD)), rngs=rngs)
    return self.head(x_BxD)


def create(input_shape, num_classes, *, rngs, **kwargs):
  return MLP(input_shape, num_classes, rngs=rngs, **kwargs)
