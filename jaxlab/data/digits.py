"""scikit-learn's bundled handwritten digits (8x8, 1797 images): no download needed."""

import numpy as np

from jaxlab.data.info import from_arrays, image_info

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed, so every run and every machine sees the same split


def load(data_config, workdir=None):
  del data_config, workdir  # the split is fixed on purpose
  from sklearn import datasets, model_selection
  digits = datasets.load_digits()
  images = digits.images.astype(np.uint8)[..., None]  # values 0..16
  labels = digits.target.astype(np.int32)
  train_x, test_x, train_y, test_y = model_selection.train_test_split(
      images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
  info = image_info('digits', (8, 8, 1), 10, pixel_max=16.0,
                    class_names=tuple(str(d) for d in range(10)))
  return from_arrays(info, dict(image=train_x, label=train_y), dict(image=test_x, label=test_y))
