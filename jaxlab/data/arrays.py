"""Your own arrays: x_train, y_train, x_test, y_test in an .npz file, or as .npy files
in a folder (`x_train.npy`, ...), which are memory-mapped: a set larger than memory
streams from disk (`--config.data.placement=stream`).

Images are (N, H, W, C) (or (N, H, W), given one channel): uint8 in 0..255, or
floats already scaled to [0, 1], which stay float32 on the device.
"""

import os

import numpy as np

from jaxlab.data.info import from_arrays, image_info
from jaxlab.errors import UserError

KEYS = ('x_train', 'y_train', 'x_test', 'y_test')


def load(data_config, workdir=None):
  del workdir
  path = data_config.path
  if not path:
    raise UserError('--config.data.name=npz needs --config.data.path=FILE.npz (or a folder '
                    'of .npy files) holding x_train, y_train, x_test and y_test.')
  try:
    x_train, y_train, x_test, y_test = _read(os.path.expanduser(path))
  except OSError as error:
    raise UserError(f'Cannot read --config.data.path={path}: {error}.') from None
  x_train, x_test = _with_channels(x_train), _with_channels(x_test)
  is_float = np.issubdtype(x_train.dtype, np.floating)
  dtype = np.float32 if is_float else np.uint8
  num_classes = int(max(y_train.max(), y_test.max())) + 1
  info = image_info('npz', x_train.shape[1:], num_classes, pixel_max=1.0 if is_float else 255.0,
                    dtype=np.dtype(dtype).name)
  as_is = lambda array, want: array if array.dtype == want else array.astype(want)
  return from_arrays(info, dict(image=as_is(x_train, dtype), label=as_is(y_train, np.int32)),
                     dict(image=as_is(x_test, dtype), label=as_is(y_test, np.int32)))


def _read(path):
  """The four arrays: loaded from an .npz, memory-mapped from a folder of .npy files."""
  if os.path.isdir(path):
    missing = [k for k in KEYS if not os.path.exists(os.path.join(path, f'{k}.npy'))]
    if missing:
      raise UserError(f'{path} lacks {", ".join(k + ".npy" for k in missing)}; an array folder '
                      f'holds {", ".join(k + ".npy" for k in KEYS)}.')
    return [np.load(os.path.join(path, f'{k}.npy'), mmap_mode='r') for k in KEYS]
  with np.load(path) as arrays:
    missing = [k for k in KEYS if k not in arrays.files]
    if missing:
      raise UserError(f'{path} lacks {", ".join(missing)}; an npz data set holds '
                      f'{", ".join(KEYS)}.')
    return [arrays[k] for k in KEYS]


def _with_channels(images):
  return images[..., None] if images.ndim == 3 else images
