"""Text files as token batches for `predict`, tokenized as the training text was."""

import functools
import json

import numpy as np

from jaxlab.data import tokenizers


def tokenizer(task):
  """The task's tokenizer, read once per (spec, workdir): a served model asks for it on
  every request, and a SentencePiece model is a file read."""
  return tokenizer_of(task.info.tokenizer, task.workdir)


def tokenizer_of(spec, workdir):
  """The tokenizer of a spec (read once per spec and workdir, as `tokenizer`)."""
  return _tokenizer(json.dumps(spec, sort_keys=True), workdir)


@functools.lru_cache(maxsize=8)
def _tokenizer(spec_json, workdir):
  return tokenizers.from_spec(json.loads(spec_json), workdir)


def _read(paths):
  texts, readable, errors = [], [], {}
  for path in paths:
    try:
      with open(path, encoding='utf-8') as f:
        text = f.read()
      if not text:
        raise ValueError('the file is empty')
      texts.append(text)
      readable.append(path)
    except (OSError, UnicodeDecodeError, ValueError) as error:
      errors[path] = str(error)
  return texts, readable, errors


def language_model_inputs(task, paths):
  """Each file's last seq_len tokens as one row (one document: segment 1)."""
  texts, readable, errors = _read(paths)
  return language_model_batch(task, texts), readable, errors


def language_model_batch(task, texts, encode=None):
  """Each text's last seq_len tokens as one row (one document: segment 1); `encode`:
  the run's tokenizer's (loaded when not given)."""
  encode = encode or tokenizer(task).encode
  rows = [np.asarray(encode(text), np.int32)[-task.seq_len:] for text in texts]
  batch = {name: np.zeros((len(rows), task.seq_len), np.int32)
           for name in ('tokens', 'segment_ids', 'positions')}
  for index, row in enumerate(rows):
    batch['tokens'][index, :len(row)] = row
    batch['segment_ids'][index, :len(row)] = 1
    batch['positions'][index, :len(row)] = np.arange(len(row))
  return batch


def classification_inputs(task, paths):
  """Each file's first seq_len tokens (zero-padded) as the 'tokens' input."""
  texts, readable, errors = _read(paths)
  return classification_batch(task, texts), readable, errors


def classification_batch(task, texts, encode=None):
  """Each text's first seq_len tokens (zero-padded) as the task's input."""
  (seq_len,), _ = task.info.spec()[task.input]
  encode = encode or tokenizer(task).encode
  tokens = np.zeros((len(texts), seq_len), np.int32)
  for index, text in enumerate(texts):
    row = np.asarray(encode(text), np.int32)[:seq_len]
    tokens[index, :len(row)] = row
  return {task.input: tokens}
