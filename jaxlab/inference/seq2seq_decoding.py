"""Greedy decoding and beam search of an encoder-decoder (`transformer_seq2seq`), compiled.

Both run in one `lax.while_loop` of at most `max_len` steps over a fixed-size token
buffer, so an output length never compiles anything new. The source is encoded once
and each decoder layer's cross-attention keys and values are computed once; each step
then runs the model's own decoder (`TransformerSeq2Seq.decode`) on the newest token with
each layer's self-attention `KVCache` (use_cache=True), or on the whole prefix again
(use_cache=False: the reference the cache is tested against, and the benchmark's
"without cache").

Beam search follows fairseq's: each step takes the 2K best (beam, token) extensions of
the K live beams; those ending in end-of-sequence among the first K are finished, scored
by their log-probability over GNMT's length penalty ((5 + length) / 6) ** alpha (Wu et
al. 2016; alpha = `length_penalty`, 0: plain log-probability); the K best of the others
live on (the caches are reordered to follow them). A sentence stops once it has K
finished hypotheses, or at max_len, where the live beams finish as they are. So beam
size 1 is greedy decoding, token for token.

The decoder starts from `start_id` (end-of-sequence, as fairseq starts its decoder).
Outputs: 'tokens' [B, max_len] (end-of-sequence and what follows it are 0), 'lengths'
(tokens before end-of-sequence) and 'scores' (the summed log-probability of the tokens and
the end-of-sequence; beam search ranks by it over the length penalty).
"""

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from jaxlab.data import tokenizers


@dataclasses.dataclass(frozen=True)
class Settings:
  """How to decode; static (a new value compiles anew)."""
  max_len: int  # most tokens per output, end-of-sequence included
  beam_size: int = 1  # 1: greedy
  length_penalty: float = 0.6  # GNMT's alpha (0: none)
  use_cache: bool = True  # False: recompute the whole prefix each step
  eos_id: int = tokenizers.EOS_ID
  start_id: int = tokenizers.EOS_ID


def decode(model, source_BxS, settings, memory=None):
  """{'tokens', 'lengths', 'scores'} of the decoded targets of a batch of sources."""
  if memory is None:
    memory = model.encode(source_BxS)
  if settings.beam_size == 1:
    return greedy(model, source_BxS, memory, settings)
  return beam_search(model, source_BxS, memory, settings)


def _stepper(model, source_BxS, memory, settings):
  """step(tokens [R, max_len + 1], t, caches) -> (next-token logits [R, V] of position t,
  caches), R = B or B x K rows; and the empty caches (None without a cache)."""
  cross = model.cross_memory(memory)
  mask = model.memory_mask(source_BxS)

  def step(tokens, t, caches):
    if caches is None:
      logits = model.decode(tokens[:, :-1], cross, mask)
      return lax.dynamic_index_in_dim(logits, t, axis=1, keepdims=False), None
    token = lax.dynamic_slice_in_dim(tokens, t, 1, axis=1)
    logits, caches = model.decode(token, cross, mask, caches=caches, start=t)
    return logits[:, 0], caches

  caches = (model.empty_caches(source_BxS.shape[0], settings.max_len, memory.dtype)
            if settings.use_cache else None)
  return step, caches


def _outputs(tokens_BxL, scores_B, eos_id):
  """Tokens without the start token, end-of-sequence and after it set to 0."""
  tokens = tokens_BxL[:, 1:]
  before_eos = jnp.cumsum(tokens == eos_id, axis=1) == 0
  tokens = jnp.where(before_eos, tokens, 0)
  return {'tokens': tokens, 'lengths': jnp.sum(before_eos & (tokens != 0), axis=1).astype(jnp.int32),
          'scores': scores_B}


