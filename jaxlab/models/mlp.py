"""Multi-layer perceptron: Flatten -> [Dense -> relu]* -> Dense (logits).

`mlp` with hidden=(128,) is the Keras MNIST quickstart model.
"""

import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers


class MLP(nnx.Module):

  def __init__(self, input_shape, num_classes, *, hidden=(128,), dropout_rate=0.0,
               kernel_init='glorot_uniform', dtype=jnp.float32, rngs: nnx.Rngs):
    in_features = 1
    for size in input_shape:
      in_features *= size
    self.hidden, self.head = layers.classifier(in_features, hidden, num_classes,
                                               init=kernel_init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x_BxHxWxC, *, rngs=None):
    x_BxD = x_BxHxWxC.reshape(x_BxHxWxC.shape[0], -1)
    return layers.classify(self.hidden, self.head, self.dropout, x_BxD, rngs)


def create(input_shape, num_classes, *, rngs, **kwargs):
  layers.check_options('mlp', kwargs, sizes=('hidden',), rates=('dropout_rate',),
                       choices=dict(kernel_init=tuple(layers.INITIALIZERS)))
  return MLP(input_shape, num_classes, rngs=rngs, **kwargs)
