"""TensorFlow Datasets (MNIST, Fashion-MNIST, CIFAR-10) read without TensorFlow.

Uses `tfds.data_source`, the ArrayRecord random-access path. A data set that is
not prepared under `data_dir` is reported at once: offline, TFDS would otherwise
retry downloads for minutes before failing.
"""

import os

import numpy as np

from jaxlab.data import from_arrays, image_info
from jaxlab.errors import UserError

PIXEL_MAX = 255.0


def load(data_config, workdir=None):
  del workdir
  local_rows = None
  import tensorflow_datasets as tfds
  name, data_dir = data_config.name, data_config.get('data_dir')
  data_dir = os.path.expanduser(data_dir) if data_dir else data_dir  # flags do not expand ~
  builder = tfds.builder(name, data_dir=data_dir)
  try:
    train = tfds.data_source(name, split='train', data_dir=data_dir, download=False)
    test = tfds.data_source(name, split='test', data_dir=data_dir, download=False)
  except (AssertionError, RuntimeError, OSError) as error:
    raise UserError(_not_prepared_message(name, builder.data_dir, error)) from None
  num_train = min(len(train), data_config.get('num_train') or len(train))
  start, stop = local_rows(num_train) if local_rows else (0, num_train)
  train_x, train_y = _read_all(train, range(start, min(stop, num_train)))
  test_x, test_y = _read_all(test, range(min(len(test), data_config.get('num_test') or len(test))))
  label_feature = builder.info.features['label']
  info = image_info(name, test_x.shape[1:], label_feature.num_classes, pixel_max=PIXEL_MAX,
                    class_names=label_feature.names)
  return from_arrays(info, dict(image=train_x, label=train_y), dict(image=test_x, label=test_y))


def _read_all(source, keys):
  records = _get_records(source, keys)
  images = np.stack([r['image'] for r in records]).astype(np.uint8)
  labels = np.asarray([r['label'] for r in records], dtype=np.int32)
  return images, labels


def _get_records(source, keys):
  keys = list(keys)
  try:
    return source.__getitems__(keys)  # one batched read on real ArrayRecord files
  except TypeError:  # mock sources lack the batched read
    return [source[k] for k in keys]


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
