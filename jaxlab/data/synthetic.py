"""Random images whose labels a model can learn: for tests and benchmarks.

Each class has a fixed random blocky prototype image; an example is its class's
prototype blended with fresh pixel noise. Learning is quick (accuracy far above chance
in a few hundred steps) yet not trivial, and needs no download.
"""

import numpy as np

from jaxlab.data.info import KNOWN_SHAPES, from_arrays, image_info
from jaxlab.errors import UserError


def load(data_config, workdir=None):
  del workdir
  like = data_config.synthetic_like
  if like not in KNOWN_SHAPES:
    raise UserError(
        f'--config.data.synthetic_like={like!r} is not a known data set; '
        f'use one of {", ".join(sorted(KNOWN_SHAPES))}.')
  train, test = arrays(like, data_config.num_train, data_config.num_test,
                       data_config.synthetic_seed)
  shape = KNOWN_SHAPES[like]
  return from_arrays(image_info('synthetic', shape['image_shape'], shape['num_classes']),
                     train, test)


def arrays(like, num_train=None, num_test=None, seed=0):
  """({'image', 'label'} train, the same for test): images shaped like data set `like`,
  in its sizes unless num_train/num_test are given."""
  shape = KNOWN_SHAPES[like]
  rng = np.random.default_rng(seed)
  default_train, default_test = shape.get('synthetic_sizes',
                                          (shape['num_train'], shape['num_test']))
  num_train = num_train or default_train
  num_test = num_test or default_test
  labels = rng.integers(0, shape['num_classes'], size=num_train + num_test).astype(np.int32)
  images = blend(labels, tuple(shape['image_shape']), shape['num_classes'], rng)
  return (dict(image=images[:num_train], label=labels[:num_train]),
          dict(image=images[num_train:], label=labels[num_train:]))


SIGNAL = 0.5  # share of the prototype in each image; the rest is noise
_CHUNK = 8192  # images drawn at a time: the float noise of a chunk stays in the cache


def blend(labels, image_shape, num_classes, rng):
  """SIGNAL * prototype + (1 - SIGNAL) * uniform noise, as uint8. Drawn chunk by chunk,
  which gives the same numbers as one draw (a generator's stream does not depend on how
  it is split) in a fifth of the time: MNIST's 70,000 images take 0.4 s, not 1.8 s."""
  weighted = np.float32(SIGNAL) * smooth_prototypes(num_classes, image_shape, rng)
  images = np.empty((len(labels), *image_shape), np.uint8)
  for start in range(0, len(labels), _CHUNK):
    stop = min(start + _CHUNK, len(labels))
    noise = rng.uniform(0, 255, size=(stop - start, *image_shape)).astype(np.float32)
    noise *= np.float32(1 - SIGNAL)
    noise += weighted[labels[start:stop]]
    images[start:stop] = noise  # truncated to uint8, as astype would
  return images


def smooth_prototypes(num_classes, image_shape, rng, cells=4):
  """Blocky class patterns (a cells x cells grid scaled up): a class stays
  recognisable under the shifts and flips of augmentation."""
  height, width, channels = image_shape
  coarse = rng.uniform(0, 255, size=(num_classes, cells, cells, channels)).astype(np.float32)
  rows = np.arange(height) * cells // height
  cols = np.arange(width) * cells // width
  return coarse[:, rows][:, :, cols]
