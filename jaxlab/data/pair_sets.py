"""Named sets of text pairs for sequence to sequence (`task.name=seq2seq`).

  freedict_de_en    German -> English: FreeDict's German-English dictionary as Debian
                    packages it (dict-freedict-deu-eng, no download at run time; or the
                    dictd files in data.path): each
                    headword (words and multi-word phrases) -> its first English sense.
                    Split by headword hash: a test headword is never seen in training, but
                    its inflections may be (abblocken in training, abblockend in test).
  stdlib_summaries  Python code -> summary: each documented function and method of the
                    installed Python's standard library (its source, docstring removed) ->
                    the first sentence of its docstring, as code-summarization benchmarks
                    pair them. Split by module: a test function's module is never seen.
  wmt14_translate   TFDS wmt14_translate/de-en (German -> English), streamed
  cnn_dailymail     TFDS cnn_dailymail (article -> highlights), streamed

The offline sets are tokenized into arrays at each start (seconds); the TFDS sets are
tokenized as they stream (`text_pairs.PairSource`).
"""

import ast
import gzip
import hashlib
import json
import os
import re
import sys
import sysconfig

from jaxlab.data import python_functions, sources, text_pairs, tokenizers
from jaxlab.data.info import Splits
from jaxlab.errors import UserError

TEST_EVERY = 10  # a headword (module) whose hash is 0 mod 10 is test: ~10%
FORMAT = 2  # bump when the pairs made change: the cache's names hold it

# --- FreeDict German -> English --------------------------------------------------------

FREEDICT_DIR = '/usr/share/dictd'
FREEDICT_NAME = 'freedict-deu-eng'
FREEDICT_PACKAGE = 'dict-freedict-deu-eng'
_DICTD_DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'


def dictd_number(text):
  """A dictd index number: base 64 over A-Z a-z 0-9 + /, most significant digit first."""
  value = 0
  for char in text:
    value = value * 64 + _DICTD_DIGITS.index(char)
  return value


def freedict_files(folder=FREEDICT_DIR):
  index = os.path.join(folder, FREEDICT_NAME + '.index')
  data = os.path.join(folder, FREEDICT_NAME + '.dict.dz')
  if not (os.path.isfile(index) and os.path.isfile(data)):
    raise UserError(
        f'The freedict_de_en set reads Debian\'s FreeDict German-English dictionary, which is '
        f'not installed ({index} is missing). Install it: `apt-get install -y '
        f'{FREEDICT_PACKAGE}` (as root), then run again.')
  return index, data


def first_sense(entry):
  """(headword, its first English sense) of one dictd entry, or None where it has none.

  An entry reads 'Headword /IPA/ <grammar>' then the senses on the next line, e.g.
  ' [soc.] defensiveness <n>, ...': tags in [] <> {} are dropped, then the text up to
  the first comma or semicolon is the sense."""
  lines = [line for line in entry.split('\n') if line.strip()]
  if len(lines) < 2:
    return None
  headword = re.split(r' /| <', lines[0], maxsplit=1)[0].strip()
  senses = re.sub(r'\[[^\]]*\]|<[^>]*>|\{[^}]*\}', '', lines[1])
  sense = ' '.join(re.split(r'[,;]', senses)[0].split())
  if not headword or not sense or lines[1].lstrip().startswith(('see:', 'Synonym')):
    return None
  return headword, sense


def freedict_pairs(folder=FREEDICT_DIR):
  """{'train' | 'test': [(German headword, English sense)]}: each headword once (its
  first entry), split by the headword's hash, in hash order (already shuffled)."""
  index_path, data_path = freedict_files(folder)
  with gzip.open(data_path) as f:  # dictzip is gzip with an index: gzip reads it whole
    data = f.read()
  found = {}
  with open(index_path, encoding='utf-8') as f:
    for line in f:
      parts = line.rstrip('\n').split('\t')
      if len(parts) != 3 or parts[0].startswith('00database'):
        continue
      start, size = dictd_number(parts[1]), dictd_number(parts[2])
      pair = first_sense(data[start:start + size].decode('utf-8', 'replace'))
      if pair and pair[0] not in found:
        found[pair[0]] = pair[1]
  return _split_by(found.items(), key=lambda pair: pair[0])


def _hash(text):
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], 'big')


def _split_by(pairs, key):
  """{'train', 'test'}: by the hash of key(pair), each in hash order."""
  result = {'train': [], 'test': []}
  for pair in sorted(pairs, key=lambda p: (_hash(key(p)), p)):
    result['test' if _hash(key(pair)) % TEST_EVERY == 0 else 'train'].append(pair)
  return result


def freedict_de_en(data_config, workdir=None):
  """The pairs of the dictionary in data.path (default Debian's /usr/share/dictd), parsed
  once into data.cache_dir (seconds: the dictionary is 100 MB of text)."""
  folder = os.path.expanduser(data_config.path or FREEDICT_DIR)
  pairs = _cached(data_config, 'freedict_de_en', freedict_files(folder)[0],
                  lambda: freedict_pairs(folder))
  return text_pairs.pair_splits(data_config, workdir, 'freedict_de_en', pairs,
                                test_split='held-out headwords')


def _cached(data_config, name, made_from, make):
  """make() -> {split: [(source, target)]}, kept as JSON under data.cache_dir, named by
  the size and time of the file it is made from ('' cache_dir: made each time)."""
  if not data_config.cache_dir:
    return make()
  stat = os.stat(made_from)
  path = os.path.join(os.path.expanduser(data_config.cache_dir), name,
                      f'pairs-{FORMAT}-{stat.st_size}-{int(stat.st_mtime)}.json')
  if os.path.isfile(path):
    with open(path, encoding='utf-8') as f:
      return {split: [tuple(pair) for pair in pairs] for split, pairs in json.load(f).items()}
  pairs = make()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  temporary = f'{path}.{os.getpid()}.tmp'
  with open(temporary, 'w', encoding='utf-8') as f:
    json.dump(pairs, f, ensure_ascii=False)
  os.replace(temporary, path)  # whole or not at all
  return pairs


