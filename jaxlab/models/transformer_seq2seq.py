"""Encoder-decoder Transformer (`transformer_seq2seq`), built from transformer_lm's blocks
(pre-RMSNorm, RoPE, grouped-query attention, SwiGLU: `jaxlab.models.transformer`).

source_BxS -> embed -> [bidirectional Block]* -> RMSNorm = memory
target_in_BxT -> embed -> [causal self-attention, cross-attention to the memory, SwiGLU]*
-> RMSNorm -> logits_BxTxV

Token id 0 is padding (jaxlab.data.tokenizers.PAD_ID): padded source positions are never
attended to, and the decoder is causal, so padding after a sequence changes nothing
before it. Vocabularies: the source and target may have their own (two tables), or
share one (`share_embeddings`: one table for both sides, which needs one tokenizer);
`tie_embeddings` reads the logits off the decoder's table instead of a separate head.

Decoding (`jaxlab.inference.seq2seq_decoding`) calls these same modules: `encode` once,
`cross_memory` once (each layer's cross-attention keys and values of the source), then
`decode` one position at a time with each layer's self-attention `KVCache`, or on the
whole prefix without a cache (the reference the cache is tested against).

Layers run as a Python loop (no scan): decoding passes a cache per layer.
Shape letters as in transformer.py; S source length, T target length, M memory positions.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers, transformer, transformer_settings

DEFAULTS = dict(
    num_layers=3,  # encoder blocks
    num_decoder_layers=None,  # decoder blocks; None: num_layers
    embed_dim=128,  # D, the residual stream's width
    num_heads=4,  # N query heads
    num_kv_heads=None,  # K key/value heads, dividing N (grouped-query attention); None: N
    mlp_dim=None,  # F, the SwiGLU hidden width; None: 4 D
    head_dim=None,  # H; None: D / N
    dropout_rate=0.0,  # on the embeddings and every residual branch
    rope_base=10000.0,  # RoPE's longest wavelength / 2 pi (self-attention only)
    share_embeddings=False,  # one table for source and target tokens (needs one vocabulary)
    tie_embeddings=True,  # logits from the decoder's embedding table (no separate head)
    kernel_init='lecun_normal',  # initialiser of the dense kernels
    norm_eps=1e-6,  # the RMSNorms' epsilon
)


class CrossAttention(transformer.Attention):
  """Attention of decoder positions to the encoder's memory: no rotary positions (the
  source positions are the encoder's business), keys and values computed once per source."""

  def memory(self, memory_BxMxD):
    """(keys, values) of the memory, each B x M x K x H: reused at every decoding step."""
    return self.key(memory_BxMxD), self.value(memory_BxMxD)

  def __call__(self, x_BxTxD, memory_kv, mask_Bx1x1xM):  # pylint: disable=arguments-renamed
    keys, values = memory_kv
    q_BxTxNxH = self.query(x_BxTxD).astype(keys.dtype)
    return self.out(jax.nn.dot_product_attention(q_BxTxNxH, keys, values, mask=mask_Bx1x1xM))


