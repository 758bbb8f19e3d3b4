"""Autoregressive sampling from a `transformer_lm` with a key/value cache.

The cache holds the rotated keys and the values of every position written so far, for
every layer (`transformer.KVCache`: `[num_layers, B, max_len, K, H]` each for a scanned
model, run by a `lax.scan` over its stacked layers; one per layer for an unrolled model's
Python loop). A prompt is prefilled in one pass (right-padded to a bucket length, so a new
prompt length rarely compiles again); then each new token runs
the model on one position, writes its key/value at its absolute position with
`lax.dynamic_update_slice`, and attends to positions 0..itself only (mask by index, so
the padding's and older requests' entries beyond it are never read).

Generation runs in chunks: one compiled `lax.while_loop` makes up to `chunk` tokens,
stops early at eos or max_tokens, and returns them to the host, which prints them and
calls it again with the state it returned. Temperature, top-k, top-p, max_tokens and
the seed are array inputs: changing them never recompiles. Compilations: one prefill per
bucket used, one chunk function.

The model's own blocks run each step (`transformer.Block` with a cache): there is no
second copy of the forward pass here. Batch size 1: one prompt at a time.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct
from jax import lax

from jaxlab.data import tokenizers
from jaxlab.models import transformer

CHUNK = 16  # tokens per compiled call, between which the host prints
MIN_BUCKET = 16


def buckets(max_len):
  """Prompt lengths prefill compiles for: powers of two from MIN_BUCKET, and max_len."""
  sizes, size = [], MIN_BUCKET
  while size < max_len:
    sizes.append(size)
    size *= 2
  return sizes + [max_len]


def bucket_for(length, max_len):
  return next(size for size in buckets(max_len) if size >= length)


@struct.dataclass
class Settings:
  """How to choose each token; all arrays, so new values reuse the compiled code.

  temperature 0 is greedy; top_k <= 0 keeps every token; top_p 1 keeps every token.
  """
  temperature: Any
  top_k: Any
  top_p: Any
  max_tokens: Any
  key: Any

  @classmethod
  def create(cls, *, temperature=0.0, top_k=0, top_p=1.0, max_tokens=200, seed=0):
    return cls(jnp.float32(temperature), jnp.int32(top_k), jnp.float32(top_p),
               jnp.int32(max_tokens), jax.random.PRNGKey(seed))


@struct.dataclass
class State:
  """Between chunks: the cache, and the last token (emitted, not yet in the cache)."""
  caches: Any  # transformer.KVCache(s) of every layer (see _empty_caches)
  position: Any  # int32: tokens in the cache = the next token's position
  token: Any  # int32 [1]
  count: Any  # int32: tokens emitted so far
  done: Any  # bool: eos emitted or max_tokens reached


def choose(logits_V, key, settings):
  """One token id from next-token logits, as `settings` say."""
  logits_V = logits_V.astype(jnp.float32)
  vocab = logits_V.shape[-1]
  scaled_V = logits_V / jnp.maximum(settings.temperature, 1e-6)
  sorted_V = jnp.sort(scaled_V)[::-1]
  top_k = jnp.where(settings.top_k > 0, jnp.minimum(settings.top_k, vocab), vocab)
  sorted_V = jnp.where(jnp.arange(vocab) < top_k, sorted_V, -jnp.inf)
  probs_V = jax.nn.softmax(sorted_V)
  # Keep the smallest prefix whose mass reaches top_p (always the most likely token).
  keep_V = (jnp.cumsum(probs_V) - probs_V) < settings.top_p
  keep_V = keep_V.at[0].set(True) & (jnp.arange(vocab) < top_k)
  threshold = jnp.min(jnp.where(keep_V, sorted_V, jnp.inf))
  sampled = jax.random.categorical(key, jnp.where(scaled_V >= threshold, scaled_V, -jnp.inf))
  return jnp.where(settings.temperature > 0, sampled, jnp.argmax(logits_V)).astype(jnp.int32)


def forward(model, tokens_BxT, start, caches):
  """Logits of T new tokens at positions start..start+T-1, and the updated caches: the
  model's own blocks (`transformer.Block` with a `KVCache`), layer by layer."""
  positions_T = start + jnp.arange(tokens_BxT.shape[1])
  angles = transformer.rotary_angles(positions_T[None], model.head_dim, model.rope_base)
  x_BxTxD = model.embed(tokens_BxT)
  if model.scan_layers:
    graph, stacked = nnx.split(model.blocks)
    mask = transformer.cache_mask(positions_T, caches.keys.shape[2])

    def body(x_BxTxD, layer):
      state, cache = layer
      return nnx.merge(graph, state)(x_BxTxD, angles, mask, cache=cache, start=start)

    x_BxTxD, caches = lax.scan(body, x_BxTxD, (stacked, caches))
  else:
    mask = transformer.cache_mask(positions_T, caches[0].keys.shape[1])
    updated = []
    for block, cache in zip(model.blocks, caches):
      x_BxTxD, cache = block(x_BxTxD, angles, mask, cache=cache, start=start)
      updated.append(cache)
    caches = tuple(updated)
  x_BxTxD = model.final_norm(x_BxTxD)
  logits = model.embed.attend(x_BxTxD) if model.head is None else model.head(x_BxTxD)
  return logits, caches


