"""An MLP for table rows (`tabular_mlp`): [standardised numbers ; category embeddings] ->
[Dense -> relu -> dropout]* -> Dense.

The inputs are what `jaxlab.data.table_encoding` makes: numeric_BxN (standardised values
and missing-indicators) and categorical_BxK (indices into one embedding table that every
categorical column shares, each column owning its own range of rows, as the category
offsets of rtdl's FT-Transformer). Each category gets `embed_dim` learned numbers; the
K embeddings are concatenated after the numbers.

Shape letters: B batch, N numeric features, K categorical columns, E embed width.
"""

import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers


class TabularMLP(nnx.Module):

  def __init__(self, input_shape, num_outputs, *, vocab_size, hidden=(128, 128), embed_dim=8,
               dropout_rate=0.0, kernel_init='glorot_uniform', dtype=jnp.float32,
               rngs: nnx.Rngs):
    (num_numeric,), (num_categorical,) = input_shape
    self.embed = nnx.Embed(max(vocab_size, 1), embed_dim, dtype=dtype, rngs=rngs,
                           embedding_init=nnx.with_partitioning(
                               nnx.initializers.normal(0.1), ('vocab', 'embed')))
    in_features = num_numeric + num_categorical * embed_dim
    self.hidden, self.head = layers.classifier(in_features, hidden, num_outputs,
                                               init=kernel_init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, numeric_BxN, categorical_BxK, *, rngs=None):
    embedded_BxKxE = self.embed(categorical_BxK)
    flat_BxKE = embedded_BxKxE.reshape(categorical_BxK.shape[0], -1)
    x_BxD = jnp.concatenate([numeric_BxN.astype(flat_BxKE.dtype), flat_BxKE], axis=-1)
    return layers.classify(self.hidden, self.head, self.dropout, x_BxD, rngs)


def create(input_shape, num_outputs, *, rngs, vocab_size=0, **kwargs):
  """input_shape: ((numeric features,), (categorical columns,)), as the table tasks give."""
  layers.check_options('tabular_mlp', kwargs, sizes=('hidden',), counts=('embed_dim',),
                       rates=('dropout_rate',), choices=dict(kernel_init=tuple(layers.INITIALIZERS)))
  if len(input_shape) != 2 or not all(isinstance(s, tuple) and len(s) == 1 for s in input_shape):
    layers.reject('tabular_mlp', [f'it reads table rows (numeric and categorical features, '
                                  f'--config.data.name=table), not inputs of shape {input_shape}'])
  return TabularMLP(input_shape, num_outputs, vocab_size=vocab_size, rngs=rngs, **kwargs)
