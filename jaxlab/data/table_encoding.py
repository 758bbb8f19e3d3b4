"""Table columns as model features, with statistics of the training split only.

`fit(train, label_column, feature_columns, labels)` reads a pyarrow Table and returns the
encoding, a JSON dict saved with the run (DatasetInfo.preprocessing['table']) so that
eval, predict and serve encode new rows exactly as training did; `features(encoding,
table)` applies it:

- numeric columns (ints, floats, decimals) are standardised, (x - mean) / std, with the
  training split's mean and standard deviation (std 1 where a column is constant). A
  missing value (empty, null or NaN) becomes the training mean (0 after standardising),
  and columns with missing values in the training split get a missing-indicator feature
  (1 where missing), as scikit-learn's SimpleImputer(add_indicator=True) does. Output:
  'numeric' float32 [rows, numeric columns + indicators].
- categorical columns (strings, booleans) become indices into one embedding table shared
  by all columns: each column owns a range starting at its `offset`, where offset + 0 is
  a missing value, offset + 1 a category the training split never held (met at test or
  predict time), and offset + 2 + k its k-th training category (sorted). Output:
  'categorical' int32 [rows, categorical columns]; `vocab_size` is the table's size.
- the label: classes (strings, ints, booleans: sorted, the class index is the position)
  or a number (floats: regression, with the training mean and std, which the regression
  task uses to scale its targets).
"""

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jaxlab.errors import UserError

MISSING, UNSEEN, FIRST_CATEGORY = 0, 1, 2  # indices within a categorical column's range


def kind(arrow_type):
  """'number', 'category', or None for types a table model cannot read."""
  if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or \
      pa.types.is_decimal(arrow_type) or pa.types.is_null(arrow_type):
    return 'number'
  if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or \
      pa.types.is_boolean(arrow_type) or pa.types.is_dictionary(arrow_type):
    return 'category'
  return None


def fit(train, label_column, feature_columns, all_labels):
  """The encoding (see the module docstring) fitted on the pyarrow Table `train`;
  `all_labels` (the label column of every split) names the classes."""
  numeric, categorical, offset = [], [], 0
  for name in feature_columns:
    column = train.column(name)
    if kind(column.type) == 'number':
      values = numbers(column)
      present = values[~np.isnan(values)]
      mean = float(present.mean()) if len(present) else 0.0
      std = float(present.std()) if len(present) else 0.0
      numeric.append(dict(column=name, mean=mean, std=std if std > 0 else 1.0,
                          indicator=bool(len(present) < len(values))))
    else:
      seen = sorted(set(v for v in strings(column) if v is not None))
      categorical.append(dict(column=name, values=seen, offset=offset))
      offset += FIRST_CATEGORY + len(seen)
  return dict(label=_fit_label(train.column(label_column), label_column, all_labels),
              numeric=numeric, categorical=categorical, vocab_size=max(offset, 1))


def _fit_label(train_labels, name, all_labels):
  if pa.types.is_floating(train_labels.type) or pa.types.is_decimal(train_labels.type):
    values = numbers(train_labels)
    return dict(column=name, kind='number', mean=float(np.nanmean(values)),
                std=float(np.nanstd(values)) or 1.0)
  if kind(all_labels.type) is None:
    raise UserError(f'The label column {name!r} is {all_labels.type}; a table label is a class '
                    '(strings, integers, booleans) or a number (floats).')
  if pa.types.is_integer(all_labels.type) or pa.types.is_boolean(all_labels.type):
    classes = [str(v) for v in sorted(set(all_labels.drop_null().to_pylist()))]
  else:
    classes = sorted(set(strings(all_labels)) - {None})
  return dict(column=name, kind='class', classes=classes)


def numeric_width(encoding):
  return len(encoding['numeric']) + sum(c['indicator'] for c in encoding['numeric'])


def features(encoding, table):
  """{'numeric': float32 [N, numeric_width], 'categorical': int32 [N, categorical columns]}
  of a pyarrow Table holding (at least) the encoding's feature columns."""
  missing = [c['column'] for c in encoding['numeric'] + encoding['categorical']
             if c['column'] not in table.column_names]
  if missing:
    raise ValueError(f'the table lacks the column(s) {missing} that the model reads (it has '
                     f'{table.column_names})')
  values, indicators = [], []
  for column in encoding['numeric']:
    x = numbers(table.column(column['column']), column['column'])
    absent = np.isnan(x)
    values.append(np.where(absent, 0.0, (x - column['mean']) / column['std']))
    if column['indicator']:
      indicators.append(absent.astype(np.float64))
  numeric = np.stack(values + indicators, axis=1) if values else np.zeros((len(table), 0))
  codes = [_codes(column, table.column(column['column'])) for column in encoding['categorical']]
  categorical = np.stack(codes, axis=1) if codes else np.zeros((len(table), 0))
  return dict(numeric=numeric.astype(np.float32), categorical=categorical.astype(np.int32))


def _codes(column, values):
  lookup = {value: FIRST_CATEGORY + k for k, value in enumerate(column['values'])}
  return np.asarray([column['offset'] + (MISSING if v is None else lookup.get(v, UNSEEN))
                     for v in strings(values)], np.int64)


def labels(encoding, table):
  """The label column as class indices (int32) or numbers (float32); rows whose label is
  missing hold -1 (classes) or NaN (numbers): `present(...)` finds them."""
  label = encoding['label']
  column = table.column(label['column'])
  if label['kind'] == 'number':
    return numbers(column, label['column']).astype(np.float32)
  lookup = {name: index for index, name in enumerate(label['classes'])}
  found = [None if v is None else lookup.get(v) for v in strings(column)]
  unknown = sorted({v for v, k in zip(strings(column), found) if v is not None and k is None})
  if unknown:
    raise UserError(f'The label column {label["column"]!r} holds {unknown[:5]}, which are not '
                    f'among the classes the model was trained on ({label["classes"][:10]}).')
  return np.asarray([-1 if k is None else k for k in found], np.int32)


def present(label_values):
  return ~np.isnan(label_values) if label_values.dtype.kind == 'f' else label_values >= 0


def numbers(column, name=None):
  """float64 values of a column, NaN where missing; ValueError where a value is no number."""
  if pa.types.is_null(column.type):
    return np.full(len(column), np.nan)
  try:
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
    raise ValueError(f'column {name!r} holds values that are not numbers ({error})') from None


def strings(column):
  """Python str values of a column (booleans as 'True'/'False'), None where missing."""
  if pa.types.is_dictionary(column.type):
    column = pc.cast(column, column.type.value_type)
  return [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
          for v in column.to_pylist()]
