"""TensorFlow Datasets read without TensorFlow: one split as a random-access source.

`source(name, split, data_dir)` opens a prepared split as TFDS's ArrayRecord data source
of a builder rebuilt from the prepared folder's files (`tfds_info`), not from the data
set's builder code, which for some sets needs TensorFlow merely to be constructed:
`len(s)`, `s[i]` -> a dict of numpy values (class labels as int32 scalars). With
`decode=False` the images stay encoded bytes, for a host transform
(`jaxlab.data.image_transforms`) to decode in the streaming workers. A module or codec
that decoding needs and this machine lacks is an `environment.MissingDependency`, never
a bad record.

A data set that is not prepared under `data_dir` is reported at once: offline, TFDS
would otherwise retry downloads for minutes. Image-classification sets are loaded from
these sources by `jaxlab.data.tfds_images`.
"""

import contextlib
import io
import os

import numpy as np

from jaxlab.data import environment, sources, tfds_info
from jaxlab.errors import UserError

PIXEL_MAX = 255.0


class TfdsSource:
  """One split of a prepared TFDS data set (see `source`).

  Picklable: it pickles as (name, split, data_dir, decode) and each process opens the
  ArrayRecord files itself on first use, so Grain's and the decode pool's workers
  read their own file handles.
  """

  def __init__(self, name, split, data_dir=None, *, decode=True):
    self.name, self.split, self.decode = name, split, decode
    self.data_dir = os.path.expanduser(data_dir) if data_dir else None  # flags keep ~
    self._reader = None

  def __getstate__(self):
    return dict(self.__dict__, _reader=None)

  @property
  def reader(self):
    """The `tfds.data_source` of this split, opened on first use in this process."""
    if self._reader is None:
      self._reader = _open(self.name, self.split, self.data_dir, self.decode)
    return self._reader

  @property
  def info(self):
    """The builder's `tfds.core.DatasetInfo` (features, version, splits)."""
    return self.reader.dataset_info

  def __len__(self):
    return len(self.reader)

  def __getitem__(self, index):
    index = int(index)
    try:
      return self._as_numpy(self.reader[index])
    except IndexError:
      raise
    except Exception as error:  # pylint: disable=broad-except  # any decoder's failure
      missing = environment.missing_dependency(error, f'record {index} of {self}')
      if missing:
        raise missing from error
      raise sources.BadRecord(self, index, f'{type(error).__name__}: {error}') from error

  def __getitems__(self, indices):
    """Examples at `indices`, read in one batched ArrayRecord call."""
    indices = [int(i) for i in indices]
    try:
      records = self.reader.__getitems__(indices)
    except (TypeError, AttributeError):  # sources without a batched read
      return [self[i] for i in indices]
    except Exception:  # pylint: disable=broad-except  # find the bad record, one by one
      return [self[i] for i in indices]
    return [self._as_numpy(r) for r in records]

  def files(self):
    """[(file name, size in bytes, first record, records)] of the split's shards, or
    None where they are not files on this machine (a mocked data set)."""
    from tensorflow_datasets.core.data_sources import base
    try:
      instructions = base.file_instructions(self.info, self.reader.split)
      return [(os.path.basename(i.filename), os.path.getsize(i.filename), i.skip, i.take)
              for i in instructions]
    except (OSError, TypeError, AttributeError, KeyError):
      return None

  def _as_numpy(self, example):
    return {k: self._value(k, v) for k, v in example.items()}

  def _value(self, key, value):
    if isinstance(value, dict):
      return {k: self._value(k, v) for k, v in value.items()}
    if isinstance(value, (bytes, str)):
      return value
    if _is_class_label(self.info.features, key):
      return np.int32(value)
    return np.asarray(value)

  def __repr__(self):
    return f'tfds:{self.name}/{self.split}'


def source(name, split, data_dir=None, *, decode=True):
  """The random-access source of one split of a prepared TFDS data set.

  `source[i]` is a dict of every feature as numpy (class labels int32 scalars); an
  image is uint8 (H, W, C), or its encoded bytes if `decode=False`. A record that
  cannot be decoded raises `sources.BadRecord`. Fails at once, with instructions,
  when the data set is not prepared in ArrayRecord format under `data_dir`, or when
  this machine lacks what decoding its records needs (`environment.MissingDependency`).
  """
  opened = TfdsSource(name, split, data_dir, decode=decode)
  if len(opened):  # opens it here, so a data set that is not prepared fails now...
    try:
      opened[0]  # ...and one this machine cannot decode, before any training
    except sources.BadRecord:
      pass  # one bad record: the stream skips it
  return opened


def _open(name, split, data_dir, decode):
  builder = _builder(name, data_dir)
  decoders = None if decode else _skip_image_decoding(builder)
  try:
    return builder.as_data_source(split, decoders=decoders)
  # KeyError: a data set whose metadata ships with TFDS (lm1b) but has no prepared splits.
  except (AssertionError, RuntimeError, OSError, ValueError, NotImplementedError,
          KeyError) as error:
    raise UserError(_not_prepared_message(name, builder.data_dir, _first_line(error))) from None


def _builder(name, data_dir):
  """The data set's builder, read from its prepared folder (data_dir/name/[config/]version:
  dataset_info.json, features.json, the ArrayRecord shards) without its generation code,
  which for some sets (speech_commands) imports TensorFlow merely to be constructed.
  Where no prepared folder is found, the registered builder: its data source then says
  it is not prepared (or, under tfds.testing.mock_data, serves mock examples)."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import read_only_builder, registered
  from tensorflow_datasets.core.utils import error_utils
  # TFDS's own search (default config, newest version), as tfds.builder's fallback uses it.
  try:
    with error_utils.reraise_with_context(registered.DatasetNotFoundError):  # it notes misses
      builder_dir = read_only_builder._find_builder_dir(name, data_dir=data_dir)  # pylint: disable=protected-access
  except ValueError as error:  # prepared in several of TFDS's data dirs
    raise UserError(f'{_first_line(error)} Pass the one to read as --config.data.data_dir.') from None
  if builder_dir is not None:
    return read_only_builder.builder_from_metadata(builder_dir, tfds_info.info_proto(builder_dir))
  try:
    with contextlib.redirect_stdout(io.StringIO()):  # TFDS's banner when TensorFlow is missing
      return tfds.builder(name, data_dir=data_dir)
  except Exception:  # pylint: disable=broad-except  # its code may need anything (TensorFlow)
    expected_dir = os.path.join(os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR), name)
    raise UserError(_not_prepared_message(name, expected_dir, 'no prepared files there')) from None


def _skip_image_decoding(builder):
  import tensorflow_datasets as tfds
  features = builder.info.features
  return {k: tfds.decode.SkipDecoding() for k, f in features.items()
          if isinstance(f, tfds.features.Image)}


def _is_class_label(features, key):
  import tensorflow_datasets as tfds
  return key in features and isinstance(features[key], tfds.features.ClassLabel)


def _first_line(error):
  return str(error).splitlines()[0] if str(error) else type(error).__name__


def _not_prepared_message(name, expected_dir, reason):
  return (
      f'Data set {name!r} is not prepared in ArrayRecord format at {expected_dir} '
      f'({reason}), and jaxlab does not download at run time. '
      f'Prepare it in ArrayRecord format on a machine with internet access: '
      f'`pip install tensorflow tensorflow-datasets && tfds build {name} '
      f'--file_format=array_record --data_dir=DIR`, copy DIR here and pass '
      f'--config.data.data_dir=DIR; or train on embedded data with '
      f'--config.data.name=digits or --config.data.name=synthetic.')
