"""Recurrent text classifiers: LSTM and GRU (`lstm`, `gru`).

tokens_BxL -> embed -> [(bidirectional) nnx.RNN -> dropout]* -> pool -> dense head.

Token id 0 is padding (jaxlab.data.tokenizers.PAD_ID) and comes only after the text, so
each row's length is its count of non-padding tokens. The RNN gets these as
`seq_lengths`: the forward state stops at the last token, the backward pass starts
there, so padding never reaches the state and appending padding changes no logit.

Pooling: 'last' (the final valid state of each direction), 'mean' (the outputs averaged
over the valid positions) or 'both' (the two concatenated).

Shape letters: B batch, L sequence, E embedding, H hidden state, D directions x H.
"""

import jax.numpy as jnp
from flax import nnx

from jaxlab.data import tokenizers
from jaxlab.models import layers

CELLS = {'lstm': nnx.OptimizedLSTMCell, 'gru': nnx.GRUCell}
GATES = {'lstm': 4, 'gru': 3}  # gate blocks per cell: i f g o; r z n
POOLS = ('last', 'mean', 'both')


def valid_mask(tokens_BxL):
  return tokens_BxL != tokenizers.PAD_ID


def masked_mean(x_BxLxD, mask_BxL):
  weights_BxLx1 = mask_BxL[..., None].astype(x_BxLxD.dtype)
  return (x_BxLxD * weights_BxLx1).sum(1) / jnp.maximum(weights_BxLx1.sum(1), 1)


def _cell(kind, in_features, hidden_dim, *, init, dtype, rngs):
  # Gate blocks are column-parallel under TP ('mlp'); the inputs (embedding or previous
  # layer's states) and the recurrent state are the 'embed'-like axis FSDP shards.
  return CELLS[kind](
      in_features, hidden_dim, dtype=dtype, rngs=rngs,
      kernel_init=layers.kernel_init(init, ('embed', 'mlp')),
      recurrent_kernel_init=nnx.with_partitioning(nnx.initializers.orthogonal(),
                                                  ('embed', 'mlp')),
      bias_init=layers.bias_init('mlp'))


