"""`data.name=text_files`: your text, for a language model or a text classifier.

data.path is one of
  DIR/*.txt, or a glob ('corpus/**/*.txt')   documents for a language model
  DIR/<class>/*.txt                           documents in class folders: classification
                                              (Keras's text_dataset_from_directory layout)
  FILE.jsonl                                  one JSON object a line: the text under
                                              data.text_key; a classifier when the objects
                                              hold data.label_key, else a language model
and a folder DIR/train/ with DIR/test/ (each as above; or train.jsonl and test.jsonl)
gives the test split; otherwise data.validation_split of the documents is held out.

The text goes through the text sets' path (`jaxlab.data.text_sets`): tokenized by
data.tokenizer (a SentencePiece model is trained on the training text at the first start
and kept in the workdir); for a language model, packed into rows of data.seq_len tokens
with document boundaries and cached, memory-mapped, under data.cache_dir; for a
classifier, each document's first seq_len tokens. An empty document, a file that is not
UTF-8 or a line that is not JSON is a bad record: left out, and counted in one warning.
The documents are read into memory at each start (the packed rows are cached).
"""

import glob
import hashlib
import json
import os

import numpy as np

from jaxlab.data import class_folders, holdout, labels, packing, sources, text_cache, text_sets
from jaxlab.data.info import DatasetInfo, Splits
from jaxlab.errors import UserError
from jaxlab.runtime import messages

TEXT_EXTENSIONS = ('.txt',)
JSONL_SUFFIXES = ('.jsonl', '.json')


def load(data_config, workdir=None):
  splits, class_names = _read(os.path.expanduser(data_config.path), data_config)
  return text_splits(data_config, workdir, 'text_files', splits, class_names)


def text_splits(data_config, workdir, name, splits, class_names):
  """Splits of `splits` {'train'|'test': (texts, labels or None)}: classification when
  `class_names` is given (labels then class indices), a language model otherwise."""
  splits = {split: _without_empty(*pair, f'{name} {split}') for split, pair in splits.items()}
  train_texts = splits['train'][0]
  spec, tokenizer = text_sets.make_tokenizer(data_config, workdir, lambda: train_texts)
  seq_len = int(data_config.seq_len)
  if class_names is None:
    rows = {split: text_cache.packed_rows(lambda texts=texts: texts, tokenizer, seq_len,
                                          _cache_key(name, split, texts),
                                          text_sets.cache_dir(data_config))
            for split, (texts, _) in splits.items()}
    features = {key: ((seq_len,), 'int32') for key in packing.PACKED_KEYS}
    info = DatasetInfo(name, features, vocab_size=tokenizer.vocab_size, tokenizer=spec)
  else:
    rows = {split: dict(tokens=text_sets.first_tokens(texts, tokenizer, seq_len), label=found)
            for split, (texts, found) in splits.items()}
    info = DatasetInfo(name, {'tokens': ((seq_len,), 'int32'), 'label': ((), 'int32')},
                       num_classes=len(class_names), class_names=tuple(class_names),
                       vocab_size=tokenizer.vocab_size, tokenizer=spec)
  return Splits(info, *(sources.ArraySource(rows[split], f'{name} {split}')
                        for split in ('train', 'test')))


def _read(path, data_config):
  """({'train': (texts, labels), 'test': ...}, class names or None)."""
  if any(c in path for c in '*?['):
    files = sorted(glob.glob(path, recursive=True))
    if not files:
      raise UserError(f'--config.data.path={path} matches no files. {_LAYOUTS}')
    return _held_out(_documents(files, data_config), data_config, path)
  if os.path.isfile(path):
    return _held_out(_documents([path], data_config), data_config, path)
  if not os.path.isdir(path):
    raise UserError(f'--config.data.path={path} does not exist. {_LAYOUTS}')
  train, test = _split_parts(path)
  if test is None:
    return _held_out(_part(train, data_config), data_config, path)
  holdout.fraction(data_config, True, path)  # refuses a validation_split it cannot use
  (train_texts, train_values), (test_texts, test_values) = (_part(train, data_config),
                                                            _part(test, data_config))
  return _with_classes({'train': (train_texts, train_values), 'test': (test_texts, test_values)},
                       path)


def _split_parts(path):
  """(train part, test part or None): a part is a folder or a .jsonl file."""
  for suffix in JSONL_SUFFIXES:
    if os.path.isfile(os.path.join(path, 'train' + suffix)):
      test = os.path.join(path, 'test' + suffix)
      return os.path.join(path, 'train' + suffix), test if os.path.isfile(test) else None
  if os.path.isdir(os.path.join(path, 'train')):
    test = next((os.path.join(path, name) for name in class_folders.TEST_FOLDERS
                 if os.path.isdir(os.path.join(path, name))), None)
    return os.path.join(path, 'train'), test
  return path, None


