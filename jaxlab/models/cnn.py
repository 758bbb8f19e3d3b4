"""Small convolutional networks: [Conv -> relu -> pool]* -> Flatten -> [Dense -> relu]* -> Dense.

The defaults are the Flax examples' MNIST CNN (conv 32, conv 64, avg-pool, dense 256).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers
from jaxlab.models.conv import conv_general_dilated_canonical_vjp

POOLS = {'avg': nnx.avg_pool, 'max': nnx.max_pool}


class CNN(nnx.Module):

  def __init__(self, input_shape, num_classes, *, conv_features=(32, 64), kernel_size=3,
               pool='avg', dense_features=(256,), dropout_rate=0.0,
               kernel_init='lecun_normal', dtype=jnp.float32, rngs: nnx.Rngs):
    height, width, channels = input_shape
    self.convs = nnx.List()
    for features in conv_features:
      self.convs.append(nnx.Conv(
          channels, features, (kernel_size, kernel_size), padding='SAME',
          kernel_init=layers.kernel_init(kernel_init, (None, None, 'conv_in', 'conv_out')),
          bias_init=layers.bias_init('conv_out'), dtype=dtype,
          conv_general_dilated=conv_general_dilated_canonical_vjp, rngs=rngs))
      channels = features
      height, width = height // 2, width // 2
    self.pool = pool
    in_features = height * width * channels
    self.dense, self.head = layers.classifier(in_features, dense_features, num_classes,
                                              init=kernel_init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x_BxHxWxC, *, rngs=None):
    x = x_BxHxWxC
    for conv in self.convs:
      x = POOLS[self.pool](jax.nn.relu(conv(x)), window_shape=(2, 2), strides=(2, 2))
    return layers.classify(self.dense, self.head, self.dropout, x.reshape(x.shape[0], -1), rngs)


def create(input_shape, num_classes, *, rngs, **kwargs):
  layers.check_options('cnn', kwargs, sizes=('conv_features', 'dense_features'),
                       counts=('kernel_size',), rates=('dropout_rate',),
                       choices=dict(pool=tuple(POOLS), kernel_init=tuple(layers.INITIALIZERS)))
  return CNN(input_shape, num_classes, rngs=rngs, **kwargs)
