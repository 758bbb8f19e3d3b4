"""Text data sets: token sequences for language models and text classifiers.

  python_docs    Python's bundled documentation topics (no download): language model
  lm1b           TFDS One Billion Words, prepared in ArrayRecord format: language model
  imdb_reviews   TFDS IMDB reviews: sentiment classification of the first seq_len tokens
  python_snippets  8-line snippets of Python's standard library (no download), labelled
                 with the package they come from (asyncio, email, ...): 8 classes

Text is tokenized by data.tokenizer: 'byte' (UTF-8 bytes, vocabulary 259) or
'sentencepiece' (data.vocab_size pieces, trained on the training text at the run's first
start and saved in the workdir as tokenizer.model, so eval and predict tokenize alike).
Language-model text is packed into rows of data.seq_len tokens with document boundaries
marked (`jaxlab.data.packing`) and cached (`jaxlab.data.text_cache`), memory-mapped, under data.cache_dir.
"""

import collections
import hashlib
import os
import sysconfig
import tempfile

import numpy as np

from jaxlab.workdir import files as workdir_files
from jaxlab.data import packing, sources, text_cache, text_sources, tfds_source, tokenizers
from jaxlab.data import token_pool
from jaxlab.data.info import DatasetInfo, Splits
from jaxlab.runtime import messages

def cache_dir(data_config):
  if not data_config.cache_dir:
    from jaxlab.errors import UserError
    raise UserError('Text data sets need --config.data.cache_dir (a local folder) for their '
                    'tokenized rows; give one, e.g. ~/.cache/jaxlab/datasets.')
  return os.path.expanduser(data_config.cache_dir)


def tokenizer_spec(data_config):
  if data_config.tokenizer == 'pretrained':
    from jaxlab.data import pretrained_tokenizer  # pylint: disable=g-import-not-at-top
    return pretrained_tokenizer.from_imported(data_config.tokenizer_from, None)[0]
  if data_config.tokenizer == 'byte':
    return {'kind': 'byte'}
  return {'kind': 'sentencepiece', 'file': workdir_files.TOKENIZER,
          'vocab_size': int(data_config.vocab_size)}


def make_tokenizer(data_config, workdir, training_documents):
  """The run's tokenizer: trained on the training text by process 0 at the first start
  and saved in the workdir; loaded from there afterwards (and by eval and predict)."""
  if data_config.tokenizer == 'pretrained':  # an imported checkpoint's, to fine-tune it
    from jaxlab.data import pretrained_tokenizer  # pylint: disable=g-import-not-at-top
    return pretrained_tokenizer.from_imported(data_config.tokenizer_from, workdir)
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
    messages.warn(f'jaxlab: warning: skipped {empty} empty document(s) of {where}')


def _language_model(name, data_config, workdir, documents, cache_keys):
  spec, tokenizer = make_tokenizer(data_config, workdir, lambda: documents('train'))
  seq_len = int(data_config.seq_len)
  rows = {split: text_cache.packed_rows(
      lambda split=split: without_empty(documents(split), f'{name} {split}'), tokenizer, seq_len,
      cache_keys(split), cache_dir(data_config)) for split in ('train', 'test')}
  features = {key: ((seq_len,), 'int32') for key in packing.PACKED_KEYS}
  info = DatasetInfo(name, features, vocab_size=tokenizer.vocab_size, tokenizer=spec)
  return Splits(info, sources.ArraySource(rows['train'], f'{name} train'),
                sources.ArraySource(rows['test'], f'{name} test'))


def python_docs(data_config, workdir=None):
  return _language_model('python_docs', data_config, workdir, text_sources.embedded_split,
                         text_sources.embedded_cache_key)


def lm1b(data_config, workdir=None):
  data_dir = data_config.data_dir
  return _language_model('lm1b', data_config, workdir,
                         lambda split: text_sources.tfds_documents('lm1b', split, data_dir),
                         lambda split: text_sources.tfds_cache_key('lm1b', split, data_dir))


IMDB_TRAIN_SIZE = 25_000  # reviews in TFDS imdb_reviews' train split


def imdb_reviews(data_config, workdir=None):
  """Reviews as their first seq_len tokens (zero-padded) with the sentiment label."""
  data_dir = data_config.data_dir
  documents = lambda split: text_sources.tfds_documents('imdb_reviews', split, data_dir)
  spec, tokenizer = make_tokenizer(data_config, workdir, lambda: documents('train'))
  seq_len = int(data_config.seq_len)
  splits = {}
  for split in ('train', 'test'):
    records = tfds_source.source('imdb_reviews', split, data_dir)
    labels = np.asarray([records[i]['label'] for i in range(len(records))], np.int32)
    tokens = first_tokens(documents(split), tokenizer, seq_len)
    splits[split] = sources.ArraySource(dict(tokens=tokens, label=labels), f'imdb_reviews {split}')
  return Splits(_imdb_info(seq_len, tokenizer.vocab_size, spec), splits['train'], splits['test'])


def _imdb_info(seq_len, vocab_size, spec):
  return DatasetInfo('imdb_reviews', {'tokens': ((seq_len,), 'int32'), 'label': ((), 'int32')},
                     num_classes=2, class_names=('negative', 'positive'), vocab_size=vocab_size,
                     tokenizer=spec)


