"""Random images whose labels a model can learn: for tests and benchmarks.

The labels come from a fixed random linear teacher on the pixels, so accuracy
well above chance shows that training works, without any download.
"""

import numpy as np

from jaxlab.data import KNOWN_SHAPES, Dataset, DatasetInfo
from jaxlab.errors import UserError


def load(data_config):
  like = data_config.get('synthetic_like') or 'mnist'
  if like not in KNOWN_SHAPES:
    raise UserError(
        f'--config.data.synthetic_like={like!r} is not a known data set; '
        f'use one of {", ".join(sorted(KNOWN_SHAPES))}.')
  shape = KNOWN_SHAPES[like]
  rng = np.random.default_rng(data_config.get('synthetic_seed', 0))
  num_train = data_config.get('num_train') or shape['num_train']
  num_test = data_config.get('num_test') or shape['num_test']
  images = rng.integers(0, 256, size=(num_train + num_test, *shape['image_shape']),
                        dtype=np.uint8)
  labels = teacher_labels(images, shape['num_classes'], rng)
  info = DatasetInfo('synthetic', tuple(shape['image_shape']), shape['num_classes'],
                     pixel_max=255.0)
  return Dataset(info, images[:num_train], labels[:num_train], images[num_train:],
                 labels[num_train:])


def teacher_labels(images, num_classes, rng):
  flat = images.reshape(len(images), -1).astype(np.float32) / 255.0 - 0.5
  teacher = rng.standard_normal((flat.shape[1], num_classes)).astype(np.float32)
  return np.argmax(flat @ teacher, axis=1).astype(np.int32)
