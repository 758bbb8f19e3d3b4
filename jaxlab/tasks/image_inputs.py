"""Image files (PNG, JPEG, ... via Pillow) as a classification batch for `predict`.

Each image is converted as the training data was: to the data set's channels and
size, and scaled to its pixel range; the task's compiled preprocessing does the rest.
"""

import numpy as np


def load_image(path, info):
  """The image as float32 (H, W, C) in the data set's raw pixel range."""
  from PIL import Image
  fitted = (info.preprocessing or {}).get('image')
  if fitted:  # trained on encoded images (image_folder, hf_disk): fitted as they were
    from jaxlab.data import image_fit
    return image_fit.fit_file(path, fitted).astype(np.float32) / 255.0 * info.pixel_max
  height, width, channels = info.image_shape
  with Image.open(path) as image:
    image = image.convert('L' if channels == 1 else 'RGB').resize((width, height),
                                                                  Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32).reshape(height, width, channels)
  return pixels / 255.0 * info.pixel_max


def read_images(paths, info):
  """({'image': float32 N x H x W x C}, readable paths, {path: error})."""
  images, readable, errors = [], [], {}
  for path in paths:
    try:
      images.append(load_image(path, info))
      readable.append(path)
    except (OSError, ValueError, SyntaxError) as error:
      errors[path] = str(error)
  batch = {'image': np.stack(images)} if images else {}
  return batch, readable, errors
