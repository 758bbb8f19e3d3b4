"""`jaxlab predict`: top-k classes for image files (PNG, JPEG, ... via Pillow).

Each image is converted as the training data was: to the data set's channels and
size, and scaled to its pixel range, then normalised by the same compiled code.
"""

import json
import sys

import jax
import numpy as np

from jaxlab import inference
from jaxlab.data import pipeline
from jaxlab.parallel import sharding
from jaxlab.train import step as step_lib


def load_image(path, info):
  """The image as float32 (H, W, C) in the data set's raw pixel range."""
  from PIL import Image
  height, width, channels = info.image_shape
  with Image.open(path) as image:
    image = image.convert('L' if channels == 1 else 'RGB').resize((width, height),
                                                                  Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32).reshape(height, width, channels)
  return pixels / 255.0 * info.pixel_max


def probabilities(run, images_NxHxWxC):
  """Softmax class probabilities, computed with the eval-mode model."""
  shards = run.model.mesh.shape['data'] * run.model.mesh.shape['fsdp']
  batch = shards * max(1, -(-min(len(images_NxHxWxC), 256) // shards))
  padded = pipeline.pad_to_multiple(images_NxHxWxC, batch)
  predict = jax.jit(lambda state, x: jax.nn.softmax(step_lib.predict_logits(
      state, x, eval_batch_size=batch, step_config=run.model.step_config)))
  placed = pipeline.place(padded, sharding.replicated(run.model.mesh))
  return np.asarray(jax.device_get(predict(run.state, placed)))[:len(images_NxHxWxC)]


def top_k(probs, k, info):
  order = np.argsort(-probs)[:k]
  return [dict(label=int(i), name=info.label_name(int(i)), probability=float(probs[i]))
          for i in order]


def main(workdir, paths, checkpoint='best', top_k_count=3, as_json=False):
  """Prints predictions; returns 1 if any file could not be read, else 0."""
  if not paths:
    print('jaxlab: error: predict needs image files: jaxlab predict --workdir=DIR a.png b.jpg',
          file=sys.stderr)
    return 2
  run = inference.load(workdir, checkpoint)
  images, readable, failed = [], [], 0
  for path in paths:
    try:
      images.append(load_image(path, run.info))
      readable.append(path)
    except (OSError, ValueError, SyntaxError) as error:
      failed += 1
      print(f'jaxlab: cannot read {path}: {error}', file=sys.stderr, flush=True)
  if images:
    for path, probs in zip(readable, probabilities(run, np.stack(images))):
      best = top_k(probs, top_k_count, run.info)
      if as_json:
        print(json.dumps(dict(file=path, top_k=best)), flush=True)
      else:
        shown = ', '.join(f'{p["name"]} {p["probability"]:.3f}' for p in best)
        print(f'{path}: {shown}', flush=True)
  return 1 if failed else 0
