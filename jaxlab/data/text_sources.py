"""Documents for language models and text classifiers: the embedded corpus (Python's own
`pydoc_data` topic texts, no download) and TFDS text sets prepared in ArrayRecord format
(lm1b, imdb_reviews, ...), each with the key its packed rows are cached under."""

import hashlib
import sys

from jaxlab.errors import UserError


TEST_EVERY = 10  # of the embedded documents in sorted-key order, the 1st, 11th, 21st... are test


TFDS_READ_BATCH = 4096  # records fetched per ArrayRecord read


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
