"""Your own arrays: an .npz file with x_train, y_train, x_test, y_test.

Images are (N, H, W, C) (or (N, H, W), given one channel): uint8 in 0..255, or
floats already scaled to [0, 1], which stay float32 on the device.
"""

import numpy as np

from jaxlab.data import from_arrays, image_info
from jaxlab.errors import UserError

KEYS = ('x_train', 'y_train', 'x_test', 'y_test')


def load(data_config, workdir=None):
  del workdir
  path = data_config.path
  if not path:
    raise UserError('--config.data.name=npz needs --config.data.path=FILE.npz holding '
                    'x_train, y_train, x_test and y_test.')
  try:
    with np.load(path) as arrays:
      missing = [k for k in KEYS if k not in arrays.files]
      if missing:
        raise UserError(f'{path} lacks {", ".join(missing)}; an npz data set holds '
                        f'{", ".join(KEYS)}.')
      x_train, y_train, x_test, y_test = (arrays[k] for k in KEYS)
  except OSError as error:
    raise UserError(f'Cannot read --config.data.path={path}: {error}.') from None
  x_train, x_test = _with_channels(x_train), _with_channels(x_test)
  is_float = np.issubdtype(x_train.dtype, np.floating)
  dtype = np.float32 if is_float else np.uint8
  num_classes = int(max(y_train.max(), y_test.max())) + 1
  info = image_info('npz', x_train.shape[1:], num_classes, pixel_max=1.0 if is_float else 255.0,
                    dtype=np.dtype(dtype).name)
  return from_arrays(info, dict(image=x_train.astype(dtype), label=y_train.astype(np.int32)),
                     dict(image=x_test.astype(dtype), label=y_test.astype(np.int32)))


def _with_channels(images):
  return images[..., None] if images.ndim == 3 else images
