"""`data.name=shapes_detection`: an offline detection set, drawn procedurally, for a fresh
machine: no download.

Each image (100-160 pixels a side) has a textured background (a two-colour gradient, smooth
noise, stripes, pixel noise) and 0 to `MAX_OBJECTS` objects of 13 classes: circles,
squares and triangles drawn, and scikit-learn's handwritten digits (8 x 8) pasted as
glyphs, each 20 to 64 pixels, of a random colour, overlapping earlier objects by at most
`MAX_IOU`. A box is the tight box of the object's visible pixels.

The set is written once, in COCO format (train.json + train/*.jpg, test.json +
test/*.jpg), under data.cache_dir/shapes_detection/, and then read by
`jaxlab.data.coco_folder` exactly as your own COCO files are. Image i of a split is a
function of (split, i) alone, so data.num_train / data.num_test pick how many are drawn
(default `SIZES`), and a smaller set is the head of a larger one.
"""

import json
import os
import shutil
import uuid

import numpy as np

from jaxlab.data import boxes as boxes_lib
from jaxlab.data import coco_folder, coco_json, image_fit

VERSION = 2  # bump when the drawing changes
SIZES = {'train': 4000, 'test': 500}
SHAPES = ('circle', 'square', 'triangle')
CLASS_NAMES = SHAPES + tuple(f'digit {d}' for d in range(10))
MAX_OBJECTS = 6
MAX_IOU = 0.2
SIZE_RANGE = (20, 64)  # an object's longer side, in pixels
SPLIT_SEEDS = {'train': 0, 'test': 1}


def load(data_config, workdir=None):
  del workdir
  counts = {split: int(getattr(data_config, f'num_{split}') or SIZES[split])
            for split in SIZES}
  root = ensure_written(data_config.cache_dir, counts)
  read = {split: coco_json.read(os.path.join(root, f'{split}.json'), [os.path.join(root, split)])
          for split in SIZES}
  return coco_folder.splits(data_config, 'shapes_detection', read['train'], read['test'], root)


def known_info(data_config):
  """(DatasetInfo, training examples) without drawing the set (what --dry_run needs)."""
  from jaxlab.data.info import DatasetInfo  # pylint: disable=g-import-not-at-top
  size, channels = int(data_config.image_size), image_fit.CHANNELS[data_config.color_mode]
  info = DatasetInfo('shapes_detection', boxes_lib.features(size, channels,
                                                            int(data_config.max_boxes)),
                     num_classes=len(CLASS_NAMES), class_names=CLASS_NAMES,
                     preprocessing={'image': image_fit.spec(size, 'stretch',
                                                            data_config.color_mode),
                                    'category_ids': list(range(1, len(CLASS_NAMES) + 1))})
  return info, int(data_config.num_train or SIZES['train'])


def ensure_written(cache_dir, counts):
  """The folder holding the set of `counts` images per split, drawn now if absent (into a
  temporary folder renamed into place: a run killed mid-way leaves nothing half-written)."""
  base = os.path.expanduser(cache_dir) if cache_dir else os.path.join(
      os.path.expanduser('~'), '.cache', 'jaxlab', 'datasets')
  root = os.path.join(base, 'shapes_detection',
                      f'v{VERSION}-train{counts["train"]}-test{counts["test"]}')
  if os.path.isfile(os.path.join(root, 'test.json')):
    return root
  temporary = f'{root}.tmp-{uuid.uuid4().hex[:8]}'
  glyphs = _digit_glyphs()
  for split, count in counts.items():  # the splits draw on disjoint halves of the digits
    half = {d: g[SPLIT_SEEDS[split]::2] for d, g in glyphs.items()}
    write_split(os.path.join(temporary, split), os.path.join(temporary, f'{split}.json'),
                split, count, half)
  try:
    os.replace(temporary, root)
  except OSError:  # another run wrote it first
    shutil.rmtree(temporary, ignore_errors=True)
  return root


