"""Text pairs (source -> target) for sequence to sequence: `data.name=text_pairs` reads
your files, and the offline and TFDS pair sets (`jaxlab.data.pair_sets`) come through
`pair_splits` too.

data.path is one of
  FILE.tsv      one pair a line: source TAB target (a first line 'source<TAB>target' is a header)
  FILE.jsonl    one JSON object a line: {"source": ..., "target": ...}
  DIR           DIR/train.tsv (or .jsonl) and DIR/test.tsv (or .jsonl)
A single file gives data.validation_split of its pairs (default 0.2) to the test split.

A row with an empty source or target, a missing column or key, or a line that is not
JSON is a bad record: with data.skip_bad_records (the default) it is skipped and counted
in one warning naming the first; otherwise the run stops at it, naming its file and line.

Examples: 'source' (data.seq_len token ids) and 'target' (data.target_len ids, the
target's tokens then end-of-sequence), 0-padded; longer texts are cut (counted in a
warning). Tokens: data.tokenizer ('byte', or 'sentencepiece' trained on the training
text at the first start and kept in the workdir); data.shared_vocab=False gives the
target its own SentencePiece model (target_tokenizer.model) and its own embeddings.
"""

import json
import os

import numpy as np

from jaxlab.data import holdout, sources, text_sets, tokenizers
from jaxlab.data.info import DatasetInfo, Splits
from jaxlab.errors import UserError
from jaxlab.runtime import messages

SUFFIXES = ('.tsv', '.jsonl')
TARGET_TOKENIZER = 'target_tokenizer.model'
FEATURES = ('source', 'target')


def load(data_config, workdir=None):
  path = os.path.expanduser(data_config.path)
  skip = bool(data_config.skip_bad_records)
  if os.path.isdir(path):
    found = {split: next((os.path.join(path, split + s) for s in SUFFIXES
                          if os.path.isfile(os.path.join(path, split + s))), None)
             for split in ('train', 'test')}
    if found['train'] is None:
      raise UserError(f'--config.data.path={path} holds no train.tsv or train.jsonl. {_LAYOUTS}')
    if found['test'] is not None:
      holdout.fraction(data_config, True, path)  # refuses a validation_split it cannot use
      return pair_splits(data_config, workdir, 'text_pairs',
                         {split: read_pairs(file, skip) for split, file in found.items()})
    path = found['train']
  if not os.path.isfile(path):
    raise UserError(f'--config.data.path={path} does not exist. {_LAYOUTS}')
  pairs = read_pairs(path, skip)
  kept, held = holdout.split(len(pairs), holdout.fraction(data_config, False, path),
                             data_config.split_seed, path)
  return pair_splits(data_config, workdir, 'text_pairs',
                     {'train': [pairs[i] for i in kept], 'test': [pairs[i] for i in held]})


def read_pairs(path, skip_bad=True):
  """[(source, target)] of a .tsv or .jsonl file; bad rows skipped and counted in one
  warning, or (skip_bad=False) a UserError naming the first with its line number."""
  if not path.lower().endswith(SUFFIXES):
    raise UserError(f'{path} is neither .tsv nor .jsonl. {_LAYOUTS}')
  pairs, bad = [], []
  with open(path, encoding='utf-8', errors='replace') as f:
    for number, line in enumerate(f, 1):
      line = line.rstrip('\r\n')
      if not line.strip() or (number == 1 and line == 'source\ttarget'):
        continue
      pair, problem = _parse(line, path.lower().endswith('.jsonl'))
      if problem:
        if not skip_bad:
          raise UserError(f'{path} line {number}: {problem}. Fix the row, or set '
                          '--config.data.skip_bad_records=True to skip bad rows (counted).')
        bad.append(f'line {number}: {problem}')
        continue
      pairs.append(pair)
  if bad:
    messages.warn(f'jaxlab: warning: skipped {len(bad)} bad row(s) of {path} (first: {bad[0]})')
  if not pairs:
    raise UserError(f'{path} holds no usable pair. {_LAYOUTS}')
  return pairs


def _parse(line, is_json):
  """((source, target), None) or (None, what is wrong)."""
  if is_json:
    try:
      record = json.loads(line)
      pair = (record['source'], record['target'])
    except ValueError as error:
      return None, f'not JSON ({error})'
    except (KeyError, TypeError):
      return None, 'not an object with "source" and "target"'
    pair = tuple('' if v is None else str(v) for v in pair)
  else:
    columns = line.split('\t')
    if len(columns) != 2:
      return None, f'{len(columns)} tab-separated column(s), not 2 (source, target)'
    pair = tuple(columns)
  for side, text in zip(FEATURES, pair):
    if not text.strip():
      return None, f'empty {side}'
  return pair, None


def pair_splits(data_config, workdir, name, pairs, test_split='', source_format=None):
  """Splits of {'train' | 'test': [(source, target)]}, tokenized into arrays (only the
  first data.num_train / data.num_test pairs, which are all the run reads). A
  `source_format` (a key of python_functions.SOURCE_FORMATS) says how the sources were made from
  raw text, so that predict and serve make theirs the same way."""
  limits = {'train': data_config.num_train, 'test': data_config.num_test}
  pairs = {split: found[:limits[split]] if limits[split] else found
           for split, found in pairs.items()}
  (source_spec, source_tok), (target_spec, target_tok) = make_tokenizers(
      data_config, workdir, lambda: [s for s, _ in pairs['train']],
      lambda: [t for _, t in pairs['train']])
  source_len, target_len = lengths(data_config)
  arrays = {}
  for split, found in pairs.items():
    arrays[split], cut = encode_pairs(found, source_tok, target_tok, source_len, target_len)
    if cut:
      messages.warn(f'jaxlab: warning: cut {cut} of the {len(found)} {name} {split} pairs to '
                    f'{source_len} source / {target_len} target tokens (raise data.seq_len or '
                    'data.target_len to keep them whole)')
  info = pair_info(name, source_len, target_len, (source_spec, source_tok.vocab_size),
                   (target_spec, target_tok.vocab_size), test_split, source_format)
  return Splits(info, *(sources.ArraySource(arrays[split], f'{name} {split}')
                        for split in ('train', 'test')))


