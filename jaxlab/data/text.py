"""Text for language models: documents → token ids → packed rows, cached on disk.

Host side, numpy only.

Documents come from the embedded corpus (Python's own `pydoc_data` topic texts, no
download) or from a TFDS text data set prepared in ArrayRecord format (lm1b,
imdb_reviews, ...).

Packing (concatenate and chop). Every document is followed by eos; the documents are
laid end to end and cut into rows of `seq_len` tokens. Each row carries
- `tokens`: the ids; the last row is padded with pad id 0;
- `segment_ids`: 1, 2, ... for the document pieces within the row, 0 for padding. A
  document that runs on into the next row gets a new segment id there;
- `positions`: the position within the piece, restarting at 0 at every document start
  and at every row start.
Attention is limited to equal segment ids, so no token sees another document.

The loss mask. Target token[t + 1] (predicted from tokens[:t + 1]) counts if and only
if segment_ids[t + 1] == segment_ids[t] != 0: padding is never a target, and neither
is the first token of a piece, whose context lies in another document or row.
`target_mask` computes it; the language-model task and the baselines here share it.
"""

import collections
import concurrent.futures
import hashlib
import itertools
import multiprocessing
import os
import re
import sys
import uuid
import warnings

import numpy as np

from jaxlab.data import tokenizers
from jaxlab.errors import UserError

PACKED_KEYS = ('tokens', 'segment_ids', 'positions')
TEST_EVERY = 10  # of the embedded documents in sorted-key order, the 1st, 11th, 21st... are test
PACK_CHUNK_TOKENS = 1 << 22  # tokens packed at a time: bounds the temporary arrays
WORKER_CHUNK_CHARS = 1 << 20  # characters per task sent to a tokenizing process
TFDS_READ_BATCH = 4096  # records fetched per ArrayRecord read


# Documents -------------------------------------------------------------------------

def embedded_documents():
  """The topic texts bundled with Python (pydoc_data), in sorted-key order, each
  text once: some topics share one ('else' and 'if'), which would otherwise put the
  same document in both splits."""
  from pydoc_data.topics import topics  # pylint: disable=g-import-not-at-top
  return list(dict.fromkeys(topics[key] for key in sorted(topics)))


def embedded_split(split):
  """A fixed split by whole documents: in sorted-key order the 1st, 11th, 21st, ...
  are 'test' (with Python 3.11: 8 of 78 texts, 6% of the characters), the rest 'train'.
  No text is in both (topics that share a text are kept once); a test topic shares with
  training only the manual's vocabulary, style and the passages that topics quote from
  each other, not its own text."""
  if split not in ('train', 'test'):
    raise UserError(f"The embedded text corpus has splits 'train' and 'test', not {split!r}.")
  is_test = lambda index: index % TEST_EVERY == 0
  return [doc for index, doc in enumerate(embedded_documents())
          if is_test(index) == (split == 'test')]


def embedded_cache_key(split):
  """Names the split's documents: the corpus changes between Python versions."""
  digest = hashlib.sha256('\0'.join(embedded_split(split)).encode()).hexdigest()[:12]
  return f'pydoc_topics-py{sys.version_info[0]}.{sys.version_info[1]}-{split}-{digest}'


def tfds_documents(name, split, data_dir=None, text_key='text'):
  """The texts of a TFDS data set prepared in ArrayRecord format, as str."""
  return records_text(_tfds_source(name, split, data_dir), text_key)


def tfds_cache_key(name, split, data_dir=None):
  """Names the data set's version and split, e.g. 'lm1b-1.1.0-train'."""
  info = _tfds_source(name, split, data_dir).info
  return f'{info.full_name}-{split}'


def records_text(records, text_key='text'):
  """Yields `record[text_key]` of each record of a random-access sequence, as str."""
  for start in range(0, len(records), TFDS_READ_BATCH):
    for record in _read_batch(records, range(start, min(start + TFDS_READ_BATCH, len(records)))):
      text = record[text_key]
      yield text.decode('utf-8') if isinstance(text, bytes) else str(text)


def _read_batch(records, keys):
  try:
    return records.__getitems__(list(keys))  # one batched read on real ArrayRecord files
  except (AttributeError, TypeError):  # lists and mock sources lack the batched read
    return [records[key] for key in keys]


def _tfds_source(name, split, data_dir):
  from jaxlab.data import tfds_source  # pylint: disable=g-import-not-at-top
  return tfds_source.source(name, split, data_dir)


# Tokenizing ------------------------------------------------------------------------

def tokenize(documents, tokenizer, workers=None):
  """Yields each document's ids in order; a corpus over one chunk is split among
  `workers` processes (default: one per core). The output does not depend on the
  worker count: each document is encoded on its own."""
  workers = workers or _available_cores()
  chunks = _document_chunks(documents)
  head = list(itertools.islice(chunks, 2))
  chunks = itertools.chain(head, chunks)
  if len(head) < 2 or workers == 1:  # a small corpus: a pool costs more than it saves
    yield from _tokenize_here(chunks, tokenizer)
  else:
    yield from _tokenize_in_pool(chunks, tokenizer, workers)


def _available_cores():
  if hasattr(os, 'sched_getaffinity'):  # the cores this process may use (Linux)
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def _tokenize_here(chunks, tokenizer):
  for chunk in chunks:
    yield from _split(*_encode_chunk(chunk, tokenizer))


