"""A Transformer encoder text classifier (`transformer_encoder`).

tokens_BxL -> embed -> [RMSNorm -> self-attention -> + -> RMSNorm -> SwiGLU -> +]*
-> RMSNorm -> pool -> dropout -> dense head.

Attention is bidirectional with a padding mask: no query attends to a padding key
(token id 0, after the text), positions are rotary (RoPE, relative), and the pooling
reads only valid positions, so appending padding changes no logit. Pooling: the
masked 'mean' of the outputs, or 'cls' (a learned vector put before the tokens).
The pieces are transformer_lm's (jaxlab.models.transformer), without its causal mask.

Shape letters: B batch, L sequence, D embed, N heads, H head width, C classes.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers, rnn, transformer

POOLS = ('mean', 'cls')


class BidirectionalAttention(transformer.Attention):
  """transformer_lm's attention (RoPE, GQA), every query seeing every valid key."""

  def __call__(self, x_BxLxD, angles, mask_Bx1x1xL):
    q_BxLxNxH = transformer.apply_rope(self.query(x_BxLxD), angles)
    k_BxLxKxH = transformer.apply_rope(self.key(x_BxLxD), angles)
    y_BxLxNxH = jax.nn.dot_product_attention(q_BxLxNxH, k_BxLxKxH, self.value(x_BxLxD),
                                             mask=mask_Bx1x1xL,
                                             implementation=self.implementation)
    return self.out(y_BxLxNxH)


class EncoderBlock(nnx.Module):

  def __init__(self, embed_dim, num_heads, mlp_dim, *, dropout_rate, init,
               attention_implementation, dtype, rngs):
    self.attention_norm = transformer.rms_norm(embed_dim, dtype=dtype, rngs=rngs)
    self.attention = BidirectionalAttention(embed_dim, num_heads, num_heads, init=init,
                                            implementation=attention_implementation,
                                            dtype=dtype, rngs=rngs)
    self.mlp_norm = transformer.rms_norm(embed_dim, dtype=dtype, rngs=rngs)
    self.mlp = transformer.SwiGLU(embed_dim, mlp_dim, init=init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x_BxLxD, angles, mask_Bx1x1xL, rngs=None):
    attended = self.attention(self.attention_norm(x_BxLxD), angles, mask_Bx1x1xL)
    x_BxLxD = x_BxLxD + self.dropout(attended, rngs=rngs)
    return x_BxLxD + self.dropout(self.mlp(self.mlp_norm(x_BxLxD)), rngs=rngs)


class TextEncoder(nnx.Module):
  """Class logits for zero-padded token rows; build it with `create`."""

  def __init__(self, vocab_size, num_classes, *, num_layers, embed_dim, num_heads, mlp_dim,
               dropout_rate, rope_base, pool, kernel_init, attention_implementation,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab_size, embed_dim, dtype=dtype, rngs=rngs,
                           embedding_init=nnx.with_partitioning(
                               nnx.initializers.normal(embed_dim ** -0.5), ('vocab', 'embed')))
    self.cls_D = nnx.Param(nnx.with_partitioning(nnx.initializers.normal(embed_dim ** -0.5),
                                                 ('embed',))(rngs.params(), (embed_dim,))
                           ) if pool == 'cls' else None
    self.blocks = nnx.List([
        EncoderBlock(embed_dim, num_heads, mlp_dim, dropout_rate=dropout_rate, init=kernel_init,
                     attention_implementation=attention_implementation, dtype=dtype, rngs=rngs)
        for _ in range(num_layers)])
    self.final_norm = transformer.rms_norm(embed_dim, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)
    self.head = layers.dense(embed_dim, num_classes, ('embed', 'classes'), init=kernel_init,
                             dtype=dtype, rngs=rngs)
    self.head_dim, self.rope_base = embed_dim // num_heads, rope_base

  def __call__(self, tokens_BxL, *, rngs=None):
    mask_BxL = rnn.valid_mask(tokens_BxL)
    x_BxLxD = self.embed(tokens_BxL)
    if self.cls_D is not None:  # position 0, always valid
      cls_Bx1xD = jnp.broadcast_to(self.cls_D[...].astype(x_BxLxD.dtype),
                                   (x_BxLxD.shape[0], 1, x_BxLxD.shape[2]))
      x_BxLxD = jnp.concatenate([cls_Bx1xD, x_BxLxD], 1)
      mask_BxL = jnp.concatenate([jnp.ones_like(mask_BxL[:, :1]), mask_BxL], 1)
    positions_BxL = jnp.broadcast_to(jnp.arange(x_BxLxD.shape[1]), mask_BxL.shape)
    angles = transformer.rotary_angles(positions_BxL, self.head_dim, self.rope_base)
    x_BxLxD = self.dropout(x_BxLxD, rngs=rngs)
    for block in self.blocks:
      x_BxLxD = block(x_BxLxD, angles, mask_BxL[:, None, None, :], rngs)
    x_BxLxD = self.final_norm(x_BxLxD)
    pooled_BxD = x_BxLxD[:, 0] if self.cls_D is not None else rnn.masked_mean(x_BxLxD, mask_BxL)
    return self.head(self.dropout(pooled_BxD, rngs=rngs))


