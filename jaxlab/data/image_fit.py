"""Encoded images (JPEG, PNG, BMP, GIF, WebP) decoded and fitted to a square of one size.

The one function that turns a file's bytes into the uint8 (size, size, channels) a model
saw in training: the image_folder and hf_disk sources call it, and so do `jaxlab predict`
and `jaxlab serve` for a run trained on them (through `DatasetInfo.preprocessing['image']`,
`spec(...)` below), so all three see the same pixels.

Resize modes:
  stretch      the whole image resized to size x size, the aspect ratio not kept (Keras's
               `image_dataset_from_directory` default)
  center_crop  the largest centred square, resized (Keras's crop_to_aspect_ratio=True)
  random_crop  training: an Inception-style random crop (8%-100% of the area, aspect
               3/4-4/3) and a random flip (`RandomCropTransform`, in Grain's workers);
               test, predict and serve: the center crop
A JPEG is decoded at 1/2, 1/4 or 1/8 scale (Pillow's `draft`) whenever what is kept still
covers `size` pixels a side: a large photo costs a fraction of its full decode. Animated
GIFs give their first frame; EXIF orientation is not applied (as in Keras).
"""

import io
import math

import numpy as np
from PIL import Image

from jaxlab.data import environment, image_transforms, sources

RESIZE_MODES = ('stretch', 'center_crop', 'random_crop')
CHANNELS = {'rgb': 3, 'grayscale': 1}
_RESAMPLE = Image.Resampling.BILINEAR


def spec(size, resize_mode, color_mode):
  """What DatasetInfo.preprocessing['image'] holds (JSON)."""
  return dict(size=int(size), resize_mode=resize_mode, channels=CHANNELS[color_mode])


def fit(data, size, channels, resize_mode='stretch'):
  """uint8 (size, size, channels) of encoded image bytes; `sources.BadRecord` for bytes
  that do not decode (reason only: the caller knows which record it was)."""
  image = _open(data)
  width, height = image.size
  box = (0, 0, height, width) if resize_mode == 'stretch' else _center_square(height, width)
  return _decode_box(image, box, size, channels)


def fit_spec(data, preprocessing):
  """`fit` as DatasetInfo.preprocessing['image'] says."""
  mode = 'stretch' if preprocessing['resize_mode'] == 'stretch' else 'center_crop'
  return fit(data, preprocessing['size'], preprocessing['channels'], mode)


def fit_file(file, preprocessing):
  """`fit_spec` of a file's bytes (a path, or an open binary file as serve passes);
  ValueError (OSError if unreadable) when they do not decode, as `jaxlab predict` expects."""
  if hasattr(file, 'read'):
    data = file.read()
  else:
    with open(file, 'rb') as f:
      data = f.read()
  try:
    return fit_spec(data, preprocessing)
  except sources.BadRecord as error:
    raise ValueError(error.reason) from None


class RandomCropTransform:
  """Training transform of resize_mode=random_crop: encoded bytes -> random crop of
  `size` -> random flip. Picklable; its randomness is `np.random.default_rng(key)`'s
  alone (key = (seed, step, position)), as for `image_transforms`."""

  def __init__(self, size, channels, feature='image'):
    self.size, self.channels, self.feature = size, channels, feature

  def __call__(self, example, key):
    rng = np.random.default_rng(key)
    image = _open(example[self.feature])
    width, height = image.size
    box = image_transforms.sample_crop(height, width, rng)
    pixels = image_transforms.random_flip(_decode_box(image, box, self.size, self.channels), rng)
    return dict(example, **{self.feature: np.ascontiguousarray(pixels)})

  def __repr__(self):
    return f'RandomCropTransform(size={self.size}, channels={self.channels})'


def _center_square(height, width):
  side = min(height, width)
  return (height - side) // 2, (width - side) // 2, side, side


def _decode_box(image, box, size, channels):
  """The (top, left, h, w) box of `image` resized to size x size, decoding a JPEG at the
  smallest scale that keeps the box at least `size` a side."""
  top, left, h, w = box
  width, height = image.size
  mode = 'L' if channels == 1 else 'RGB'
  try:
    image.draft(mode, (math.ceil(width * size / w), math.ceil(height * size / h)))
    scale_x, scale_y = image.size[0] / width, image.size[1] / height
    image = image.convert(mode)  # decodes: a truncated file fails here
    crop = (left * scale_x, top * scale_y, (left + w) * scale_x, (top + h) * scale_y)
    if crop == (0, 0, size, size) and image.size == (size, size):  # already the size
      pixels = np.asarray(image)
    else:
      pixels = np.asarray(image.resize((size, size), _RESAMPLE, box=crop))
  except Exception as error:  # pylint: disable=broad-except  # Pillow raises many kinds
    raise _bad(error) from error
  return pixels.reshape(size, size, channels)


def _open(data):
  try:
    return Image.open(io.BytesIO(bytes(data)))
  except Exception as error:  # pylint: disable=broad-except
    raise _bad(error) from error


def _bad(error):
  missing = environment.missing_dependency(error, 'an encoded image')
  if missing:
    return missing
  return sources.BadRecord('encoded image', None, f'{type(error).__name__}: {error}')
