"""Decoder-only Transformer language model (Llama-style: pre-RMSNorm, RoPE, GQA, SwiGLU).

tokens_BxL -> embed -> [RMSNorm -> causal attention -> + -> RMSNorm -> SwiGLU -> +]*
-> RMSNorm -> logits_BxLxV (a separate head, or the embedding table when tied).

Layers: with scan_layers (the default) the blocks are created stacked (every block
parameter has a leading axis of num_layers, logically named 'layers', never sharded) and
run by one `nnx.scan`, so the compiled program holds one block whatever the depth; with
scan_layers=False they are a list run by a Python loop (easier to step through).
`remat` recomputes each block's activations in the backward pass instead of keeping them
('full': keep only the block inputs; 'dots': keep the weight matmuls' outputs too).

Packed rows: `segment_ids` (0 = padding) keep attention inside each document and
`positions` restart at each document's start, so a packed document sees exactly what
it would see alone at the start of a row.

Decoding with a cache: `Attention` and `Block` take an optional `KVCache` (the rotated
keys and values of the positions written so far) and the position `start` of the new
tokens; they then write the new keys and values in and attend over the cache, as the
caller's mask allows (`cache_mask`). Decoding (`jaxlab.inference.sampling`, the seq2seq
decoder) calls these same modules, so there is no second copy of the forward pass.

Shape letters: B batch, L sequence, D embed, V vocabulary, N query heads, K key/value
heads, H head width, F SwiGLU hidden width, S cached positions, T new positions.
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct
from jax import lax

from jaxlab.models import dense as dense_ops
from jaxlab.models import layers
# The settings (defaults, checks, parameter count) live beside; re-exported here.
from jaxlab.models.transformer_settings import (  # pylint: disable=unused-import
    ATTENTION_IMPLEMENTATIONS, DEFAULTS, check, num_params, resolve)


# The stacked blocks' leading axis: its logical name, for the sharding rules (unsharded).
LAYER_AXIS = {nnx.PARTITION_NAME: 'layers'}


def projection_init(name, logical_axes, fan_in_axes, fan_out_axes):
  """A kernel initialiser for an (in..., out...) tensor with several in or out axes.

  The default variance scaling reads fan-in from axis -2 only, which for a
  (D, N, H) query kernel would be N, not D.
  """
  initializer = layers.INITIALIZERS[name](in_axis=fan_in_axes, out_axis=fan_out_axes)
  return nnx.with_partitioning(initializer, logical_axes)


def rms_norm(features, *, epsilon=1e-6, dtype, rngs):
  return nnx.RMSNorm(features, epsilon=epsilon, dtype=dtype, rngs=rngs,
                     scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ('embed',)))


def rotary_angles(positions_BxL, head_dim, base):
  """(sin, cos), each B x L x 1 x H/2 in float32, shared by every layer."""
  exponents_F = jnp.arange(head_dim // 2, dtype=jnp.float32) / (head_dim // 2)
  angles_BxLxF = positions_BxL.astype(jnp.float32)[..., None] * base ** -exponents_F
  return jnp.sin(angles_BxLxF)[:, :, None, :], jnp.cos(angles_BxLxF)[:, :, None, :]


def apply_rope(x_BxLxNxH, angles):
  """Rotates feature pairs (i, i + H/2) by position-dependent angles (GPT-NeoX layout)."""
  sin, cos = angles
  # In float32: angles of long positions lose their low bits in bf16.
  x1, x2 = jnp.split(x_BxLxNxH.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return rotated.astype(x_BxLxNxH.dtype)


def segment_mask(segment_ids_BxL):
  """B x 1 x L x L: True where query and key are in the same document.

  Padding (segment 0) attends to padding, so its rows stay finite; the loss ignores them.
  """
  if segment_ids_BxL is None:
    return None
  return segment_ids_BxL[:, None, :, None] == segment_ids_BxL[:, None, None, :]


@struct.dataclass
class KVCache:
  """One layer's rotated keys and values of every position written so far, each
  B x S x K x H (S: the longest sequence decoded); entries past the last written
  position hold stale values that `cache_mask` keeps unread."""
  keys: Any
  values: Any

  @classmethod
  def empty(cls, batch, length, num_kv_heads, head_dim, dtype):
    shape = (batch, length, num_kv_heads, head_dim)
    return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

  def write(self, k_BxTxKxH, v_BxTxKxH, start):
    """The cache with T new positions written from `start` on."""
    at = (0, start, 0, 0)
    return KVCache(lax.dynamic_update_slice(self.keys, k_BxTxKxH.astype(self.keys.dtype), at),
                   lax.dynamic_update_slice(self.values, v_BxTxKxH.astype(self.values.dtype), at))


def cache_mask(positions_T, cache_len):
  """1 x 1 x T x S: each new position sees the cached positions up to itself."""
  return (jnp.arange(cache_len)[None, :] <= positions_T[:, None])[None, None]


class Attention(nnx.Module):
  """Grouped-query self-attention with rotary positions; causal unless built with
  causal=False (an encoder's)."""

  def __init__(self, embed_dim, num_heads, num_kv_heads, *, init, implementation, dtype, rngs,
               head_dim=None, qkv_bias=False, causal=True):
    head_dim = head_dim or embed_dim // num_heads

    def projection(spec, shape, axes, fan_in, fan_out, bias=False):
      # Qwen2's q/k/v projections carry biases (zero at init), per head and feature.
      bias_shape = shape[1:] if bias else None
      bias_init = nnx.with_partitioning(nnx.initializers.zeros_init(), axes[1:])
      return nnx.Einsum(spec, shape, bias_shape,
                        kernel_init=projection_init(init, axes, fan_in, fan_out),
                        bias_init=bias_init, dtype=dtype, einsum_op=dense_ops.einsum, rngs=rngs)

    self.query = projection('BLD,DNH->BLNH', (embed_dim, num_heads, head_dim),
                            ('embed', 'heads', 'head_dim'), 0, (1, 2), qkv_bias)
    kv_shape, kv_axes = (embed_dim, num_kv_heads, head_dim), ('embed', 'kv_heads', 'head_dim')
    self.key = projection('BLD,DKH->BLKH', kv_shape, kv_axes, 0, (1, 2), qkv_bias)
    self.value = projection('BLD,DKH->BLKH', kv_shape, kv_axes, 0, (1, 2), qkv_bias)
    self.out = projection('BLNH,NHD->BLD', (num_heads, head_dim, embed_dim),
                          ('heads', 'head_dim', 'embed'), (0, 1), 2)
    self.implementation = implementation
    self.causal = causal

  def __call__(self, x_BxLxD, angles, mask_Bx1xLxL, cache=None, start=None):
    """y_BxLxD; with a `cache` (x holding the new positions from `start` on, `mask` then
    B x 1 x L x S over the cache, e.g. `cache_mask`): (y_BxLxD, the updated cache)."""
    q_BxLxNxH = apply_rope(self.query(x_BxLxD), angles)
    k_BxLxKxH = apply_rope(self.key(x_BxLxD), angles)
    v_BxLxKxH = self.value(x_BxLxD)
    if cache is not None:
      cache = cache.write(k_BxLxKxH, v_BxLxKxH, start)
      y_BxLxNxH = jax.nn.dot_product_attention(q_BxLxNxH.astype(cache.keys.dtype), cache.keys,
                                               cache.values, mask=mask_Bx1xLxL)
      return self.out(y_BxLxNxH), cache
    # is_causal rather than a causal term in `mask`: cuDNN then skips the masked blocks
    # (a segment mask still reaches it as an additive bias). Softmax runs in float32.
    y_BxLxNxH = jax.nn.dot_product_attention(
        q_BxLxNxH, k_BxLxKxH, v_BxLxKxH, mask=mask_Bx1xLxL, is_causal=self.causal,
        implementation=self.implementation)
    return self.out(y_BxLxNxH)


class SwiGLU(nnx.Module):

  def __init__(self, embed_dim, mlp_dim, *, init, dtype, rngs):
    def dense(n_in, n_out, axes):
      return nnx.Linear(n_in, n_out, use_bias=False, kernel_init=layers.kernel_init(init, axes),
                        dtype=dtype, dot_general=dense_ops.dot_general, rngs=rngs)

    # gate and up are column-parallel, down row-parallel (Megatron's pair).
    self.gate = dense(embed_dim, mlp_dim, ('embed', 'mlp'))
    self.up = dense(embed_dim, mlp_dim, ('embed', 'mlp'))
    self.down = dense(mlp_dim, embed_dim, ('mlp', 'embed'))

  def __call__(self, x_BxLxD):
    return self.down(jax.nn.silu(self.gate(x_BxLxD)) * self.up(x_BxLxD))


class Block(nnx.Module):
  """One pre-norm layer. Every block is built alike and called as
  block(x, angles, mask, rngs) -> x, so the stack can become an nnx.scan; with a
  `cache` (decoding): block(x, angles, mask, cache=..., start=...) -> (x, cache)."""

  def __init__(self, embed_dim, num_heads, num_kv_heads, mlp_dim, *, head_dim, qkv_bias,
               norm_eps, dropout_rate, init, attention_implementation, dtype, rngs, causal=True):
    self.attention_norm = rms_norm(embed_dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.attention = Attention(embed_dim, num_heads, num_kv_heads, head_dim=head_dim,
                               qkv_bias=qkv_bias, init=init, causal=causal,
                               implementation=attention_implementation, dtype=dtype, rngs=rngs)
    self.mlp_norm = rms_norm(embed_dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.mlp = SwiGLU(embed_dim, mlp_dim, init=init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x_BxLxD, angles, mask_Bx1xLxL, rngs=None, cache=None, start=None):
    attended = self.attention(self.attention_norm(x_BxLxD), angles, mask_Bx1xLxL,
                              *(() if cache is None else (cache, start)))
    if cache is not None:
      attended, cache = attended
    x_BxLxD = x_BxLxD + self.dropout(attended, rngs=rngs)
    x_BxLxD = x_BxLxD + self.dropout(self.mlp(self.mlp_norm(x_BxLxD)), rngs=rngs)
    return x_BxLxD if cache is None else (x_BxLxD, cache)


class TransformerLM(nnx.Module):
  """Next-token logits for every position of a token sequence; build it with `create`."""

  def __init__(self, vocab_size, *, num_layers, embed_dim, num_heads, num_kv_heads, mlp_dim,
               dropout_rate, rope_base, tie_embeddings, max_len, kernel_init,
               attention_implementation, scan_layers, remat, head_dim, norm_eps, qkv_bias,
               dtype=jnp.float32,
               rngs: nnx.Rngs):
    # Entries of std 1/sqrt(D), rows of norm ~1: tied logits x @ E^T of an RMS-normed x
    # then start with std ~1, as the untied head's do.
    self.embed = nnx.Embed(vocab_size, embed_dim, dtype=dtype, rngs=rngs,
                           embedding_init=nnx.with_partitioning(
                               nnx.initializers.normal(embed_dim ** -0.5), ('vocab', 'embed')))
    self.dropout = nnx.Dropout(dropout_rate)

    def block(rngs):
      return Block(embed_dim, num_heads, num_kv_heads, mlp_dim, head_dim=head_dim,
                   qkv_bias=qkv_bias, norm_eps=norm_eps, dropout_rate=dropout_rate,
                   init=kernel_init, attention_implementation=attention_implementation,
                   dtype=dtype, rngs=rngs)

    if scan_layers:  # one Block whose every array has a leading layer axis
      self.blocks = nnx.split_rngs(splits=num_layers)(nnx.vmap(
          block, in_axes=0, out_axes=0, transform_metadata=LAYER_AXIS))(rngs)
    else:
      self.blocks = nnx.List([block(rngs) for _ in range(num_layers)])
    self.final_norm = rms_norm(embed_dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.head = None if tie_embeddings else nnx.Linear(
        embed_dim, vocab_size, use_bias=False, dtype=dtype, rngs=rngs,
        dot_general=dense_ops.dot_general,
        kernel_init=layers.kernel_init(kernel_init, ('embed', 'vocab')))
    self.head_dim = head_dim
    self.rope_base = rope_base
    self.max_len = max_len
    self.num_layers = num_layers
    self.scan_layers = scan_layers
    self.remat = remat

  def __call__(self, tokens_BxL, *, segment_ids=None, positions=None, rngs=None):
    """logits_BxLxV in the compute dtype; segment_ids and positions are B x L ints."""
    length = tokens_BxL.shape[1]
    if length > self.max_len:
      raise ValueError(f'Sequence length {length} exceeds the model\'s max_len={self.max_len}; '
                       'raise --config.model.max_len.')
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(length), tokens_BxL.shape)
    angles = rotary_angles(positions, self.head_dim, self.rope_base)
    mask_Bx1xLxL = segment_mask(segment_ids)
    x_BxLxD = self.dropout(self.embed(tokens_BxL), rngs=rngs)
    x_BxLxD = self._run_blocks(x_BxLxD, angles, mask_Bx1xLxL, rngs)
    x_BxLxD = self.final_norm(x_BxLxD)
    return self.embed.attend(x_BxLxD) if self.head is None else self.head(x_BxLxD)

  def _run_blocks(self, x_BxLxD, angles, mask_Bx1xLxL, rngs):
    def apply(block, x_BxLxD, rngs):
      return block(x_BxLxD, angles, mask_Bx1xLxL, rngs)

    if self.remat != 'none':
      # Inside a scan, XLA cannot merge the recomputation with the forward pass anyway;
      # prevent_cse there only blocks optimisations (jax.checkpoint's documentation).
      apply = nnx.remat(apply, policy=layers.REMAT_POLICIES[self.remat],
                        prevent_cse=not self.scan_layers)
    if not self.scan_layers:
      for block in self.blocks:
        x_BxLxD = apply(block, x_BxLxD, rngs)
      return x_BxLxD
    scan = nnx.scan(apply, in_axes=(0, nnx.Carry, 0), out_axes=nnx.Carry,
                    transform_metadata=LAYER_AXIS)
    if rngs is None:
      return scan(self.blocks, x_BxLxD, None)
    # Each layer draws its own dropout masks: the streams are split along the layers.
    return nnx.split_rngs(splits=self.num_layers)(scan)(self.blocks, x_BxLxD, rngs)


def create(input_shape, num_classes, *, rngs, dtype=jnp.float32, **options):
  """The model for `input_shape` = (seq_len,) and a vocabulary of `num_classes` tokens."""
  settings = resolve(input_shape, options)
  check(input_shape, num_classes, settings)
  return TransformerLM(num_classes, rngs=rngs, dtype=dtype, **settings)
