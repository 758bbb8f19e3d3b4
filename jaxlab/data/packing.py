"""Packing (concatenate and chop): token ids of documents -> rows of `seq_len` tokens.

Every document is followed by eos; the documents are laid end to end and cut into rows
of `seq_len` tokens. Each row carries
- `tokens`: the ids; the last row is padded with pad id 0;
- `segment_ids`: 1, 2, ... for the document pieces within the row, 0 for padding. A
  document that runs on into the next row gets a new segment id there;
- `positions`: the position within the piece, restarting at 0 at every document start
  and at every row start.
Attention is limited to equal segment ids, so no token sees another document.

The loss mask. Target token[t + 1] (predicted from tokens[:t + 1]) counts if and only
if segment_ids[t + 1] == segment_ids[t] != 0: padding is never a target, and neither
is the first token of a piece, whose context lies in another document or row.
`target_mask` computes it; the language-model task and the unigram baselines share it.
"""

import numpy as np

from jaxlab.data import tokenizers


PACKED_KEYS = ('tokens', 'segment_ids', 'positions')


PACK_CHUNK_TOKENS = 1 << 22  # tokens packed at a time: bounds the temporary arrays


def pack(documents_tokens, seq_len, eos_id=tokenizers.EOS_ID, pad_id=tokenizers.PAD_ID):
  """Packs documents (int arrays) into rows; see the module docstring.

  Returns int32 arrays (N, seq_len) under PACKED_KEYS. Works through the stream
  PACK_CHUNK_TOKENS at a time, so the temporaries stay small whatever the total.
  """
  pieces = {key: [] for key in PACKED_KEYS}
  carry = (np.zeros(0, np.int32), np.zeros(0, bool))  # tokens not yet filling a row
  for tokens, starts in _token_stream(documents_tokens, eos_id):
    tokens, starts = np.concatenate([carry[0], tokens]), np.concatenate([carry[1], starts])
    full = len(tokens) - len(tokens) % seq_len
    _append(pieces, _pack_rows(tokens[:full], starts[:full], seq_len))
    carry = tokens[full:], starts[full:]
  if len(carry[0]):
    _append(pieces, _pack_last_row(*carry, seq_len, pad_id))
  return {key: _concatenate_and_free(pieces, key, seq_len) for key in PACKED_KEYS}


def _concatenate_and_free(pieces, key, seq_len):
  """Joins one array's chunks and drops them, so the peak is the output plus one
  array, not twice the output."""
  parts = pieces.pop(key)
  return np.concatenate(parts) if parts else np.zeros((0, seq_len), np.int32)


def _token_stream(documents_tokens, eos_id):
  """Yields (tokens, starts) for runs of about PACK_CHUNK_TOKENS: the documents laid
  end to end, each followed by eos, and True where a document begins."""
  batch, size = [], 0
  for document in documents_tokens:
    batch.append(np.asarray(document, dtype=np.int32))
    size += len(document) + 1
    if size >= PACK_CHUNK_TOKENS:
      yield _with_eos(batch, eos_id)
      batch, size = [], 0
  if batch:
    yield _with_eos(batch, eos_id)


def _with_eos(documents, eos_id):
  lengths = np.fromiter(map(len, documents), dtype=np.int64, count=len(documents)) + 1
  ends = np.cumsum(lengths)
  tokens = np.empty(ends[-1], np.int32)
  is_eos = np.zeros(ends[-1], bool)
  is_eos[ends - 1] = True
  tokens[is_eos] = eos_id
  tokens[~is_eos] = np.concatenate(documents)
  starts = np.zeros(ends[-1], bool)
  starts[ends - lengths] = True
  return tokens, starts


def _pack_rows(tokens, starts, seq_len):
  """Segment ids and positions for whole rows: a piece starts at a document start or
  at the row's first token."""
  piece_starts = starts.reshape(-1, seq_len).copy()
  piece_starts[:, 0] = True
  column = np.arange(seq_len, dtype=np.int32)
  last_start = np.maximum.accumulate(np.where(piece_starts, column, 0), axis=1)
  return {
      'tokens': tokens.reshape(-1, seq_len),
      'segment_ids': np.cumsum(piece_starts, axis=1, dtype=np.int32),
      'positions': (column - last_start).astype(np.int32),
  }


def _pack_last_row(tokens, starts, seq_len, pad_id):
  filled = len(tokens)
  row = _pack_rows(np.pad(tokens, (0, seq_len - filled), constant_values=pad_id),
                   np.pad(starts, (0, seq_len - filled)), seq_len)
  row['segment_ids'][:, filled:] = 0
  row['positions'][:, filled:] = 0
  return row


def _append(pieces, rows):
  for key in PACKED_KEYS:
    pieces[key].append(rows[key])


def target_mask(segment_ids):
  """(N, L - 1) bool: whether tokens[:, 1:] count as targets (module docstring)."""
  segment_ids = np.asarray(segment_ids)
  return (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] != 0)