def _part(part, data_config):
  """(texts, label values or None) of a folder or a .jsonl file."""
  if os.path.isfile(part):
    return _documents([part], data_config)
  top_level = [name for name in os.listdir(part) if name.lower().endswith(TEXT_EXTENSIONS)
               and not name.startswith('.')]
  if top_level:  # documents for a language model
    return _documents(list(class_folders.files_under(part, TEXT_EXTENSIONS)), data_config)
  found = class_folders.index(part, TEXT_EXTENSIONS, 'text files')
  texts, values, bad = [], [], []
  for path, label in zip(*found.train):
    before = len(texts)
    _read_file(path, texts, bad)
    values += [found.class_names[label]] * (len(texts) - before)  # labels as names
  _warn_unreadable(bad)
  return texts, _ClassNames(values, found.class_names)


class _ClassNames(list):
  """Label values from class folders, with every folder's name (empty ones too)."""

  def __init__(self, values, class_names):
    super().__init__(values)
    self.class_names = class_names


def _documents(files, data_config):
  """(texts, label values or None) of .txt and .jsonl files; unreadable ones are None."""
  texts, values, bad = [], [], []
  for path in files:
    if path.lower().endswith(JSONL_SUFFIXES):
      _jsonl(path, data_config, texts, values, bad)
      continue
    before = len(texts)
    _read_file(path, texts, bad)
    values += [None] * (len(texts) - before)
  _warn_unreadable(bad)
  labelled = any(v is not None for v in values)
  return texts, values if labelled else None


def _read_file(path, texts, bad):
  try:
    with open(path, encoding='utf-8') as f:
      texts.append(f.read())
  except (OSError, UnicodeDecodeError) as error:
    bad.append(f'{path}: {type(error).__name__}')


def _warn_unreadable(bad):
  if bad:
    messages.warn(f'jaxlab: warning: left out {len(bad)} unreadable text record(s) (first: {bad[0]})')


def _jsonl(path, data_config, texts, values, bad):
  text_key, label_key = data_config.text_key, data_config.label_key
  with open(path, encoding='utf-8', errors='replace') as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        texts.append(str(record[text_key]))
      except (ValueError, KeyError, TypeError) as error:
        bad.append(f'{path} line {number}: {type(error).__name__} {error}')
        continue
      values.append(record.get(label_key) if label_key else None)


def _held_out(documents, data_config, where):
  texts, values = documents
  share = holdout.fraction(data_config, False, where)
  kept, held = holdout.split(len(texts), share, data_config.split_seed, where)
  def pick(items, rows):
    if items is None:
      return None
    picked = [items[i] for i in rows]
    known = getattr(items, 'class_names', None)
    return picked if known is None else _ClassNames(picked, known)
  return _with_classes({'train': (pick(texts, kept), pick(values, kept)),
                        'test': (pick(texts, held), pick(values, held))}, where)


def _with_classes(splits, where):
  labelled = {split: values is not None for split, (_, values) in splits.items()}
  if not labelled['train']:
    return {split: (texts, None) for split, (texts, _) in splits.items()}, None
  if not labelled['test']:
    raise UserError(f'The training documents of {where} have labels, its test documents none: '
                    'give both splits the same layout (class folders, or the label key).')
  known = getattr(splits['train'][1], 'class_names', ())
  names, indices = labels.class_indices([values for _, values in splits.values()], where, known)
  return {split: (texts, found) for (split, (texts, _)), found in zip(splits.items(), indices)}, \
      names


def _without_empty(texts, found, where):
  """Documents with text (and a label, for a classifier); the rest counted in a warning."""
  keep = [bool(t.strip()) and (found is None or found[i] >= 0) for i, t in enumerate(texts)]
  if not all(keep):
    messages.warn(f'jaxlab: warning: left out {keep.count(False)} empty or unlabelled document(s) of '
          f'{where}')
  return [t for t, k in zip(texts, keep) if k], (None if found is None else
                                                  np.asarray(found)[np.asarray(keep, bool)])


def _cache_key(name, split, texts):
  digest = hashlib.sha256()
  for document in texts:
    digest.update(document.encode('utf-8', 'replace') + b'\0')
  return f'{name}-{split}-{digest.hexdigest()[:16]}'


_LAYOUTS = ('Give a folder of .txt files (or a glob such as "corpus/**/*.txt") for a language '
            'model, a folder of class folders DIR/<class>/*.txt for classification, or a .jsonl '
            'file with the text under --config.data.text_key (and the class under '
            '--config.data.label_key).')
