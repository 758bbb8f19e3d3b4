"""scikit-learn's bundled handwritten digits (8x8, 1797 images): no download needed.

The fixed train/test split is computed with scikit-learn once and kept as a small .npz
under data.cache_dir (keyed by scikit-learn's version): importing scikit-learn (and
SciPy under it) costs most of a second, in every run of the default experiment.
"""

import os
import uuid
import zipfile

import numpy as np

from jaxlab.data.info import from_arrays, image_info

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed, so every run and every machine sees the same split
KEYS = ('train_x', 'test_x', 'train_y', 'test_y')  # train_test_split's order


def load(data_config, workdir=None):
  del workdir  # the split is fixed on purpose
  arrays = _cached_split(data_config.cache_dir if data_config is not None else '')
  info = image_info('digits', (8, 8, 1), 10, pixel_max=16.0,
                    class_names=tuple(str(d) for d in range(10)))
  return from_arrays(info, dict(image=arrays['train_x'], label=arrays['train_y']),
                     dict(image=arrays['test_x'], label=arrays['test_y']))


def split():
  """{train_x, test_x, train_y, test_y}: the stratified split, from scikit-learn."""
  from sklearn import datasets, model_selection  # pylint: disable=import-outside-toplevel
  digits = datasets.load_digits()
  images = digits.images.astype(np.uint8)[..., None]  # values 0..16
  labels = digits.target.astype(np.int32)
  return dict(zip(KEYS, model_selection.train_test_split(
      images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)))


def _cached_split(cache_dir):
  if not cache_dir:
    return split()
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  version = metadata.version('scikit-learn')
  path = os.path.join(os.path.expanduser(cache_dir), 'digits',
                      f'split-sklearn{version}-test{TEST_FRACTION}-seed{SPLIT_SEED}.npz')
  try:
    with np.load(path) as saved:
      return {key: saved[key] for key in KEYS}
  except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent or damaged: make it again
    pass
  arrays = split()
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f'{path}.tmp-{uuid.uuid4().hex}.npz'
    np.savez(temporary, **arrays)
    os.replace(temporary, path)  # whole or not at all, also with runs writing at once
  except OSError:
    pass  # a read-only cache folder: the split is made again next time
  return arrays
