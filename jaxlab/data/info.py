"""What a data set holds (`DatasetInfo`) and what a loader returns (`Splits`): the
types every loader and every reader of a workdir share, kept apart from the registry
of loaders (jaxlab.data.registry) so that a loader never imports the registry back."""

import dataclasses
import json
from typing import Any

import numpy as np

from jaxlab import storage
from jaxlab.data import sources
from jaxlab.workdir import files as workdir_files


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the examples of a data set hold; saved in the workdir for eval and predict."""
  name: str
  features: dict  # {name: (shape tuple, dtype name)} of one example
  num_classes: int = 0  # classification classes (0: not a classification set)
  pixel_max: float = 255.0  # the raw value of a full-intensity pixel (16 for digits)
  class_names: tuple = ()
  vocab_size: int = 0  # token sets: the tokenizer's vocabulary
  tokenizer: Any = None  # token sets: the tokenizer's spec (jaxlab.data.tokenizers)
  sample_rate: int = 0  # audio sets: samples per second of the 'audio' feature
  test_split: str = ''  # what the test split holds out, named on the eval line ('held-out speakers')
  # How raw inputs become features, for predict and serve to repeat (JSON): 'image' (size,
  # resize mode, channels: jaxlab.data.image_fit), 'table' (columns, statistics and
  # vocabularies of the training split: jaxlab.data.table_encoding).
  preprocessing: Any = None

  def spec(self):
    """{name: (shape, numpy dtype)} of one example."""
    return {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in self.features.items()}

  @property
  def image_shape(self):
    return tuple(self.features['image'][0])

  def label_name(self, label):
    return self.class_names[label] if self.class_names else str(label)

  def to_json(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, record):
    record = dict(record)
    if 'image_shape' in record:  # written before features were named
      record['features'] = {'image': (record.pop('image_shape'), 'uint8'), 'label': ((), 'int32')}
    record['features'] = {k: (tuple(shape), dtype) for k, (shape, dtype)
                          in record['features'].items()}
    record['class_names'] = tuple(record.get('class_names', ()))
    return cls(**record)


def image_info(name, image_shape, num_classes, pixel_max=255.0, class_names=(),
               dtype='uint8'):
  """The info of an image classification set: features 'image' and 'label'."""
  return DatasetInfo(name, {'image': (tuple(image_shape), dtype), 'label': ((), 'int32')},
                     num_classes, pixel_max, tuple(class_names))


@dataclasses.dataclass(frozen=True)
class Splits:
  """What a loader returns: the data set's info, and a training and a test source
  (random-access sequences of example dicts, `jaxlab.data.sources`)."""
  info: DatasetInfo
  train: Any  # a random-access source (jaxlab.data.sources)
  test: Any
  # Host transforms `(example, key) -> example` applied while streaming, in Grain's
  # worker processes (decoding, cropping, ...); None: the examples are ready as read.
  train_transform: Any = None
  test_transform: Any = None
  # Length buckets of the training examples (jaxlab.data.buckets.Buckets); None: every
  # batch has the info's shapes.
  buckets: Any = None


def from_arrays(info, train, test, name=None):
  """Splits held in memory: `train` and `test` are dicts of arrays."""
  name = name or info.name
  return Splits(info, sources.ArraySource(train, f'{name} train'),
                sources.ArraySource(test, f'{name} test'))


# Shapes and sizes of the named image sets, known without loading them, so that
# `synthetic` data can stand in for any of them.
KNOWN_SHAPES = {
    'digits': dict(image_shape=(8, 8, 1), num_classes=10, num_train=1437, num_test=360),
    'mnist': dict(image_shape=(28, 28, 1), num_classes=10, num_train=60000, num_test=10000),
    'fashion_mnist': dict(image_shape=(28, 28, 1), num_classes=10, num_train=60000,
                          num_test=10000),
    'cifar10': dict(image_shape=(32, 32, 3), num_classes=10, num_train=50000, num_test=10000),
    # At data.image_size's default; synthetic stand-ins draw only synthetic_sizes examples
    # (the real counts would not fit in memory).
    'imagenet2012': dict(image_shape=(224, 224, 3), num_classes=1000, num_train=1281167,
                         num_test=50000, synthetic_sizes=(1024, 128)),
}

def example_bytes(info):
  return sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in info.spec().values())


def save_info(info, workdir):
  storage.write_text(workdir_files.path(workdir, workdir_files.DATASET_INFO),
                     json.dumps(info.to_json(), indent=2) + '\n')


def load_info(workdir):
  return DatasetInfo.from_json(json.loads(storage.read_text(
      workdir_files.path(workdir, workdir_files.DATASET_INFO))))
