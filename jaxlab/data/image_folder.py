"""`data.name=image_folder`: your images, one folder per class (`jaxlab.data.class_folders`).

  jaxlab train --config=experiments/my_images.py --config.data.path=DIR --workdir=W

The images stay files: each is read and decoded (`jaxlab.data.image_fit`) when a batch
needs it, in Grain's worker processes when streamed, so a folder larger than memory
trains; a file that does not decode is a bad record (skipped and counted). Every image
becomes data.image_size x data.image_size with data.color_mode's channels, by
data.resize_mode. The class names (the folder names, in sorted order) are saved with
the run (dataset_info.json), and `jaxlab predict` prints them.
"""

import numpy as np

from jaxlab.data import class_folders, encoded_images, holdout, image_fit
from jaxlab.data.info import DatasetInfo, Splits
from jaxlab.errors import UserError

EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp')


def load(data_config, workdir=None):
  del workdir
  found = class_folders.index(data_config.path, EXTENSIONS, 'images')
  (train_paths, train_labels), (test_paths, test_labels) = _split(found, data_config)
  return image_splits(data_config, 'image_folder', found.class_names,
                      (encoded_images.FileBytes(train_paths), train_labels, 'train'),
                      (encoded_images.FileBytes(test_paths), test_labels, 'test'))


def _split(found, data_config):
  """((paths, labels) for training, the same for the test)."""
  share = holdout.fraction(data_config, found.test is not None, data_config.path)
  if share is None:
    return found.train, found.test
  paths, labels = np.asarray(found.train[0]), np.asarray(found.train[1])
  kept, held = holdout.split(len(paths), share, data_config.split_seed, data_config.path)
  return (list(paths[kept]), list(labels[kept])), (list(paths[held]), list(labels[held]))


def image_splits(data_config, name, class_names, train, test):
  """Splits of encoded images with class labels: `train` and `test` are
  (reader, labels, split name), a reader giving each record's bytes by index."""
  size, mode = int(data_config.image_size), data_config.resize_mode
  channels = image_fit.CHANNELS[data_config.color_mode]
  random_crop = mode == 'random_crop'
  if random_crop and data_config.placement != 'stream':
    raise UserError(f'--config.data.resize_mode=random_crop crops each training image anew as '
                    f'it streams, but --config.data.placement={data_config.placement!r}; set '
                    '--config.data.placement=stream, or use resize_mode=stretch or center_crop '
                    '(with --config.data.augment for on-device crops and flips).')
  sources = [encoded_images.EncodedImageSource(
      reader, labels, size=size, channels=channels, resize_mode=mode, name=f'{name} {split}',
      encoded=random_crop and split == 'train') for reader, labels, split in (train, test)]
  info = DatasetInfo(name, {'image': ((size, size, channels), 'uint8'), 'label': ((), 'int32')},
                     num_classes=len(class_names), class_names=tuple(class_names),
                     preprocessing={'image': image_fit.spec(size, mode, data_config.color_mode)})
  transform = image_fit.RandomCropTransform(size, channels) if random_crop else None
  return Splits(info, sources[0], sources[1], train_transform=transform)
