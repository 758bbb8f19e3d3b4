"""CTC decoding, compiled: greedy (best path) and prefix beam search.

Both take log-probabilities [B, T, V] (id 0 the blank) and the number of valid frames
[B], and return fixed-shape results, so they run inside the jitted eval and predict
steps and in an exported model: tokens [B, T] (0-padded), their count [B] and a score
[B] (natural log).

Greedy takes each frame's most likely id, merges repeats and drops blanks; its score is
the log-probability of that one path. Prefix beam search (Hannun et al. 2014,
"First-Pass Large Vocabulary Continuous Speech Recognition using Bi-Directional
Recurrent DNNs", section 3.1) keeps the `beam_size` most probable label prefixes, each
with its probability summed over every alignment that spells it, split by whether the
alignment ends in a blank; a prefix reached two ways (extending a shorter prefix, or
staying) is merged exactly, by comparing the prefixes themselves. Its score is the log
of that summed probability. On confident frames (a trained model's), beam 1 chooses as
greedy does (tests/test_speech_recognition.py); where frames are uncertain, beam 1
can already prefer a prefix whose alignments together outweigh the single best path.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

BLANK = 0
_NEG = -jnp.inf


def valid_frames(lengths_B, num_frames):
  return jnp.arange(num_frames)[None, :] < lengths_B[:, None]


def greedy(log_probs_BxTxV, lengths_B):
  """(tokens [B, T], counts [B], best-path log-probabilities [B])."""
  best_BxT = jnp.argmax(log_probs_BxTxV, -1).astype(jnp.int32)
  valid_BxT = valid_frames(lengths_B, best_BxT.shape[1])
  previous_BxT = jnp.pad(best_BxT[:, :-1], ((0, 0), (1, 0)), constant_values=BLANK)
  keep_BxT = valid_BxT & (best_BxT != BLANK) & (best_BxT != previous_BxT)
  score_B = jnp.where(valid_BxT, jnp.max(log_probs_BxTxV, -1), 0.0).sum(-1)
  return (*compact(best_BxT, keep_BxT), score_B)


def compact(ids_BxT, keep_BxT):
  """The kept ids moved to the front of each row, 0 after them; and their count."""
  slot_BxT = jnp.where(keep_BxT, jnp.cumsum(keep_BxT, -1) - 1, ids_BxT.shape[1])
  rows_BxT = jnp.broadcast_to(jnp.arange(ids_BxT.shape[0])[:, None], ids_BxT.shape)
  out_BxT = jnp.zeros_like(ids_BxT).at[rows_BxT, slot_BxT].set(ids_BxT, mode='drop')
  return out_BxT, keep_BxT.sum(-1).astype(jnp.int32)


def beam_search(log_probs_BxTxV, lengths_B, beam_size):
  """(tokens [B, T], counts [B], log-probability of the prefix [B]) of the most
  probable prefix that prefix beam search finds with `beam_size` beams."""
  search = functools.partial(_search_one, beam_size=beam_size)
  return jax.vmap(search)(log_probs_BxTxV.astype(jnp.float32), lengths_B)


def _search_one(log_probs_TxV, length, *, beam_size):
  num_frames, vocab = log_probs_TxV.shape
  k = beam_size
  state = dict(prefix_KxT=jnp.zeros((k, num_frames), jnp.int32),
               length_K=jnp.zeros((k,), jnp.int32),
               blank_K=jnp.full((k,), _NEG).at[0].set(0.0),  # log p(prefix, ends in blank)
               label_K=jnp.full((k,), _NEG))  # log p(prefix, ends in its last label)

  def step(state, inputs):
    log_probs_V, valid = inputs
    new = _extend(state, log_probs_V, k, vocab)
    return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, state), None

  valid_T = jnp.arange(num_frames) < length
  state, _ = lax.scan(step, state, (log_probs_TxV, valid_T))
  total_K = jnp.logaddexp(state['blank_K'], state['label_K'])
  best = jnp.argmax(total_K)
  return state['prefix_KxT'][best], state['length_K'][best], total_K[best]


def _last(state):
  index_K = jnp.maximum(state['length_K'] - 1, 0)
  last_K = jnp.take_along_axis(state['prefix_KxT'], index_K[:, None], 1)[:, 0]
  return jnp.where(state['length_K'] > 0, last_K, BLANK)


def _extend(state, log_probs_V, k, vocab):
  """One frame: every beam stays (a blank, or its last label repeated) or grows by one
  label; prefixes reached both ways are merged; the k most probable are kept."""
  prefix_KxT, length_K = state['prefix_KxT'], state['length_K']
  blank_K, label_K = state['blank_K'], state['label_K']
  last_K = _last(state)
  total_K = jnp.logaddexp(blank_K, label_K)
  stay_blank_K = total_K + log_probs_V[BLANK]
  stay_label_K = jnp.where(length_K > 0, label_K + log_probs_V[last_K], _NEG)
  # Growing by c: after a blank always; after the same label c only from a blank.
  ids_V = jnp.arange(vocab)
  grow_KxV = jnp.where(ids_V[None, :] == last_K[:, None], blank_K[:, None], total_K[:, None])
  grow_KxV = jnp.where(ids_V[None, :] == BLANK, _NEG, grow_KxV + log_probs_V[None, :])
  # Beam j is beam i grown by j's last label: then that growth is j's stay, merged.
  positions_T = jnp.arange(prefix_KxT.shape[1])
  same_start_KxK = jnp.all((prefix_KxT[:, None, :] == prefix_KxT[None, :, :])
                           | (positions_T[None, None, :] >= length_K[None, :, None]), -1)
  live_K = jnp.isfinite(total_K)
  child_KxK = same_start_KxK & (length_K[:, None] == length_K[None, :] + 1) & live_K[:, None]
  merged_KxK = jnp.where(child_KxK, grow_KxV[jnp.arange(k)[None, :], last_K[:, None]], _NEG)
  stay_label_K = jnp.logaddexp(stay_label_K, jax.nn.logsumexp(merged_KxK, -1))
  taken_KxV = jnp.zeros((k, vocab), jnp.int32).at[jnp.arange(k)[None, :].repeat(k, 0),
                                                  last_K[:, None].repeat(k, 1)].add(child_KxK)
  grow_KxV = jnp.where(taken_KxV > 0, _NEG, grow_KxV)
  scores = jnp.concatenate([jnp.logaddexp(stay_blank_K, stay_label_K), grow_KxV.reshape(-1)])
  _, chosen_K = lax.top_k(scores, k)
  grows_K = chosen_K >= k
  source_K = jnp.where(grows_K, (chosen_K - k) // vocab, chosen_K)
  label_id_K = (chosen_K - k) % vocab
  prefix_KxT = prefix_KxT[source_K]
  grown_KxT = prefix_KxT.at[jnp.arange(k), length_K[source_K]].set(label_id_K, mode='drop')
  return dict(
      prefix_KxT=jnp.where(grows_K[:, None], grown_KxT, prefix_KxT),
      length_K=length_K[source_K] + grows_K,
      blank_K=jnp.where(grows_K, _NEG, stay_blank_K[source_K]),
      label_K=jnp.where(grows_K, grow_KxV.reshape(-1)[jnp.maximum(chosen_K - k, 0)],
                        stay_label_K[source_K]))


def decode(log_probs_BxTxV, lengths_B, beam_size):
  """Greedy at beam_size 1, prefix beam search above."""
  if beam_size <= 1:
    return greedy(log_probs_BxTxV, lengths_B)
  return beam_search(log_probs_BxTxV, lengths_B, beam_size)
