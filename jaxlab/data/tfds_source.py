"""TensorFlow Datasets read without TensorFlow: one split as a random-access source.

`source(name, split, data_dir)` opens a prepared split through `tfds.data_source`,
the ArrayRecord random-access path: `len(s)`, `s[i]` -> a dict of numpy values (class
labels as int32 scalars). With `decode=False` the images stay encoded bytes, for a host
transform (`jaxlab.data.image_transforms`) to decode in the streaming workers.

`load(data_config)` opens an image-classification data set (MNIST, Fashion-MNIST,
CIFAR-10) as Splits whose whole-range reads go through `jaxlab.data.decoded_cache`:
decoded in parallel once, memory-mapped on later runs. A data set that is not prepared under `data_dir` is
reported at once: offline, TFDS would otherwise retry downloads for minutes.
"""

import os

import numpy as np

from jaxlab.data import sources
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
  when the data set is not prepared in ArrayRecord format under `data_dir`.
  """
  opened = TfdsSource(name, split, data_dir, decode=decode)
  len(opened)  # opens it here, so a data set that is not prepared fails now
  return opened


def _open(name, split, data_dir, decode):
  import tensorflow_datasets as tfds
  try:
    decoders = None if decode else _skip_image_decoding(tfds.builder(name, data_dir=data_dir))
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False,
                            decoders=decoders)
  except (AssertionError, RuntimeError, OSError, ValueError) as error:
    expected_dir = tfds.builder(name, data_dir=data_dir).data_dir
    raise UserError(_not_prepared_message(name, expected_dir, error)) from None


def _skip_image_decoding(builder):
  import tensorflow_datasets as tfds
  features = builder.info.features
  return {k: tfds.decode.SkipDecoding() for k, f in features.items()
          if isinstance(f, tfds.features.Image)}


def _is_class_label(features, key):
  import tensorflow_datasets as tfds
  return key in features and isinstance(features[key], tfds.features.ClassLabel)


class CachedRows:
  """A TFDS split whose whole-range reads (`rows`, what the device-resident placement
  uses) go through the decoded cache; single examples (streaming) read the records."""

  def __init__(self, source, cache_dir, features):
    self.source, self.cache_dir, self.features = source, cache_dir, features

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    return self.source[index]

  def rows(self, start, stop):
    from jaxlab.data import decoded_cache
    return decoded_cache.cached_rows(self.source, start, stop, cache_dir=self.cache_dir,
                                     features=self.features)

  def __repr__(self):
    return repr(self.source)


def load(data_config, workdir=None):
  """An image-classification data set (see the module doc) as Splits."""
  del workdir
  from jaxlab.data import Splits, decoded_cache, image_info  # pylint: disable=g-import-not-at-top
  name, data_dir = data_config.name, data_config.data_dir
  cache_dir = data_config.cache_dir or None  # '' turns the cache off
  features = ('image', 'label')
  train, test = source(name, 'train', data_dir), source(name, 'test', data_dir)
  image = train.info.features['image']
  label = train.info.features['label']
  info = image_info(name, image.shape, label.num_classes, pixel_max=PIXEL_MAX,
                    class_names=label.names)
  return Splits(info, CachedRows(train, cache_dir, features), CachedRows(test, cache_dir, features))


def _not_prepared_message(name, expected_dir, error):
  reason = str(error).splitlines()[0] if str(error) else type(error).__name__
  return (
      f'Data set {name!r} is not prepared in ArrayRecord format at {expected_dir} '
      f'({reason}), and jaxlab does not download at run time. '
      f'Prepare it in ArrayRecord format on a machine with internet access: '
      f'`pip install tensorflow tensorflow-datasets && tfds build {name} '
      f'--file_format=array_record --data_dir=DIR`, copy DIR here and pass '
      f'--config.data.data_dir=DIR; or train on embedded data with '
      f'--config.data.name=digits or --config.data.name=synthetic.')