class RNNClassifier(nnx.Module):
  """Class logits for zero-padded token rows; build it with `create`."""

  def __init__(self, kind, vocab_size, num_classes, *, num_layers, embed_dim, hidden_dim,
               bidirectional, pool, dropout_rate, kernel_init, dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.kind, self.hidden_dim, self.pool = kind, hidden_dim, pool
    self.embed = nnx.Embed(vocab_size, embed_dim, dtype=dtype, rngs=rngs,
                           embedding_init=nnx.with_partitioning(
                               nnx.initializers.normal(1.0), ('vocab', 'embed')))
    directions = 2 if bidirectional else 1
    self.layers = nnx.List()
    in_features = embed_dim
    for _ in range(num_layers):
      # rngs=False: the carry starts at zeros (given in __call__), so no RNG state is kept.
      make = lambda: nnx.RNN(_cell(kind, in_features, hidden_dim, init=kernel_init,
                                   dtype=dtype, rngs=rngs), rngs=False)
      self.layers.append(nnx.Bidirectional(make(), make(), rngs=False) if bidirectional
                         else make())
      in_features = directions * hidden_dim
    pooled = in_features * (2 if pool == 'both' else 1)
    self.dropout = nnx.Dropout(dropout_rate)
    self.head = layers.dense(pooled, num_classes, ('embed', 'classes'), init=kernel_init,
                             dtype=dtype, rngs=rngs)

  def __call__(self, tokens_BxL, *, rngs=None):
    mask_BxL = valid_mask(tokens_BxL)
    # At least 1, so an all-padding row reads the zero start state, not a padding one.
    lengths_B = jnp.maximum(mask_BxL.sum(1), 1)
    x_BxLxD = self.dropout(self.embed(tokens_BxL), rngs=rngs)
    for layer in self.layers:
      carry, x_BxLxD = layer(x_BxLxD, initial_carry=self._zero_carry(layer, tokens_BxL.shape[0]),
                             seq_lengths=lengths_B, return_carry=True)
      x_BxLxD = self.dropout(x_BxLxD, rngs=rngs)
    last_BxD = jnp.concatenate([self._state(c) for c in self._directions(layer, carry)], -1)
    pooled = {'last': [last_BxD], 'mean': [masked_mean(x_BxLxD, mask_BxL)]}
    pooled['both'] = pooled['last'] + pooled['mean']
    features_BxP = jnp.concatenate([p.astype(x_BxLxD.dtype) for p in pooled[self.pool]], -1)
    return self.head(self.dropout(features_BxP, rngs=rngs))

  def _zero_carry(self, layer, batch):
    zeros_BxH = jnp.zeros((batch, self.hidden_dim), jnp.float32)
    one = (zeros_BxH, zeros_BxH) if self.kind == 'lstm' else zeros_BxH
    return (one, one) if isinstance(layer, nnx.Bidirectional) else one

  @staticmethod
  def _directions(layer, carry):
    return carry if isinstance(layer, nnx.Bidirectional) else (carry,)

  def _state(self, carry):
    return carry[1] if self.kind == 'lstm' else carry  # the LSTM's carry is (c, h)


DEFAULTS = dict(
    num_layers=1,  # stacked RNN layers
    embed_dim=64,  # E, the token embedding width
    hidden_dim=128,  # H, the state width of each direction
    bidirectional=False,  # also read each row backwards and concatenate the two
    pool='last',  # 'last' valid state, masked 'mean' of the outputs, or 'both'
    dropout_rate=0.0,  # on the embeddings, between layers and before the head
    kernel_init='lecun_normal',  # input kernels and head (recurrent kernels: orthogonal)
)


def create_for(kind):
  """The factory of registry name `kind` ('lstm' or 'gru')."""

  def create(input_shape, num_classes, *, rngs, vocab_size=None, dtype=jnp.float32, **options):
    settings = {**DEFAULTS, **options}
    check(kind, input_shape, num_classes, vocab_size, settings)
    return RNNClassifier(kind, vocab_size, num_classes, rngs=rngs, dtype=dtype, **settings)

  create.__name__ = f'create_{kind}'
  return create


def check(kind, input_shape, num_classes, vocab_size, settings):
  """Raises UserError for settings the model cannot be built from."""
  layers.check_options(kind, settings, counts=('num_layers', 'embed_dim', 'hidden_dim'),
                       rates=('dropout_rate',),
                       choices=dict(pool=POOLS, bidirectional=(False, True),
                                    kernel_init=tuple(layers.INITIALIZERS)))
  problems = token_input_problems(input_shape, num_classes, vocab_size)
  layers.reject(kind, problems)


def token_input_problems(input_shape, num_classes, vocab_size):
  """What is wrong with a text classifier's data: token rows, classes and a vocabulary."""
  problems = []
  if len(input_shape) != 1:
    problems.append(f'the input must be token sequences of shape (seq_len,), got '
                    f'{input_shape}; pick a text data set (e.g. --config.data.name='
                    'python_snippets)')
  if num_classes < 2:
    problems.append(f'the data set has {num_classes} classes; it needs at least 2')
  if not vocab_size:
    problems.append('the data set names no vocabulary size (is it a text data set?)')
  return problems


def num_params(kind, vocab_size, num_classes, settings):
  """The parameter count of `{**DEFAULTS, **options}` settings, without building the model."""
  s = {**DEFAULTS, **settings}
  h, directions = s['hidden_dim'], 2 if s['bidirectional'] else 1
  total, in_features = vocab_size * s['embed_dim'], s['embed_dim']
  for _ in range(s['num_layers']):
    # Input and recurrent kernels for every gate block, and one bias per block.
    total += directions * GATES[kind] * h * (in_features + h + 1)
    in_features = directions * h
  pooled = in_features * (2 if s['pool'] == 'both' else 1)
  return total + pooled * num_classes + num_classes