def lengths(data_config):
  return int(data_config.seq_len), int(data_config.target_len or data_config.seq_len)


def pair_info(name, source_len, target_len, source, target, test_split='', source_format=None):
  """The DatasetInfo of pairs: `source` and `target` are (tokenizer spec, vocab size)."""
  (source_spec, source_vocab), (target_spec, target_vocab) = source, target
  features = {'source': ((source_len,), 'int32'), 'target': ((target_len,), 'int32')}
  preprocessing = {'target_tokenizer': target_spec, 'target_vocab_size': target_vocab}
  if source_format:
    preprocessing['source_format'] = source_format
  return DatasetInfo(name, features, vocab_size=source_vocab, tokenizer=source_spec,
                     test_split=test_split, preprocessing=preprocessing)


def target_tokenizer_spec(data_config):
  """The target's tokenizer spec: the source's, unless data.shared_vocab=False gives the
  target a SentencePiece model of its own."""
  spec = text_sets.tokenizer_spec(data_config)
  if data_config.shared_vocab or spec['kind'] != 'sentencepiece':
    return spec
  return dict(spec, file=TARGET_TOKENIZER)


def make_tokenizers(data_config, workdir, source_texts, target_texts):
  """((spec, tokenizer) of the source, of the target). A shared SentencePiece vocabulary
  is trained on both sides' training text."""
  shared = data_config.shared_vocab or data_config.tokenizer != 'sentencepiece'
  texts = (lambda: source_texts() + target_texts()) if shared else source_texts
  source = text_sets.make_tokenizer(data_config, workdir, texts)
  if shared:
    return source, source
  spec = target_tokenizer_spec(data_config)
  if workdir is None:  # a dry run: a throwaway model of the configured size
    import tempfile  # pylint: disable=g-import-not-at-top
    workdir = tempfile.mkdtemp(prefix='jaxlab-tokenizer-')
  import jax  # pylint: disable=g-import-not-at-top
  from jaxlab.parallel import multihost  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    tokenizers.train_or_load(spec, workdir, target_texts)
  multihost.barrier('jaxlab_target_tokenizer')
  return source, (spec, tokenizers.from_spec(spec, workdir))


def encode_pairs(pairs, source_tokenizer, target_tokenizer, source_len, target_len):
  """({'source': N x source_len, 'target': N x target_len} int32, pairs cut)."""
  source = np.zeros((len(pairs), source_len), np.int32)
  target = np.zeros((len(pairs), target_len), np.int32)
  cut = 0
  for row, (text, wanted) in enumerate(pairs):
    ids, cut_source = encode_source(source_tokenizer, text, source_len)
    source[row, :len(ids)] = ids
    ids, cut_target = encode_target(target_tokenizer, wanted, target_len)
    target[row, :len(ids)] = ids
    cut += cut_source or cut_target
  return {'source': source, 'target': target}, cut


def encode_source(tokenizer, text, length):
  """(the first `length` ids of the text, whether it was cut)."""
  ids = tokenizer.encode(text)
  return ids[:length], len(ids) > length


def encode_target(tokenizer, text, length):
  """(ids of the text then end-of-sequence, at most `length` in all; whether cut)."""
  ids = tokenizer.encode(text)
  return np.append(ids[:length - 1], tokenizers.EOS_ID).astype(np.int32), len(ids) > length - 1


class PairSource:
  """Pairs read from a random-access source of records and tokenized as they are read
  (streaming large sets such as TFDS wmt14_translate); picklable for Grain's workers.
  `fields` names the record's (source, target) text keys; an empty text is a BadRecord."""

  def __init__(self, records, fields, tokenizers_, lengths_, name):
    self.records, self.fields, self.tokenizers, self.lengths = records, fields, tokenizers_, lengths_
    self.name = name

  def __len__(self):
    return len(self.records)

  def __getitem__(self, index):
    record = self.records[index]
    texts = [_text(record, key) for key in self.fields]
    for side, text in zip(FEATURES, texts):
      if not text.strip():
        raise sources.BadRecord(self, index, f'empty {side}')
    source = np.zeros(self.lengths[0], np.int32)
    ids, _ = encode_source(self.tokenizers[0], texts[0], self.lengths[0])
    source[:len(ids)] = ids
    target = np.zeros(self.lengths[1], np.int32)
    ids, _ = encode_target(self.tokenizers[1], texts[1], self.lengths[1])
    target[:len(ids)] = ids
    return {'source': source, 'target': target}

  def __repr__(self):
    return self.name


def _text(record, key):
  value = record
  for part in key.split('/'):  # 'translation/de' reaches into a nested feature
    value = value[part]
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


_LAYOUTS = ('Give a .tsv file (source TAB target per line), a .jsonl file ({"source": ..., '
            '"target": ...} per line), or a folder with train.tsv and test.tsv (or .jsonl).')