def _empty_caches(model, dtype):
  """A stacked KVCache [num_layers, 1, max_len, K, H] for a scanned model, else one per layer."""
  first = model.blocks if model.scan_layers else model.blocks[0]  # stacked: [L, D, K, H]
  num_kv_heads, head_dim = first.attention.key.kernel.shape[-2:]
  empty = transformer.KVCache.empty(1, model.max_len, num_kv_heads, head_dim, dtype)
  if model.scan_layers:
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (model.num_layers, *a.shape)), empty)
  return tuple(empty for _ in range(model.num_layers))


def prefill(variables, tokens_1xL, length, settings, *, graph, eos_id=tokenizers.EOS_ID):
  """The state after a prompt (its first `length` of L tokens) and its first new token."""
  model = nnx.merge(graph, variables.params, variables.model_state)
  dtype = model.embed(tokens_1xL[:, :1]).dtype
  logits_1xLxV, caches = forward(model, tokens_1xL, 0, _empty_caches(model, dtype))
  token = choose(logits_1xLxV[0, length - 1], jax.random.fold_in(settings.key, 0), settings)
  done = (token == eos_id) | (settings.max_tokens <= 1)
  return State(caches, jnp.int32(length), token[None], jnp.int32(1), done)


def generate(variables, state, settings, *, graph, chunk, eos_id=tokenizers.EOS_ID):
  """Up to `chunk` more tokens: (state, tokens [chunk] (valid: the first `made`), made)."""
  model = nnx.merge(graph, variables.params, variables.model_state)
  eos = eos_id

  def step(carry):
    state, made, out_C = carry
    logits_1x1xV, caches = forward(model, state.token[None], state.position, state.caches)
    key = jax.random.fold_in(settings.key, state.count)
    token = choose(logits_1x1xV[0, -1], key, settings)
    count = state.count + 1
    state = State(caches, state.position + 1, token[None], count,
                  (token == eos) | (count >= settings.max_tokens))
    return state, made + 1, out_C.at[made].set(token)

  def going(carry):
    state, made, _ = carry
    return (made < chunk) & ~state.done

  out_C = jnp.zeros((chunk,), jnp.int32)
  return lax.while_loop(going, step, (state, jnp.int32(0), out_C))


@dataclasses.dataclass
class Sampler:
  """The compiled prefill and chunk functions of one model (a modeling.ModelDef)."""
  model: Any  # modeling.ModelDef
  max_len: int
  chunk: int = CHUNK
  eos_id: int = tokenizers.EOS_ID  # the tokenizer's end of text (imported ones differ)

  def __post_init__(self):
    graph = self.model.eval_graph
    self.prefill = jax.jit(functools.partial(prefill, graph=graph, eos_id=self.eos_id))
    self.generate = jax.jit(functools.partial(generate, graph=graph, chunk=self.chunk,
                                              eos_id=self.eos_id))

  def check_fits(self, prompt_length, max_tokens):
    """A message if prompt + max_tokens exceeds the cache, else None."""
    if prompt_length < 1:
      return 'The prompt is empty; give at least one character with --prompt.'
    if max_tokens < 1:
      return f'--max_tokens={max_tokens} must be at least 1.'
    if prompt_length + max_tokens > self.max_len:
      return (f'The prompt ({prompt_length} tokens) plus --max_tokens={max_tokens} exceeds the '
              f'model\'s context of {self.max_len} tokens (its max_len); shorten the prompt or '
              f'lower --max_tokens to at most {max(self.max_len - prompt_length, 0)}.')
    return None

  def stream(self, variables, prompt_ids, settings):
    """Yields arrays of new token ids, chunk by chunk, the eos (if drawn) left out."""
    prompt_ids = jnp.asarray(prompt_ids, jnp.int32)
    length = int(prompt_ids.shape[0])
    padded = jnp.zeros((1, bucket_for(length, self.max_len)), jnp.int32)
    padded = padded.at[0, :length].set(prompt_ids)
    state = self.prefill(variables, padded, jnp.int32(length), settings)
    yield from _without_eos(jax.device_get(state.token), self.eos_id)
    while not bool(state.done):
      state, made, out_C = self.generate(variables, state, settings)
      yield from _without_eos(jax.device_get(out_C)[:int(made)], self.eos_id)

  def sample(self, variables, prompt_ids, settings):
    """All new token ids at once (a list)."""
    return [int(t) for ids in self.stream(variables, prompt_ids, settings) for t in ids]


def _without_eos(ids, eos_id):
  ids = ids[ids != eos_id]
  return [ids] if len(ids) else []


class TextStream:
  """Text of a growing token sequence, piece by piece, never splitting a UTF-8 character:
  a trailing U+FFFD (an incomplete byte sequence so far) is held back until more tokens
  complete it, or until `finish`."""

  def __init__(self, decode):
    self._decode = decode
    self._ids = []
    self._shown = ''

  def add(self, ids):
    self._ids.extend(int(i) for i in ids)
    return self._new(self._decode(self._ids).rstrip('\ufffd'))

  def finish(self):
    return self._new(self._decode(self._ids))

  def _new(self, text):
    piece = text[len(self._shown):] if text.startswith(self._shown) else ''
    self._shown += piece
    return piece
