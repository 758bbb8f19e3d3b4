"""Tokenizing many documents: in this process for a little text, else in a pool of
worker processes, each with its own copy of the tokenizer; the ids come back in order."""

import collections
import concurrent.futures
import itertools
import multiprocessing
import os
import warnings

import numpy as np


WORKER_CHUNK_CHARS = 1 << 20  # characters per task sent to a tokenizing process


_worker_tokenizer = None


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
