"""Data sets by name.

Every loader returns a `Dataset` of uint8 images (N, H, W, C) and int32 labels,
held in host memory; `jaxlab.data.pipeline` places them on the device and
batches them there.
"""

import dataclasses

import numpy as np

from jaxlab.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  image_shape: tuple  # (H, W, C)
  num_classes: int
  pixel_max: float  # the raw value of a full-intensity pixel (16 for digits, 255 for photos)
  class_names: tuple = ()

  def label_name(self, label):
    return self.class_names[label] if self.class_names else str(label)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """The test set whole; of the training set, rows [train_offset, train_offset + len)
  of its `num_train` rows (all of them, unless only this process's rows were read)."""
  info: DatasetInfo
  train_images: np.ndarray  # uint8 (n, H, W, C); float32 in [0, 1] for npz data
  train_labels: np.ndarray  # int32 (n,)
  test_images: np.ndarray
  test_labels: np.ndarray
  num_train: int = None  # rows in the whole training set (default: len(train_labels))
  train_offset: int = 0

  def __post_init__(self):
    if self.num_train is None:
      object.__setattr__(self, 'num_train', len(self.train_labels))


# Shapes and sizes of the named data sets, known without loading them, so that
# `synthetic` data can stand in for any of them.
KNOWN_SHAPES = {
    'digits': dict(image_shape=(8, 8, 1), num_classes=10, num_train=1437, num_test=360),
    'mnist': dict(image_shape=(28, 28, 1), num_classes=10, num_train=60000, num_test=10000),
    'fashion_mnist': dict(image_shape=(28, 28, 1), num_classes=10, num_train=60000,
                          num_test=10000),
    'cifar10': dict(image_shape=(32, 32, 3), num_classes=10, num_train=50000, num_test=10000),
}


def _loaders():
  # Imported lazily: the TFDS import costs seconds and most runs never need it.
  from jaxlab.data import arrays, digits, synthetic, tfds_source
  return {
      'npz': arrays.load,
      'digits': digits.load,
      'mnist': tfds_source.load,
      'fashion_mnist': tfds_source.load,
      'cifar10': tfds_source.load,
      'synthetic': synthetic.load,
  }


def load(data_config, local_rows=None):
  """Loads the data set that `data_config.name` names, limited to num_train/num_test.

  `local_rows(num_train) -> (start, stop)` asks for only those training rows: TFDS data
  sets then read only them (each process of a multi-host run reads its own share);
  in-memory ones are sliced.
  """
  loaders = _loaders()
  if data_config.name not in loaders:
    raise UserError(
        f'Unknown data set {data_config.name!r} in --config.data.name. '
        f'Known data sets: {", ".join(sorted(loaders))}.')
  loader = loaders[data_config.name]
  if getattr(loader, 'reads_rows', False):
    return loader(data_config, local_rows)
  dataset = _limit(loader(data_config), data_config.get('num_train'), data_config.get('num_test'))
  return select_rows(dataset, local_rows)


def select_rows(dataset, local_rows):
  """Keeps the training rows that `local_rows` asks for."""
  if local_rows is None:
    return dataset
  start, stop = local_rows(dataset.num_train)
  return dataclasses.replace(dataset, train_images=dataset.train_images[start:stop],
                             train_labels=dataset.train_labels[start:stop],
                             num_train=dataset.num_train, train_offset=start)


def _limit(dataset, num_train, num_test):
  if not num_train and not num_test:
    return dataset
  return dataclasses.replace(
      dataset,
      train_images=dataset.train_images[:num_train or None],
      train_labels=dataset.train_labels[:num_train or None],
      test_images=dataset.test_images[:num_test or None],
      test_labels=dataset.test_labels[:num_test or None])