def _tokenize_in_pool(chunks, tokenizer, workers):
  with _worker_pool(tokenizer, workers) as pool:
    first = next(chunks)
    try:
      first_ids = pool.submit(_encode_in_worker, first).result()
    except concurrent.futures.process.BrokenProcessPool:
      warnings.warn(_NO_WORKERS_WARNING)
      yield from _tokenize_here(itertools.chain([first], chunks), tokenizer)
      return
    yield from _split(*first_ids)
    pending = collections.deque()  # in order; bounded, so a huge corpus is never all in flight
    for chunk in chunks:
      pending.append(pool.submit(_encode_in_worker, chunk))
      if len(pending) >= 2 * workers:
        yield from _split(*pending.popleft().result())
    for future in pending:
      yield from _split(*future.result())


def _worker_pool(tokenizer, workers):
  # spawn, not fork: forking a process that has started JAX's threads can deadlock.
  return concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=multiprocessing.get_context('spawn'),
      initializer=_set_worker_tokenizer, initargs=(tokenizer,))


# Spawned workers import the main module again; that fails for code read from stdin,
# and a script without `if __name__ == '__main__':` would rerun itself in each worker.
_NO_WORKERS_WARNING = (
    'Tokenizing in this process alone: the worker processes could not start. They '
    "import the main module again, so a script must keep its work under `if __name__ "
    "== '__main__':`, and code read from stdin cannot use them.")


def _document_chunks(documents):
  chunk, chars = [], 0
  for document in documents:
    chunk.append(document)
    chars += len(document)
    if chars >= WORKER_CHUNK_CHARS:
      yield chunk
      chunk, chars = [], 0
  if chunk:
    yield chunk


_worker_tokenizer = None


def _set_worker_tokenizer(tokenizer):
  global _worker_tokenizer
  _worker_tokenizer = tokenizer


def _encode_in_worker(chunk):
  return _encode_chunk(chunk, _worker_tokenizer)


def _encode_chunk(chunk, tokenizer):
  """One flat int32 array and the lengths: far cheaper to send between processes than
  a list of small arrays."""
  ids = [tokenizer.encode(document) for document in chunk]
  lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
  flat = np.concatenate(ids).astype(np.int32) if ids else np.zeros(0, np.int32)
  return flat, lengths


def _split(flat, lengths):
  return np.split(flat, np.cumsum(lengths)[:-1])


# Packing ---------------------------------------------------------------------------

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


# The cache -------------------------------------------------------------------------

def packed_rows(documents_fn, tokenizer, seq_len, cache_key, cache_dir, workers=None):
  """The packed rows of `documents_fn()`, tokenized and packed on the first call and
  memory-mapped from `cache_dir` (a local folder) on later ones.

  The cache folder's name joins `cache_key` (the caller names the data set, its
  version and split), the tokenizer's fingerprint (a hash of a SentencePiece model)
  and seq_len. It is written under a temporary name and renamed when complete, so a
  run killed mid-write leaves no half cache behind, only a '.tmp-' folder that is
  never read.
  """
  if '://' in os.fspath(cache_dir):
    raise UserError(
        f'The packed-text cache_dir {cache_dir} must be a local folder: the rows are '
        f'memory-mapped from it. Give a local disk path (the workdir may stay remote).')
  folder = os.path.join(os.path.expanduser(cache_dir),
                        _folder_name(cache_key, tokenizer, seq_len))
  if not os.path.isdir(folder):
    rows = pack(tokenize(documents_fn(), tokenizer, workers), seq_len, tokenizer.eos_id,
                tokenizer.pad_id)
    _write_atomically(folder, rows)
  return {key: np.load(os.path.join(folder, f'{key}.npy'), mmap_mode='r')
          for key in PACKED_KEYS}


def _folder_name(cache_key, tokenizer, seq_len):
  safe_key = re.sub(r'[^A-Za-z0-9._-]+', '_', cache_key)
  return f'{safe_key}-{tokenizer.fingerprint}-seq{seq_len}'


def _write_atomically(folder, rows):
  parent, name = os.path.split(folder)
  staging = os.path.join(parent, f'.tmp-{name}-{uuid.uuid4().hex[:8]}')
  os.makedirs(staging)
  for key in PACKED_KEYS:
    np.save(os.path.join(staging, f'{key}.npy'), rows[key])
  try:
    os.rename(staging, folder)
  except OSError:  # another process finished the same cache first: theirs is as good
    if not os.path.isdir(folder):
      raise
    for key in PACKED_KEYS:
      os.remove(os.path.join(staging, f'{key}.npy'))
    os.rmdir(staging)


# Baselines -------------------------------------------------------------------------

def target_counts(rows, vocab_size):
  """How often each id occurs as a counted target (see `target_mask`)."""
  targets = np.asarray(rows['tokens'])[:, 1:][target_mask(rows['segment_ids'])]
  return np.bincount(targets, minlength=vocab_size)


def unigram_entropy(rows, vocab_size):
  """Entropy, in nats per target, of the rows' own target distribution."""
  counts = target_counts(rows, vocab_size)
  probs = counts[counts > 0] / counts.sum()
  return float(-(probs * np.log(probs)).sum())


def unigram_baseline(train_rows, test_rows, vocab_size):
  """(cross-entropy in nats per target, perplexity) on the test targets of a unigram
  model of the training targets with add-one smoothing: the loss any language model
  must beat."""
  train_counts = target_counts(train_rows, vocab_size)
  log_probs = np.log((train_counts + 1) / (train_counts.sum() + vocab_size))
  test_counts = target_counts(test_rows, vocab_size)
  nats = float(-(test_counts * log_probs).sum() / test_counts.sum())
  return nats, float(np.exp(nats))
