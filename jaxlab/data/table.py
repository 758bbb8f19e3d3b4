"""`data.name=table`: a CSV or Parquet table, one example a row (read with pyarrow).

  jaxlab train --config=experiments/my_table.py --config.data.path=FILE.csv \\
      --config.data.label_column=price --workdir=W

data.path is one file (.csv, .csv.gz, .parquet; data.validation_split of its rows held
out for eval) or a folder holding train.<ext> and test.<ext>. data.label_column is what
to predict: classes (strings, integers, booleans: `task.name=classification`) or a number
(floats: `task.name=regression`); data.feature_columns the inputs (default: every other
column). `jaxlab.data.table_encoding` turns columns into features with the statistics of
the training rows only; the encoding is saved with the run (dataset_info.json) and a
later load for the same workdir (eval, resume) reuses it rather than refitting. Rows
whose label is missing are left out, with a warning.
"""

import os

from jaxlab.data import holdout, table_encoding
from jaxlab.data.info import DatasetInfo, from_arrays
from jaxlab.errors import UserError
from jaxlab.runtime import messages

SUFFIXES = ('.csv', '.csv.gz', '.parquet', '.pq')


def read(path):
  """The pyarrow Table of a .csv(.gz) or .parquet file."""
  import pyarrow.csv
  import pyarrow.parquet
  if not str(path).lower().endswith(SUFFIXES):
    raise UserError(f'{path} is not a table file: jaxlab reads {", ".join(SUFFIXES)}.')
  try:
    if str(path).lower().endswith(('.parquet', '.pq')):
      return pyarrow.parquet.read_table(path)
    # An empty cell is a missing value for text columns too (pyarrow reads it as '').
    return pyarrow.csv.read_csv(path, convert_options=pyarrow.csv.ConvertOptions(
        strings_can_be_null=True))
  except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
    raise UserError(f'Cannot read the table {path}: {error}') from None


def load(data_config, workdir=None):
  train, test = _split_tables(os.path.expanduser(data_config.path), data_config)
  label_column = _label_column(data_config, train)
  feature_columns = _feature_columns(data_config, train, label_column)
  encoding = _saved_encoding(workdir, label_column, feature_columns)
  if encoding is None:
    import pyarrow as pa
    all_labels = pa.chunked_array(train.column(label_column).chunks +
                                  test.column(label_column).cast(
                                      train.column(label_column).type).chunks)
    encoding = table_encoding.fit(train, label_column, feature_columns, all_labels)
  arrays = [_arrays(encoding, table, f'{data_config.path} ({split})')
            for table, split in ((train, 'train'), (test, 'test'))]
  return from_arrays(info(encoding), *arrays, name='table')


def info(encoding):
  label = encoding['label']
  classes = tuple(label.get('classes', ()))
  features = {'numeric': ((table_encoding.numeric_width(encoding),), 'float32'),
              'categorical': ((len(encoding['categorical']),), 'int32'),
              'label': ((), 'int32' if classes else 'float32')}
  return DatasetInfo('table', features, num_classes=len(classes), pixel_max=1.0,
                     class_names=classes, vocab_size=encoding['vocab_size'],
                     preprocessing={'table': encoding})


def _split_tables(path, data_config):
  if os.path.isdir(path):
    files = {split: _split_file(path, split) for split in ('train', 'test')}
    if files['train'] is None:
      raise UserError(f'The folder {path} holds no train{{{",".join(SUFFIXES)}}}: a table '
                      'folder holds train.csv and test.csv (or .parquet); or pass one file as '
                      '--config.data.path and hold out --config.data.validation_split of it.')
    share = holdout.fraction(data_config, files['test'] is not None, path)
    if share is None:
      return read(files['train']), read(files['test'])
    whole = read(files['train'])
  else:
    if not os.path.exists(path):
      raise UserError(f'--config.data.path={path} does not exist: give a .csv or .parquet '
                      'file, or a folder holding train.csv and test.csv.')
    whole = read(path)
    share = holdout.fraction(data_config, False, path)
  kept, held = holdout.split(whole.num_rows, share, data_config.split_seed, path)
  return whole.take(kept), whole.take(held)


def _split_file(folder, split):
  return next((os.path.join(folder, split + s) for s in SUFFIXES
               if os.path.exists(os.path.join(folder, split + s))), None)


def _label_column(data_config, train):
  name = data_config.label_column
  if not name or name not in train.column_names:
    given = f'--config.data.label_column={name} is not a column' if name else \
        '--config.data.label_column is not set'
    raise UserError(f'{given} of {data_config.path}: name the column to predict, one of '
                    f'{train.column_names}.')
  return name


def _feature_columns(data_config, train, label_column):
  names = list(data_config.feature_columns) or [n for n in train.column_names
                                                if n != label_column]
  unknown = [n for n in names if n not in train.column_names]
  if unknown or label_column in names:
    raise UserError(f'--config.data.feature_columns={tuple(names)}: '
                    + (f'{unknown} are not columns of {data_config.path} ({train.column_names})'
                       if unknown else f'the label {label_column!r} cannot be an input') + '.')
  unreadable = {n: str(train.column(n).type) for n in names
                if table_encoding.kind(train.column(n).type) is None}
  if unreadable:
    raise UserError(f'Columns {unreadable} of {data_config.path} are neither numbers nor '
                    'categories (strings, booleans); leave them out with '
                    '--config.data.feature_columns.')
  return names


def _saved_encoding(workdir, label_column, feature_columns):
  """The encoding a run in `workdir` was trained with, or None before its first start."""
  from jaxlab import storage
  from jaxlab.data import info as data_info
  from jaxlab.workdir import files as workdir_files
  if not workdir or not storage.exists(workdir_files.path(workdir, workdir_files.DATASET_INFO)):
    return None
  saved = (data_info.load_info(workdir).preprocessing or {}).get('table')
  if saved is None:
    return None
  columns = [c['column'] for c in saved['numeric'] + saved['categorical']]
  if saved['label']['column'] != label_column or sorted(columns) != sorted(feature_columns):
    raise UserError(f'The run in {workdir} was trained to predict {saved["label"]["column"]!r} '
                    f'from {columns}, not {label_column!r} from {feature_columns}; use another '
                    '--workdir, or the columns it was trained with.')
  return saved


def _arrays(encoding, table, where):
  try:
    arrays = dict(table_encoding.features(encoding, table),
                  label=table_encoding.labels(encoding, table))
  except ValueError as error:
    raise UserError(f'{where}: {error}.') from None
  kept = table_encoding.present(arrays['label'])
  if not kept.all():
    messages.warn(f'jaxlab: warning: left out {int((~kept).sum())} row(s) of {where} whose label is '
          'missing.')
    arrays = {k: v[kept] for k, v in arrays.items()}
  return arrays