def write_split(image_dir, json_path, split, count, glyphs):
  from PIL import Image
  os.makedirs(image_dir, exist_ok=True)
  images, annotations = [], []
  for index in range(count):
    rng = np.random.default_rng([SPLIT_SEEDS[split], index, VERSION])
    pixels, objects = draw_image(rng, glyphs)
    name = f'{index:06d}.jpg'
    Image.fromarray(pixels).save(os.path.join(image_dir, name), quality=92)
    images.append(dict(id=index + 1, file_name=name, height=pixels.shape[0],
                       width=pixels.shape[1]))
    for label, (x, y, w, h) in objects:
      annotations.append(dict(id=len(annotations) + 1, image_id=index + 1, category_id=label + 1,
                              bbox=[x, y, w, h], area=w * h, iscrowd=0))
  categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASS_NAMES)]
  with open(json_path, 'w') as f:
    json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def draw_image(rng, glyphs):
  """(uint8 H x W x 3, [(class, [x, y, w, h])]) of one image."""
  height, width = (int(v) for v in rng.integers(100, 161, size=2))
  canvas = _background(rng, height, width)
  placed, objects = [], []
  for _ in range(int(rng.choice(MAX_OBJECTS + 1, p=_COUNT_P))):
    label = int(rng.integers(len(CLASS_NAMES)))
    alpha = _object_mask(rng, label, glyphs)
    h, w = alpha.shape
    if h >= height or w >= width:
      continue
    for _ in range(10):  # a few tries to find a place that overlaps little
      y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
      box = np.array([y, x, y + h, x + w], np.float64)
      if not placed or boxes_lib.iou_matrix(box[None], np.array(placed)).max() <= MAX_IOU:
        break
    else:
      continue
    color = _contrasting_color(rng, canvas[y:y + h, x:x + w])
    region = canvas[y:y + h, x:x + w]
    canvas[y:y + h, x:x + w] = region * (1 - alpha[..., None]) + color * alpha[..., None]
    ys, xs = np.nonzero(alpha > 0.5)
    x0, y0, x1, y1 = x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1
    placed.append(box)
    objects.append((label, [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]))
  noise = rng.normal(0, rng.uniform(0, 10), canvas.shape)
  return np.clip(canvas + noise, 0, 255).astype(np.uint8), objects


_COUNT_P = np.array([0.04, 0.16, 0.2, 0.2, 0.16, 0.14, 0.1])


def _background(rng, height, width):
  """Float H x W x 3: a gradient between two colours, smooth noise, maybe stripes."""
  a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
  angle = rng.uniform(0, 2 * np.pi)
  yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
  t = (np.cos(angle) * xx + np.sin(angle) * yy)
  t = (t - t.min()) / max(np.ptp(t), 1e-6)
  canvas = a + (b - a) * t[..., None]
  cells = rng.uniform(-1, 1, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3))
  canvas += _resize(cells, height, width) * rng.uniform(0, 60)
  if rng.random() < 0.4:  # stripes
    period, phase = rng.uniform(4, 20), rng.uniform(0, 2 * np.pi)
    direction = rng.uniform(0, np.pi)
    wave = np.sin((np.cos(direction) * xx + np.sin(direction) * yy) * max(height, width)
                  * 2 * np.pi / period + phase)
    canvas += wave[..., None] * rng.uniform(5, 35) * rng.uniform(-1, 1, 3)
  return np.clip(canvas, 0, 255)


def _resize(array, height, width):
  from PIL import Image
  channels = [np.asarray(Image.fromarray(array[..., c].astype(np.float32)).resize(
      (width, height), Image.Resampling.BICUBIC)) for c in range(array.shape[-1])]
  return np.stack(channels, -1)


def _object_mask(rng, label, glyphs):
  """Float alpha h x w in [0, 1] of one object, cut to its drawing."""
  from PIL import Image, ImageDraw
  side = rng.uniform(*SIZE_RANGE)
  aspect = np.exp(rng.uniform(-0.35, 0.35))
  h, w = max(int(side * min(1, 1 / aspect)), 6), max(int(side * min(1, aspect)), 6)
  if label >= len(SHAPES):  # a digit: its 8 x 8 intensity as the alpha, scaled up
    glyph = glyphs[label - len(SHAPES)][int(rng.integers(len(glyphs[label - len(SHAPES)])))]
    mask = Image.fromarray((glyph * 255 / 16).astype(np.uint8)).resize(
        (w, h), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(mask, np.float32) / 255 * 1.6 - 0.3, 0, 1)
  scale = 4  # drawn larger, then reduced: smooth edges
  image = Image.new('L', (w * scale, h * scale), 0)
  draw = ImageDraw.Draw(image)
  W, H = w * scale - 1, h * scale - 1
  if SHAPES[label] == 'circle':
    draw.ellipse([0, 0, W, H], fill=255)
  elif SHAPES[label] == 'square':
    draw.rectangle([0, 0, W, H], fill=255)
  else:
    top = rng.uniform(0, W)
    draw.polygon([(top, 0), (0, H), (W, H)], fill=255)
  mask = np.asarray(image.resize((w, h), Image.Resampling.BOX), np.float32) / 255
  return mask


def _contrasting_color(rng, region):
  """A random colour at least ~80 (of 255) away from the region's mean colour."""
  mean = region.reshape(-1, 3).mean(0)
  for _ in range(20):
    color = rng.uniform(0, 255, 3)
    if np.linalg.norm(color - mean) > 80:
      return color
  return 255 - mean


def _digit_glyphs():
  """{digit: array N x 8 x 8 of scikit-learn's digits (values 0..16)}."""
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  digits = datasets.load_digits()
  return {d: digits.images[digits.target == d] for d in range(10)}


