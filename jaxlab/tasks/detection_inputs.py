"""Image files in and pictures out for a detector: the batch `predict` and `serve` build
(each image fitted as the training images were, plus its original height and width, so
the model's boxes come back in its pixels), and a PNG of an image with its boxes drawn
and labelled."""

import io
import os

import numpy as np

PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
           (0, 128, 128), (220, 190, 255), (170, 110, 40))


def fitted(data, info):
  """(float32 S x S x C in the data set's pixel range, [height, width]) of image bytes;
  ValueError if they do not decode."""
  from PIL import Image
  from jaxlab.data import image_fit
  try:
    with Image.open(io.BytesIO(data)) as image:
      width, height = image.size
  except (OSError, SyntaxError) as error:
    raise ValueError(f'not an image Pillow reads ({error})') from None
  pixels = image_fit.fit_file(io.BytesIO(data), info.preprocessing['image'])
  return (pixels.astype(np.float32) / 255.0 * info.pixel_max,
          np.asarray([height, width], np.float32))


def batch_of(named_bytes, info):
  """({'image', 'image_hw'} stacked, readable names, {name: error}) of [(name, bytes)]."""
  images, sizes, readable, errors = [], [], [], {}
  for name, data in named_bytes:
    try:
      image, size = fitted(data, info)
    except ValueError as error:
      errors[name] = str(error)
      continue
    images.append(image)
    sizes.append(size)
    readable.append(name)
  batch = {'image': np.stack(images), 'image_hw': np.stack(sizes)} if images else {}
  return batch, readable, errors


def read_files(paths):
  """[(path, bytes)] of the readable files, {path: error} of the others."""
  found, errors = [], {}
  for path in paths:
    try:
      with open(path, 'rb') as f:
        found.append((path, f.read()))
    except OSError as error:
      errors[path] = str(error)
  return found, errors


def draw(path, prediction, out_path):
  """Writes the image at `path` with the prediction's boxes drawn and labelled as a PNG."""
  from PIL import Image, ImageDraw
  with Image.open(path) as opened:
    image = opened.convert('RGB')
  canvas = ImageDraw.Draw(image)
  thickness = max(1, round(max(image.size) / 200))
  for detection in sorted(prediction['detections'], key=lambda d: d['score']):
    x, y, w, h = detection['box']
    color = PALETTE[detection['label'] % len(PALETTE)]
    canvas.rectangle([x, y, x + w, y + h], outline=color, width=thickness)
    text = f'{detection["name"]} {detection["score"]:.2f}'
    left, top, right, bottom = canvas.textbbox((x, y), text)
    top_y = max(0, y - (bottom - top) - 2)
    canvas.rectangle([x, top_y, x + (right - left) + 2, top_y + (bottom - top) + 2], fill=color)
    canvas.text((x + 1, top_y), text, fill=(0, 0, 0) if sum(color) > 400 else (255, 255, 255))
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  image.save(out_path, format='PNG')
  return out_path