def greedy(model, source_BxS, memory, settings):
  batch, length = source_BxS.shape[0], settings.max_len
  step, caches = _stepper(model, source_BxS, memory, settings)
  tokens = jnp.zeros((batch, length + 1), jnp.int32).at[:, 0].set(settings.start_id)

  def body(carry):
    t, tokens, caches, done, scores = carry
    logits, caches = step(tokens, t, caches)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
    chosen = jnp.argmax(log_probs, -1).astype(jnp.int32)
    scores += jnp.where(done, 0.0, jnp.take_along_axis(log_probs, chosen[:, None], 1)[:, 0])
    chosen = jnp.where(done, 0, chosen)
    tokens = lax.dynamic_update_slice_in_dim(tokens, chosen[:, None], t + 1, axis=1)
    return t + 1, tokens, caches, done | (chosen == settings.eos_id), scores

  def going(carry):
    t, _, _, done, _ = carry
    return (t < length) & ~jnp.all(done)

  start = (jnp.int32(0), tokens, caches, jnp.zeros((batch,), bool), jnp.zeros((batch,)))
  _, tokens, _, _, scores = lax.while_loop(going, body, start)
  return _outputs(tokens, scores, settings.eos_id)


def length_penalty(length, alpha):
  return ((5.0 + length) / 6.0) ** alpha


def beam_search(model, source_BxS, memory, settings):
  batch, beams, length = source_BxS.shape[0], settings.beam_size, settings.max_len
  rows = batch * beams
  source = jnp.repeat(source_BxS, beams, axis=0)
  step, caches = _stepper(model, source, jnp.repeat(memory, beams, axis=0), settings)
  tokens = jnp.zeros((batch, beams, length + 1), jnp.int32).at[:, :, 0].set(settings.start_id)
  # Only the first beam is live at the start, so the first step's K beams differ.
  alive = jnp.tile(jnp.where(jnp.arange(beams) == 0, 0.0, -jnp.inf), (batch, 1))
  finished = (jnp.zeros_like(tokens), jnp.full((batch, beams), -jnp.inf),
              jnp.full((batch, beams), -jnp.inf), jnp.zeros((batch,), jnp.int32))

  def body(carry):
    t, tokens, caches, alive, (done_tokens, done_ranks, done_log_probs, count) = carry
    logits, caches = step(tokens.reshape(rows, -1), t, caches)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch, beams, -1)
    vocab = log_probs.shape[-1]
    candidates = (alive[:, :, None] + log_probs).reshape(batch, beams * vocab)
    top, index = lax.top_k(candidates, 2 * beams)  # [B, 2K]
    parent, token = index // vocab, (index % vocab).astype(jnp.int32)
    sequences = jnp.take_along_axis(tokens, parent[:, :, None], axis=1)
    sequences = lax.dynamic_update_slice_in_dim(sequences, token[:, :, None], t + 1, axis=2)
    ends = (token == settings.eos_id) | (t + 1 == length)  # max_len finishes every beam
    newly = ends & (jnp.arange(2 * beams) < beams) & (count < beams)[:, None] & (top > -jnp.inf)
    ranks = jnp.where(newly, top / length_penalty(t + 1.0, settings.length_penalty), -jnp.inf)
    merged = jnp.concatenate([done_ranks, ranks], 1)
    best_ranks, keep = lax.top_k(merged, beams)
    pick = lambda a, b: jnp.take_along_axis(jnp.concatenate([a, b], 1),
                                            keep.reshape(batch, beams, *([1] * (a.ndim - 2))), 1)
    finished = (pick(done_tokens, sequences), best_ranks,
                pick(done_log_probs, jnp.where(newly, top, -jnp.inf)), count + newly.sum(1))
    alive, live = lax.top_k(jnp.where(ends, -jnp.inf, top), beams)
    tokens = jnp.take_along_axis(sequences, live[:, :, None], axis=1)
    if caches is not None:  # each live beam's cache is its parent's
      parents = jnp.take_along_axis(parent, live, axis=1)
      rows_kept = (jnp.arange(batch)[:, None] * beams + parents).reshape(rows)
      caches = jax.tree.map(lambda c: c[rows_kept], caches)
    return t + 1, tokens, caches, alive, finished

  def going(carry):
    t, *_, (_, _, _, count) = carry
    return (t < length) & ~jnp.all(count >= beams)

  _, _, _, _, (done_tokens, done_ranks, done_log_probs, _) = lax.while_loop(
      going, body, (jnp.int32(0), tokens, caches, alive, finished))
  best = jnp.argmax(done_ranks, axis=1)
  chosen = jnp.take_along_axis(done_tokens, best[:, None, None], axis=1)[:, 0]
  return _outputs(chosen, jnp.take_along_axis(done_log_probs, best[:, None], 1)[:, 0],
                  settings.eos_id)