DEFAULTS = dict(
    num_layers=2,  # encoder blocks
    embed_dim=128,  # D, the residual stream's width
    num_heads=4,  # N heads; each is H = D / N wide (even: RoPE rotates pairs)
    mlp_dim=None,  # the SwiGLU hidden width; None: 4 D
    dropout_rate=0.0,  # on the embeddings, each block's residual branches and the pooled vector
    rope_base=10000.0,  # RoPE wavelengths run from 2 pi up to about 2 pi * rope_base
    pool='mean',  # masked 'mean' of the outputs, or a learned 'cls' vector's output
    kernel_init='lecun_normal',  # initialiser of the dense kernels (layers.INITIALIZERS)
    attention_implementation=None,  # jax.nn.dot_product_attention's: None, 'xla' or 'cudnn'
)


def create(input_shape, num_classes, *, rngs, vocab_size=None, dtype=jnp.float32, **options):
  """The classifier of token rows of shape `input_shape` = (seq_len,) into `num_classes`."""
  settings = resolve(options)
  check(input_shape, num_classes, vocab_size, settings)
  return TextEncoder(vocab_size, num_classes, rngs=rngs, dtype=dtype, **settings)


def resolve(options):
  settings = {**DEFAULTS, **options}
  if settings['mlp_dim'] is None:
    settings['mlp_dim'] = 4 * settings['embed_dim']
  return settings


def check(input_shape, num_classes, vocab_size, settings):
  """Raises UserError for settings the model cannot be built from."""
  layers.check_options('transformer_encoder', settings,
                       counts=('num_layers', 'embed_dim', 'num_heads', 'mlp_dim'),
                       rates=('dropout_rate',),
                       choices=dict(pool=POOLS, kernel_init=tuple(layers.INITIALIZERS),
                                    attention_implementation=transformer.ATTENTION_IMPLEMENTATIONS))
  problems = rnn.token_input_problems(input_shape, num_classes, vocab_size)
  d, heads = settings['embed_dim'], settings['num_heads']
  if d % heads or (d // heads) % 2:
    problems.append(f'embed_dim={d} must be num_heads={heads} times an even head width '
                    '(RoPE rotates feature pairs)')
  rope_base = settings['rope_base']
  if isinstance(rope_base, bool) or not isinstance(rope_base, (int, float)) or rope_base <= 1:
    problems.append(f'rope_base={rope_base!r} must be a number above 1')
  layers.reject('transformer_encoder', problems)


def num_params(vocab_size, num_classes, settings):
  """The parameter count of `resolve`d settings, without building the model."""
  d, f = settings['embed_dim'], settings['mlp_dim']
  per_layer = 2 * d + 4 * d * d + 3 * d * f  # two norms, q k v out, SwiGLU's three matrices
  cls = d if settings['pool'] == 'cls' else 0
  return (vocab_size * d + cls + settings['num_layers'] * per_layer + d  # + the final norm
          + d * num_classes + num_classes)
