"""Host image transforms for encoded images (ImageNet-shaped data), run in Grain workers.

`TrainImageTransform(size)` decodes a JPEG, takes an Inception-style random crop
(8%-100% of the area, aspect 3/4-4/3) resized to size x size, and flips it at random;
`EvalImageTransform(size)` resizes the shorter side to size / 0.875 and takes the
center crop. Both are picklable and take `(example, key)`, key a tuple of ints
(seed, step, position): the random numbers come from `np.random.default_rng(key)`
alone, so the result does not depend on which process, or in which order, runs it.

The crop window is drawn from the image's size (read from the JPEG header) before
decoding, so the decoder can skip detail the crop will not keep: Pillow's `draft()`
decodes at 1/2, 1/4 or 1/8 scale whenever the crop still covers `size` pixels a side.
"""

import io
import math

import numpy as np
from PIL import Image

from jaxlab.data import environment, sources

AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)
EVAL_CROP_FRACTION = 0.875
_RESAMPLE = Image.Resampling.BILINEAR


def decode_jpeg(data, min_size=None):
  """uint8 (H, W, 3) of an encoded image (JPEG, or any format Pillow reads).

  With `min_size=(h, w)`, a JPEG is decoded at the smallest of 1, 1/2, 1/4, 1/8 scale
  that is at least that large. Raises `sources.BadRecord` for undecodable bytes.
  """
  image = _open(data)
  if min_size is not None:
    image.draft('RGB', (min_size[1], min_size[0]))
  return np.asarray(_rgb(image, data))


def sample_crop(height, width, rng, area_range=AREA_RANGE, aspect_range=ASPECT_RANGE,
                attempts=10):
  """(top, left, h, w) of an Inception-style crop; the center crop of the largest
  in-range aspect after `attempts` misses."""
  area = height * width
  log_aspect = np.log(aspect_range)
  for _ in range(attempts):
    target_area = area * rng.uniform(*area_range)
    aspect = math.exp(rng.uniform(*log_aspect))
    w = int(round(math.sqrt(target_area * aspect)))
    h = int(round(math.sqrt(target_area / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
  return _center_box(height, width, aspect_range)


def _center_box(height, width, aspect_range):
  aspect = width / height
  if aspect < aspect_range[0]:
    w, h = width, int(round(width / aspect_range[0]))
  elif aspect > aspect_range[1]:
    h, w = height, int(round(height * aspect_range[1]))
  else:
    h, w = height, width
  return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(image, size, rng, area_range=AREA_RANGE, aspect_range=ASPECT_RANGE):
  """An Inception-style random crop of uint8 (H, W, C) `image`, resized to (size, size)."""
  box = sample_crop(image.shape[0], image.shape[1], rng, area_range, aspect_range)
  return _resize_box(Image.fromarray(_squeeze(image)), box, size, image.shape[-1])


def center_crop_resize(image, size, crop_fraction=EVAL_CROP_FRACTION):
  """The center (size, size) crop after resizing the shorter side to size / crop_fraction."""
  box = _center_square(image.shape[0], image.shape[1], crop_fraction)
  return _resize_box(Image.fromarray(_squeeze(image)), box, size, image.shape[-1])


def _center_square(height, width, crop_fraction):
  side = int(round(min(height, width) * crop_fraction))
  return (height - side) // 2, (width - side) // 2, side, side


def random_flip(image, rng):
  """`image` mirrored left-right with probability 1/2."""
  return image[:, ::-1] if rng.random() < 0.5 else image


class TrainImageTransform:
  """Encoded image -> Inception crop (size x size) -> random flip; see the module doc."""

  def __init__(self, size, flip=True, area_range=AREA_RANGE, aspect_range=ASPECT_RANGE,
               feature='image'):
    self.size, self.flip, self.feature = size, flip, feature
    self.area_range, self.aspect_range = area_range, aspect_range

  def __call__(self, example, key):
    rng = np.random.default_rng(key)
    value = example[self.feature]
    if isinstance(value, np.ndarray):
      image = random_resized_crop(value, self.size, rng, self.area_range, self.aspect_range)
    else:
      image = _crop_encoded(value, self.size, lambda h, w: sample_crop(
          h, w, rng, self.area_range, self.aspect_range))
    if self.flip:
      image = random_flip(image, rng)
    return dict(example, **{self.feature: np.ascontiguousarray(image)})

  def __repr__(self):
    return f'TrainImageTransform(size={self.size}, flip={self.flip})'


class EvalImageTransform:
  """Encoded image -> center crop resized to size x size; `key` is ignored."""

  def __init__(self, size, crop_fraction=EVAL_CROP_FRACTION, feature='image'):
    self.size, self.crop_fraction, self.feature = size, crop_fraction, feature

  def __call__(self, example, key=None):
    del key  # deterministic
    value = example[self.feature]
    if isinstance(value, np.ndarray):
      image = center_crop_resize(value, self.size, self.crop_fraction)
    else:
      image = _crop_encoded(value, self.size,
                            lambda h, w: _center_square(h, w, self.crop_fraction))
    return dict(example, **{self.feature: image})

  def __repr__(self):
    return f'EvalImageTransform(size={self.size})'


def _crop_encoded(data, size, choose_box):
  """Decodes `data` at the smallest scale that keeps the chosen box >= size a side."""
  image = _open(data)
  width, height = image.size
  top, left, h, w = choose_box(height, width)
  image.draft('RGB', (math.ceil(width * size / w), math.ceil(height * size / h)))
  scale_x, scale_y = image.size[0] / width, image.size[1] / height
  box = (top * scale_y, left * scale_x, h * scale_y, w * scale_x)
  return _resize_box(_rgb(image, data), box, size, 3)


def _resize_box(image, box, size, channels):
  top, left, h, w = box
  out = np.asarray(image.resize((size, size), _RESAMPLE, box=(left, top, left + w, top + h)))
  return out.reshape(size, size, channels)


def _squeeze(image):
  return image[..., 0] if image.shape[-1] == 1 else image


def _open(data):
  try:
    return Image.open(io.BytesIO(bytes(data)))
  except Exception as error:  # pylint: disable=broad-except  # Pillow raises many kinds
    _raise_if_missing_codec(error)
    raise sources.BadRecord('encoded image', None, f'{type(error).__name__}: {error}') from error


def _rgb(image, data):
  try:
    return image.convert('RGB')  # also decodes: a truncated file fails here
  except Exception as error:  # pylint: disable=broad-except
    _raise_if_missing_codec(error)
    raise sources.BadRecord('encoded image', None,
                            f'{type(error).__name__}: {error} ({len(data)} bytes)') from error


def _raise_if_missing_codec(error):
  missing = environment.missing_dependency(error, 'an encoded image')
  if missing:
    raise missing from error
