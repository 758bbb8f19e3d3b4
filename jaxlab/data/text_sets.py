"""Text data sets: token sequences for language models and text classifiers.

  python_docs    Python's bundled documentation topics (no download): language model
  lm1b           TFDS One Billion Words, prepared in ArrayRecord format: language model
  imdb_reviews   TFDS IMDB reviews: sentiment classification of the first seq_len tokens

Text is tokenized by data.tokenizer: 'byte' (UTF-8 bytes, vocabulary 259) or
'sentencepiece' (data.vocab_size pieces, trained on the training text at the run's first
start and saved in the workdir as tokenizer.model, so eval and predict tokenize alike).
Language-model text is packed into rows of data.seq_len tokens with document boundaries
marked (`jaxlab.data.text`) and cached, memory-mapped, under data.cache_dir.
"""

import os
import sys
import tempfile

import numpy as np

from jaxlab import workdir_files
from jaxlab.data import DatasetInfo, Splits, sources, text, tfds_source, tokenizers

def cache_dir(data_config):
  if not data_config.cache_dir:
    from jaxlab.errors import UserError
    raise UserError('Text data sets need --config.data.cache_dir (a local folder) for their '
                    'tokenized rows; give one, e.g. ~/.cache/jaxlab/datasets.')
  return os.path.expanduser(data_config.cache_dir)


def tokenizer_spec(data_config):
  if data_config.tokenizer == 'byte':
    return {'kind': 'byte'}
  return {'kind': 'sentencepiece', 'file': workdir_files.TOKENIZER,
          'vocab_size': int(data_config.vocab_size)}


def make_tokenizer(data_config, workdir, training_documents):
  """The run's tokenizer: trained on the training text by process 0 at the first start
  and saved in the workdir; loaded from there afterwards (and by eval and predict)."""
  spec = tokenizer_spec(data_config)
  if spec['kind'] == 'byte':
    return spec, tokenizers.ByteTokenizer()
  if workdir is None:  # a dry run: a throwaway model of the configured size
    workdir = tempfile.mkdtemp(prefix='jaxlab-tokenizer-')
  import jax
  from jaxlab.parallel import multihost
  if jax.process_index() == 0:
    tokenizers.train_or_load(spec, workdir, training_documents)
  multihost.barrier('jaxlab_tokenizer')
  return spec, tokenizers.from_spec(spec, workdir)


def without_empty(documents, where):
  """The documents that hold text; an empty one is a bad record: skipped, and counted in
  one warning line when the text is first tokenized (the packed rows are cached)."""
  empty = 0
  for document in documents:
    if document.strip():
      yield document
    else:
      empty += 1
  if empty:
    print(f'jaxlab: warning: skipped {empty} empty document(s) of {where}', file=sys.stderr,
          flush=True)


def _language_model(name, data_config, workdir, documents, cache_keys):
  spec, tokenizer = make_tokenizer(data_config, workdir, lambda: documents('train'))
  seq_len = int(data_config.seq_len)
  rows = {split: text.packed_rows(
      lambda split=split: without_empty(documents(split), f'{name} {split}'), tokenizer, seq_len,
      cache_keys(split), cache_dir(data_config)) for split in ('train', 'test')}
  features = {key: ((seq_len,), 'int32') for key in text.PACKED_KEYS}
  info = DatasetInfo(name, features, vocab_size=tokenizer.vocab_size, tokenizer=spec)
  return Splits(info, sources.ArraySource(rows['train'], f'{name} train'),
                sources.ArraySource(rows['test'], f'{name} test'))


def python_docs(data_config, workdir=None):
  return _language_model('python_docs', data_config, workdir, text.embedded_split,
                         text.embedded_cache_key)


def lm1b(data_config, workdir=None):
  data_dir = data_config.data_dir
  return _language_model('lm1b', data_config, workdir,
                         lambda split: text.tfds_documents('lm1b', split, data_dir),
                         lambda split: text.tfds_cache_key('lm1b', split, data_dir))


def imdb_reviews(data_config, workdir=None):
  """Reviews as their first seq_len tokens (zero-padded) with the sentiment label."""
  data_dir = data_config.data_dir
  documents = lambda split: text.tfds_documents('imdb_reviews', split, data_dir)
  spec, tokenizer = make_tokenizer(data_config, workdir, lambda: documents('train'))
  seq_len = int(data_config.seq_len)
  splits = {}
  for split in ('train', 'test'):
    records = tfds_source.source('imdb_reviews', split, data_dir)
    labels = np.asarray([records[i]['label'] for i in range(len(records))], np.int32)
    tokens = np.zeros((len(labels), seq_len), np.int32)
    for index, ids in enumerate(text.tokenize(documents(split), tokenizer)):
      tokens[index, :min(len(ids), seq_len)] = ids[:seq_len]
    splits[split] = sources.ArraySource(dict(tokens=tokens, label=labels), f'imdb_reviews {split}')
  info = DatasetInfo('imdb_reviews', {'tokens': ((seq_len,), 'int32'), 'label': ((), 'int32')},
                     num_classes=2, class_names=('negative', 'positive'),
                     vocab_size=tokenizer.vocab_size, tokenizer=spec)
  return Splits(info, splits['train'], splits['test'])


LOADERS = {'python_docs': python_docs, 'lm1b': lm1b, 'imdb_reviews': imdb_reviews}
