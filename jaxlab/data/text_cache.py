"""Packed rows cached on disk: tokenized and packed once per (documents, tokenizer,
seq_len), written atomically, memory-mapped on later runs."""

import os
import re
import uuid

import numpy as np

from jaxlab.errors import UserError
from jaxlab.data.packing import PACKED_KEYS, pack
from jaxlab.data.token_pool import tokenize


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
