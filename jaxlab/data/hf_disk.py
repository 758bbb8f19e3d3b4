"""`data.name=hf_disk`: a Hugging Face `datasets` dataset saved with `save_to_disk`.

  jaxlab train --config=experiments/my_images.py --config.data.name=hf_disk \\
      --config.data.path=DIR --workdir=W

Read with `datasets.load_from_disk` (Arrow files, memory-mapped; nothing is downloaded).
Splits: a DatasetDict's 'train' and its 'test' (or 'validation'); a lone Dataset, or a
DatasetDict without a test split, gives data.validation_split of its rows to the test.
Columns, named by config:
  data.image_key  images (an `Image` column, or encoded bytes): image classification,
                  decoded as they stream, as image_folder's (`jaxlab.data.encoded_images`)
  data.text_key   text: classification when data.label_key names a column, else a
                  language model (`jaxlab.data.text_files.text_splits`)
  data.label_key  the class: a `ClassLabel` column keeps its names and order; other values
                  (strings, integers) become classes in sorted order
"""

import os

import numpy as np

from jaxlab.data import encoded_images, holdout, image_folder, labels, text_files
from jaxlab.errors import UserError

TEST_SPLITS = ('test', 'validation')


def _datasets():
  try:
    import datasets  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError('--config.data.name=hf_disk reads with Hugging Face `datasets`, which is '
                    'not installed: `pip install "jaxlab[hf]"` (or `pip install datasets`).') \
        from None
  return datasets


def open_splits(path, data_config):
  """{'train': (Dataset, row indices), 'test': (Dataset, row indices)}."""
  datasets = _datasets()
  try:
    loaded = datasets.load_from_disk(path)
  except (FileNotFoundError, ValueError, OSError) as error:
    raise UserError(f'Cannot read --config.data.path={path} as a `datasets` dataset saved with '
                    f'save_to_disk: {error}') from None
  if isinstance(loaded, datasets.DatasetDict):
    if 'train' not in loaded:
      raise UserError(f'The DatasetDict at {path} has splits {list(loaded)}, and no "train".')
    test = next((name for name in TEST_SPLITS if name in loaded), None)
    share = holdout.fraction(data_config, test is not None, path)
    if share is None:
      return {'train': ('train', np.arange(len(loaded['train']))),
              'test': (test, np.arange(len(loaded[test])))}, loaded
    loaded_train = 'train'
  else:
    share = holdout.fraction(data_config, False, path)
    loaded_train = None
  count = len(loaded[loaded_train] if loaded_train else loaded)
  kept, held = holdout.split(count, share, data_config.split_seed, path)
  return {'train': (loaded_train, kept), 'test': (loaded_train, held)}, loaded


def load(data_config, workdir=None):
  path = os.path.expanduser(data_config.path)
  parts, loaded = open_splits(path, data_config)
  table = lambda split: loaded[split] if split is not None else loaded
  columns = table(parts['train'][0]).column_names
  if data_config.image_key in columns:
    return _images(data_config, path, parts, table)
  if data_config.text_key in columns:
    return _texts(data_config, workdir, parts, table)
  raise UserError(f'The dataset at {path} has columns {columns}: none is --config.data.image_key='
                  f'{data_config.image_key!r} or --config.data.text_key={data_config.text_key!r}. '
                  'Name the column that holds the images or the text.')


def _class_labels(data_config, parts, table, path):
  """(class names, {split: int32 indices}) of the label column."""
  key = data_config.label_key
  first = table(parts['train'][0])
  if not key or key not in first.column_names:
    return None, None
  feature = first.features[key]
  values = {split: _pick(table(name)[key][:], rows) for split, (name, rows) in parts.items()}
  if hasattr(feature, 'names') and hasattr(feature, 'num_classes'):  # a ClassLabel
    return tuple(feature.names), {s: np.asarray(v, np.int32) for s, v in values.items()}
  names, indices = labels.class_indices([values['train'], values['test']], path)
  return names, dict(zip(('train', 'test'), indices))


def _images(data_config, path, parts, table):
  class_names, found = _class_labels(data_config, parts, table, path)
  if class_names is None:
    raise UserError(f'The images of {path} need a class column: --config.data.label_key='
                    f'{data_config.label_key!r} is not one of '
                    f'{table(parts["train"][0]).column_names}.')
  readers = {split: ArrowImageBytes(path, name, data_config.image_key, rows)
             for split, (name, rows) in parts.items()}
  return image_folder.image_splits(
      data_config, 'hf_disk', class_names,
      *((readers[split], found[split], split) for split in ('train', 'test')))


def _texts(data_config, workdir, parts, table):
  class_names, found = _class_labels(data_config, parts, table, data_config.path)
  splits = {}
  for split, (name, rows) in parts.items():
    column = table(name)[data_config.text_key][:]  # the whole column at once: a list
    splits[split] = ([str(v) for v in _pick(column, rows)],
                     None if found is None else found[split])
  return text_files.text_splits(data_config, workdir, 'hf_disk', splits, class_names)


def _pick(values, rows):
  return [values[int(i)] for i in rows]


class ArrowImageBytes:
  """Encoded bytes of one image column of a saved dataset, by index into `rows`.
  Picklable: each process opens the dataset (memory-mapped) on first use."""

  def __init__(self, path, split, column, rows):
    self.path, self.split, self.column = path, split, column
    self.rows = np.asarray(rows)
    self._column = None

  def __getstate__(self):
    return dict(self.__dict__, _column=None)

  def __len__(self):
    return len(self.rows)

  def _open(self):
    datasets = _datasets()
    loaded = datasets.load_from_disk(self.path)
    table = loaded[self.split] if self.split is not None else loaded
    table = table.select_columns([self.column])
    if isinstance(table.features[self.column], datasets.Image):
      table = table.cast_column(self.column, datasets.Image(decode=False))
    return table

  def __getitem__(self, index):
    if self._column is None:
      self._column = self._open()
    value = self._column[int(self.rows[index])][self.column]
    if isinstance(value, dict):  # an Image column: bytes, or the path of a file beside it
      if value.get('bytes') is not None:
        return value['bytes']
      with open(value['path'], 'rb') as f:
        return f.read()
    if isinstance(value, (bytes, bytearray)):
      return bytes(value)
    raise OSError(f'the {self.column!r} value is {type(value).__name__}, not encoded image bytes')

  def describe(self, index):
    return f'{self.path} ({self.split or "rows"} {int(self.rows[index])})'