# --- Python standard library: function -> first docstring sentence ---------------------

SKIPPED_PACKAGES = ('test', 'site-packages', 'pydoc_data')  # tests, installed packages, data


def module_functions(path, module):
  """[(module, source, summary)] of the documented functions and methods of one source
  file (private ones too: their docstrings are as good); source as `python_functions.function_source`."""
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
    tree = ast.parse(text)
  except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
    return []
  lines = text.splitlines()
  found = []
  for node in ast.walk(tree):
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      continue
    docstring = ast.get_docstring(node)
    summary = docstring and python_functions.first_sentence(docstring)
    if summary and len(node.body) > 1:  # a body beyond the docstring
      found.append((module, python_functions.function_source(
          python_functions.without_docstring(node, lines)), summary))
  return found


def stdlib_pairs():
  """{'train' | 'test': [(code, summary)]}: split by module hash, each code once."""
  root = sysconfig.get_paths()['stdlib']
  found = []
  for folder, subfolders, names in os.walk(root):
    relative = os.path.relpath(folder, root)
    if (set(relative.split(os.sep)) & set(SKIPPED_PACKAGES) or '__pycache__' in folder
        or relative.split(os.sep)[0].startswith('test')):
      subfolders[:] = []
      continue
    subfolders.sort()
    for name in sorted(names):
      if name.endswith('.py'):
        module = os.path.join(relative, name[:-3]).replace(os.sep, '.').lstrip('.')
        found += module_functions(os.path.join(folder, name), module)
  if len(found) < 1000:
    raise UserError(f'stdlib_summaries reads the source of Python\'s standard library, but '
                    f'{root} holds only {len(found)} documented functions (a Python installed '
                    'without its .py sources?). Use a full CPython install.')
  unique = {code: (module, summary) for module, code, summary in found}
  by_module = _split_by([(module, code, summary) for code, (module, summary) in unique.items()],
                        key=lambda item: item[0])
  return {split: [(code, summary) for _, code, summary in items]
          for split, items in by_module.items()}


def stdlib_summaries(data_config, workdir=None):
  """The pairs of this Python's standard library, read once into data.cache_dir."""
  made_from = os.path.join(sysconfig.get_paths()['stdlib'], 'os.py')
  pairs = _cached(data_config, f'stdlib_summaries-py{sys.version_info[0]}.{sys.version_info[1]}',
                  made_from, stdlib_pairs)
  return text_pairs.pair_splits(data_config, workdir, 'stdlib_summaries', pairs,
                                test_split='held-out modules', source_format='python_function')


# --- TFDS recipes, streamed ------------------------------------------------------------

TFDS_SETS = {  # data.name -> (TFDS name, (source key, target key), test split, train size)
    'wmt14_translate': ('wmt14_translate/de-en', ('de', 'en'), 'test', 4_508_785),
    'cnn_dailymail': ('cnn_dailymail', ('article', 'highlights'), 'test', 287_113),
}
TOKENIZER_DOCUMENTS = 200_000  # training texts a SentencePiece vocabulary is learnt from


def tfds_pairs(data_config, workdir=None):
  """A TFDS pair set, tokenized as it streams (a shared vocabulary, trained on the first
  TOKENIZER_DOCUMENTS training pairs at the first start)."""
  from jaxlab.data import tfds_source, text_sources  # pylint: disable=g-import-not-at-top
  tfds_name, fields, test_name, _ = TFDS_SETS[data_config.name]
  records = {split: tfds_source.source(tfds_name, name, data_config.data_dir)
             for split, name in (('train', 'train'), ('test', test_name))}

  def texts(key):
    found = text_sources.records_text(sources.head(records['train'], TOKENIZER_DOCUMENTS), key)
    return list(found)

  (source_spec, source_tok), (target_spec, target_tok) = text_pairs.make_tokenizers(
      data_config, workdir, lambda: texts(fields[0]), lambda: texts(fields[1]))
  lengths = text_pairs.lengths(data_config)
  info = text_pairs.pair_info(data_config.name, *lengths, (source_spec, source_tok.vocab_size),
                              (target_spec, target_tok.vocab_size))
  pairs = {split: text_pairs.PairSource(found, fields, (source_tok, target_tok), lengths,
                                        f'{data_config.name} {split}')
           for split, found in records.items()}
  return Splits(info, pairs['train'], pairs['test'])


def tfds_shapes(data_config):
  """(DatasetInfo, training examples) without the data: for --dry_run."""
  from jaxlab.data import text_sets  # pylint: disable=g-import-not-at-top
  source_spec = text_sets.tokenizer_spec(data_config)
  target_spec = text_pairs.target_tokenizer_spec(data_config)
  vocab = lambda spec: spec.get('vocab_size', tokenizers.ByteTokenizer.vocab_size)
  info = text_pairs.pair_info(data_config.name, *text_pairs.lengths(data_config),
                              (source_spec, vocab(source_spec)), (target_spec, vocab(target_spec)))
  size = TFDS_SETS[data_config.name][3]
  return info, min(data_config.num_train or size, size)


LOADERS = {'text_pairs': text_pairs.load, 'freedict_de_en': freedict_de_en,
           'stdlib_summaries': stdlib_summaries, 'wmt14_translate': tfds_pairs,
           'cnn_dailymail': tfds_pairs}
SHAPES = {'wmt14_translate': tfds_shapes, 'cnn_dailymail': tfds_shapes}