class DecoderBlock(nnx.Module):
  """Pre-norm: causal self-attention, cross-attention, SwiGLU, each added to the stream."""

  def __init__(self, embed_dim, num_heads, num_kv_heads, mlp_dim, *, head_dim, norm_eps,
               dropout_rate, init, dtype, rngs):
    norm = lambda: transformer.rms_norm(embed_dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    attention = lambda cls: cls(embed_dim, num_heads, num_kv_heads, head_dim=head_dim, init=init,
                                implementation=None, dtype=dtype, rngs=rngs)
    self.attention_norm = norm()
    self.attention = attention(transformer.Attention)
    self.cross_norm = norm()
    self.cross_attention = attention(CrossAttention)
    self.mlp_norm = norm()
    self.mlp = transformer.SwiGLU(embed_dim, mlp_dim, init=init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x_BxTxD, angles, memory_kv, memory_mask, rngs=None, cache=None,
               start=None, self_mask=None):
    """x_BxTxD; with a `cache`: (x_BxTxD, cache), `self_mask` then over the cache."""
    attended = self.attention(self.attention_norm(x_BxTxD), angles, self_mask,
                              *(() if cache is None else (cache, start)))
    if cache is not None:
      attended, cache = attended
    x_BxTxD = x_BxTxD + self.dropout(attended, rngs=rngs)
    crossed = self.cross_attention(self.cross_norm(x_BxTxD), memory_kv, memory_mask)
    x_BxTxD = x_BxTxD + self.dropout(crossed, rngs=rngs)
    x_BxTxD = x_BxTxD + self.dropout(self.mlp(self.mlp_norm(x_BxTxD)), rngs=rngs)
    return x_BxTxD if cache is None else (x_BxTxD, cache)


def memory_mask(source_BxS):
  """B x 1 x 1 x S: the real (non-padding) source positions. The first position always
  counts, so an all-padding row (an eval batch's filler) stays finite."""
  real = (source_BxS != 0) | (jnp.arange(source_BxS.shape[1]) == 0)
  return real[:, None, None, :]


def positions(length, start=0):
  return start + jnp.arange(length)


class TransformerSeq2Seq(nnx.Module):
  """Next-token logits of the target given the source; build it with `create`."""

  def __init__(self, source_vocab, target_vocab, *, num_layers, num_decoder_layers, embed_dim,
               num_heads, num_kv_heads, mlp_dim, head_dim, dropout_rate, rope_base,
               share_embeddings, tie_embeddings, kernel_init, norm_eps, dtype=jnp.float32,
               rngs: nnx.Rngs):
    def embedding(size):
      return nnx.Embed(size, embed_dim, dtype=dtype, rngs=rngs, embedding_init=nnx.with_partitioning(
          nnx.initializers.normal(embed_dim ** -0.5), ('vocab', 'embed')))

    self.target_embed = embedding(target_vocab)
    self.source_embed = None if share_embeddings else embedding(source_vocab)
    self.encoder = nnx.List([transformer.Block(
        embed_dim, num_heads, num_kv_heads, mlp_dim, head_dim=head_dim, qkv_bias=False,
        norm_eps=norm_eps, dropout_rate=dropout_rate, init=kernel_init,
        attention_implementation=None, dtype=dtype, rngs=rngs, causal=False)
                             for _ in range(num_layers)])
    self.encoder_norm = transformer.rms_norm(embed_dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.decoder = nnx.List([DecoderBlock(
        embed_dim, num_heads, num_kv_heads, mlp_dim, head_dim=head_dim, norm_eps=norm_eps,
        dropout_rate=dropout_rate, init=kernel_init, dtype=dtype, rngs=rngs)
                             for _ in range(num_decoder_layers)])
    self.decoder_norm = transformer.rms_norm(embed_dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.head = None if tie_embeddings else nnx.Linear(
        embed_dim, target_vocab, use_bias=False, dtype=dtype, rngs=rngs,
        kernel_init=layers.kernel_init(kernel_init, ('embed', 'vocab')))
    self.dropout = nnx.Dropout(dropout_rate)
    self.head_dim, self.rope_base = head_dim, rope_base
    self.num_kv_heads = num_kv_heads

  def __call__(self, source_BxS, target_in_BxT=None, *, decode=None, rngs=None):
    """Teacher-forced logits_BxTxV of `target_in` (the target shifted right behind a start
    token); with `decode` (seq2seq_decoding.Settings) a dict of them ('logits', when
    target_in is given) and of the decoded outputs ('tokens', 'scores', 'lengths')."""
    memory = self.encode(source_BxS, rngs=rngs)
    logits = None
    if target_in_BxT is not None:
      logits = self.decode(target_in_BxT, self.cross_memory(memory), memory_mask(source_BxS),
                           rngs=rngs)
    if decode is None:
      return logits
    from jaxlab.inference import seq2seq_decoding  # pylint: disable=g-import-not-at-top
    decoded = seq2seq_decoding.decode(self, source_BxS, decode, memory=memory)
    return decoded if logits is None else dict(decoded, logits=logits)

  def encode(self, source_BxS, rngs=None):
    """The memory_BxSxD the decoder attends to."""
    table = self.target_embed if self.source_embed is None else self.source_embed
    x_BxSxD = self.dropout(table(source_BxS), rngs=rngs)
    angles = transformer.rotary_angles(positions(source_BxS.shape[1])[None], self.head_dim,
                                       self.rope_base)
    mask = memory_mask(source_BxS)
    for block in self.encoder:
      x_BxSxD = block(x_BxSxD, angles, mask, rngs)
    return self.encoder_norm(x_BxSxD)

  def memory_mask(self, source_BxS):
    """B x 1 x 1 x S: which source positions the decoder attends to (`memory_mask`)."""
    return memory_mask(source_BxS)

  def cross_memory(self, memory_BxMxD):
    """Each decoder layer's cross-attention (keys, values) of the memory."""
    return tuple(block.cross_attention.memory(memory_BxMxD) for block in self.decoder)

  def empty_caches(self, batch, length, dtype):
    """Each decoder layer's empty self-attention cache for `length` target positions."""
    return tuple(transformer.KVCache.empty(batch, length, self.num_kv_heads, self.head_dim, dtype)
                 for _ in self.decoder)

  def decode(self, tokens_BxT, cross, memory_mask_, *, caches=None, start=0, rngs=None):
    """Logits_BxTxV of target tokens at positions start..start+T-1; with `caches` (from
    `empty_caches`, holding positions 0..start-1) also the caches with these written."""
    length = tokens_BxT.shape[1]
    where = positions(length, start)
    angles = transformer.rotary_angles(where[None], self.head_dim, self.rope_base)
    x_BxTxD = self.dropout(self.target_embed(tokens_BxT), rngs=rngs)
    updated = []
    for index, block in enumerate(self.decoder):
      if caches is None:
        x_BxTxD = block(x_BxTxD, angles, cross[index], memory_mask_, rngs)
      else:
        mask = transformer.cache_mask(where, caches[index].keys.shape[1])
        x_BxTxD, cache = block(x_BxTxD, angles, cross[index], memory_mask_, rngs,
                               cache=caches[index], start=start, self_mask=mask)
        updated.append(cache)
    x_BxTxD = self.decoder_norm(x_BxTxD)
    logits = self.target_embed.attend(x_BxTxD) if self.head is None else self.head(x_BxTxD)
    return logits if caches is None else (logits, tuple(updated))


def resolve(options):
  """DEFAULTS overridden by `options`, with the derived ones (None) filled in."""
  s = {**DEFAULTS, **options}
  for name, value in dict(num_decoder_layers=s['num_layers'], num_kv_heads=s['num_heads'],
                          mlp_dim=4 * s['embed_dim'] if isinstance(s['embed_dim'], int) else None,
                          head_dim=transformer_settings._default_head_dim(s)).items():  # pylint: disable=protected-access
    if s[name] is None:
      s[name] = value
  return s


def check(input_shape, source_vocab, target_vocab, s):
  layers.check_options('transformer_seq2seq', s,
                       counts=('num_layers', 'num_decoder_layers', 'embed_dim', 'num_heads',
                               'num_kv_heads', 'mlp_dim'),
                       rates=('dropout_rate',), choices=dict(kernel_init=tuple(layers.INITIALIZERS)))
  problems = []
  if len(input_shape) != 2:
    problems.append(f'the input must be (source length, target length), got {input_shape}')
  if s['head_dim'] is None or s['head_dim'] % 2:
    problems.append(f'embed_dim={s["embed_dim"]} must be num_heads={s["num_heads"]} times an '
                    'even head width (RoPE rotates feature pairs), or set an even head_dim')
  if s['num_heads'] % s['num_kv_heads']:
    problems.append(f'num_heads={s["num_heads"]} must be a multiple of '
                    f'num_kv_heads={s["num_kv_heads"]}')
  if s['share_embeddings'] and source_vocab != target_vocab:
    problems.append(f'share_embeddings=True needs one vocabulary; the source has {source_vocab} '
                    f'tokens and the target {target_vocab} (use data.shared_vocab=True)')
  if min(source_vocab, target_vocab) < 2:
    problems.append('the vocabularies need at least 2 tokens')
  layers.reject('transformer_seq2seq', problems)


def create(input_shape, num_classes, *, rngs, dtype=jnp.float32, vocab_size=0, **options):
  """The model for `input_shape` = (source length, target length), a target vocabulary of
  `num_classes` tokens and a source vocabulary of `vocab_size` (0: the target's)."""
  settings = resolve(options)
  source_vocab = vocab_size or num_classes
  check(tuple(input_shape), source_vocab, num_classes, settings)
  return TransformerSeq2Seq(source_vocab, num_classes, rngs=rngs, dtype=dtype, **settings)


def num_params(source_vocab, target_vocab, s):
  """The parameter count of `resolve`d settings, without building the model."""
  d, q, kv = s['embed_dim'], s['num_heads'] * s['head_dim'], s['num_kv_heads'] * s['head_dim']
  attention = 2 * d * q + 2 * d * kv
  mlp = 3 * d * s['mlp_dim']
  encoder = s['num_layers'] * (2 * d + attention + mlp)
  decoder = s['num_decoder_layers'] * (3 * d + 2 * attention + mlp)
  tables = target_vocab * d * (1 if s['tie_embeddings'] else 2)
  tables += 0 if s['share_embeddings'] else source_vocab * d
  return encoder + decoder + tables + 2 * d