def imdb_reviews_shapes(data_config):
  """(DatasetInfo, number of training examples) without the data: for --dry_run."""
  spec = tokenizer_spec(data_config)
  vocab_size = spec.get('vocab_size', tokenizers.ByteTokenizer.vocab_size)
  return (_imdb_info(int(data_config.seq_len), vocab_size, spec),
          min(data_config.num_train or IMDB_TRAIN_SIZE, IMDB_TRAIN_SIZE))


def first_tokens(documents, tokenizer, seq_len):
  """Each document's first seq_len token ids, zero-padded (PAD_ID): an N x seq_len array."""
  rows = [ids[:seq_len] for ids in token_pool.tokenize(documents, tokenizer)]
  tokens = np.full((len(rows), seq_len), tokenizers.PAD_ID, np.int32)
  for index, ids in enumerate(rows):
    tokens[index, :len(ids)] = ids
  return tokens


# python_snippets: which standard-library package a piece of source code comes from.
SNIPPET_PACKAGES = ('asyncio', 'email', 'http', 'importlib', 'logging', 'multiprocessing',
                    'unittest', 'xml')  # in every CPython from 3.9 on; the class names
SNIPPET_LINES = 8  # a snippet is a file's lines [8 k, 8 k + 8)
SNIPPET_MIN_CHARS = 120  # non-whitespace characters, so a snippet is never blank or trivial
SNIPPETS_PER_PACKAGE = 500  # the same number per class (logging, the smallest, has ~540)
SNIPPET_TEST_EVERY = 5  # a snippet whose text hash is 0 mod 5 is 'test': ~20%


def python_snippets(data_config, workdir=None):
  """Snippets of standard-library source labelled with their package (see `snippets`)."""
  split_snippets = snippets()
  spec, tokenizer = make_tokenizer(data_config, workdir,
                                   lambda: [t for t, _ in split_snippets['train']])
  seq_len = int(data_config.seq_len)
  arrays = {split: dict(tokens=first_tokens([t for t, _ in pairs], tokenizer, seq_len),
                        label=np.asarray([label for _, label in pairs], np.int32))
            for split, pairs in split_snippets.items()}
  info = DatasetInfo('python_snippets', {'tokens': ((seq_len,), 'int32'),
                                         'label': ((), 'int32')},
                     num_classes=len(SNIPPET_PACKAGES), class_names=SNIPPET_PACKAGES,
                     vocab_size=tokenizer.vocab_size, tokenizer=spec)
  return Splits(info, *(sources.ArraySource(arrays[split], f'python_snippets {split}')
                        for split in ('train', 'test')))


def snippets():
  """{'train' | 'test': [(text, label)]}: a fixed function of the installed Python's
  standard library (so of its version, like python_docs).

  A text found in two places (licence headers, boilerplate) is dropped; each package
  keeps the SNIPPETS_PER_PACKAGE texts of lowest hash; the split is by text hash, so
  no text is in both splits. Examples are in hash order (already shuffled).

  What a test snippet shares with training: its file. The split is by snippet, so the
  8 lines before and after a test snippet are usually training snippets, with the same
  module's names, imports and style. The test accuracy measures new lines of files seen
  in training, not unseen modules: a leak for the question "which package is this code
  from?". A split by file would remove it, but logging has 3 files and http 5, too few
  to hold a fifth of each package out by file; it is left as is and said here."""
  found = collections.defaultdict(set)
  for label, package in enumerate(SNIPPET_PACKAGES):
    for snippet in _package_snippets(package):
      found[snippet].add(label)
  by_label = collections.defaultdict(list)
  for snippet, labels in found.items():
    if len(labels) == 1:
      by_label[labels.pop()].append((_hash(snippet), snippet))
  missing = [SNIPPET_PACKAGES[label] for label in range(len(SNIPPET_PACKAGES))
             if len(by_label[label]) < SNIPPETS_PER_PACKAGE // 2]
  if missing:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'python_snippets reads the source of Python\'s standard library, but '
                    f'{sysconfig.get_paths()["stdlib"]} lacks most of {", ".join(missing)} '
                    '(a Python installed without its .py sources?). Use a full CPython install '
                    'or another --config.data.name.')
  result = {'train': [], 'test': []}
  for label in range(len(SNIPPET_PACKAGES)):
    for digest, snippet in sorted(by_label[label])[:SNIPPETS_PER_PACKAGE]:
      result['test' if digest % SNIPPET_TEST_EVERY == 0 else 'train'].append((digest, snippet,
                                                                                label))
  return {split: [(snippet, label) for _, snippet, label in sorted(examples)]
          for split, examples in result.items()}


def _package_snippets(package):
  root = sysconfig.get_paths()['stdlib']
  paths = sorted(os.path.join(folder, name)
                 for folder, _, names in os.walk(os.path.join(root, package))
                 for name in names if name.endswith('.py'))
  for path in paths:
    with open(path, encoding='utf-8') as f:
      lines = f.read().splitlines()
    for start in range(0, len(lines), SNIPPET_LINES):
      snippet = '\n'.join(lines[start:start + SNIPPET_LINES])
      if len(''.join(snippet.split())) >= SNIPPET_MIN_CHARS:
        yield snippet


def _hash(snippet):
  return int.from_bytes(hashlib.sha256(snippet.encode()).digest()[:8], 'big')


LOADERS = {'python_docs': python_docs, 'lm1b': lm1b, 'imdb_reviews': imdb_reviews,
           'python_snippets': python_snippets}
# Data sets whose shapes are known without reading them, so --dry_run needs no data.
SHAPES = {'imdb_reviews': imdb_reviews_shapes}
