"""Table rows as a batch for the table tasks: the rows of CSV/Parquet files for `predict`,
JSON objects for `serve`, each encoded as the training rows were (the encoding saved in
the workdir, DatasetInfo.preprocessing['table']).

A row needs the columns the model reads; any others (the label, ids) are ignored. An
unknown category, or a missing value, is encoded as in training (`table_encoding`).
"""

import numpy as np

INPUTS = ('numeric', 'categorical')


def is_table(info):
  return all(name in info.features for name in INPUTS)


def spec(info):
  """{input: (shape, dtype)} of the table inputs."""
  held = info.spec()
  return {name: held[name] for name in INPUTS}


def signature(info, num_outputs):
  """What tabular_mlp's factory takes: ((numeric width,), (categorical columns,))."""
  held = info.spec()
  return tuple(tuple(held[name][0]) for name in INPUTS), num_outputs


def model_inputs(batch, compute_dtype):
  return (batch['numeric'].astype(compute_dtype), batch['categorical']), {}


def read_files(paths, info):
  """(batch, one name per row 'FILE row I', {path: error}) of table files."""
  from jaxlab.data import table
  from jaxlab.errors import UserError
  parts, names, errors = [], [], {}
  for path in paths:
    try:
      rows = table.read(path)
      parts.append(encode(rows, info))
      names += [f'{path} row {index + 1}' for index in range(rows.num_rows)]
    except (UserError, ValueError, OSError) as error:
      errors[path] = str(error)
  batch = {k: np.concatenate([p[k] for p in parts]) for k in INPUTS} if parts else {}
  return batch, names, errors


def json_rows(rows, info):
  """A batch from JSON objects {column: value}; ValueError naming what is wrong."""
  import pyarrow as pa
  if not all(isinstance(row, dict) for row in rows):
    raise ValueError('each instance of a table model is an object {"column": value, ...}')
  try:
    table = pa.Table.from_pylist(rows)
  except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
    raise ValueError(f'the instances do not form a table ({error})') from None
  return encode(table, info)


def encode(table, info):
  from jaxlab.data import table_encoding
  return table_encoding.features(info.preprocessing['table'], table)
