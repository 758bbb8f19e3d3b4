"""COCO-format annotation files, read and checked: what COCO, LVIS, Roboflow's exports and
CVAT write.

A file holds `images` ({id, file_name, width, height}), `annotations` ({image_id,
category_id, bbox: [x, y, w, h] in pixels, iscrowd}) and `categories` ({id, name}).
Category ids need not be contiguous (COCO's run 1..90 with gaps): the classes are the
categories sorted by id, and class i is the i-th of them. Images without annotations are
kept (they teach "no object"). Crowd annotations (iscrowd=1) are left out, as the
detection references leave them out of training.

What is refused, with the file, the record and the fix (a UserError: exit 2): a missing
or malformed file, an annotation of an image the file does not list, an unknown category
id, an image file that is not there, a box reaching more than `TOLERANCE` pixels outside
its image. Boxes of zero width or height are skipped and counted.
"""

import dataclasses
import json
import os

import numpy as np

from jaxlab.data import boxes as boxes_lib
from jaxlab.errors import UserError

TOLERANCE = 1.0  # pixels a box may reach past the image's edge (rounding); it is clipped


@dataclasses.dataclass(frozen=True)
class Annotations:
  """The images of one annotation file and their boxes."""
  category_ids: tuple  # the COCO id of class i
  category_names: tuple
  paths: tuple  # image files
  image_ids: np.ndarray  # int64
  sizes: np.ndarray  # (height, width) per image
  boxes: tuple  # per image: normalised [ymin, xmin, ymax, xmax] N x 4 (float32)
  classes: tuple  # per image: class indices N (int32)
  skipped: dict  # {'zero-area boxes': count, 'crowd annotations': count}


def load_json(path):
  """The decoded JSON object of an annotation file; UserError if absent or not JSON."""
  if not os.path.isfile(path):
    raise UserError(f'COCO annotations {path} not found. Give --config.data.path a folder with '
                    'train.json (and test.json) beside the image folders, or the .json file '
                    'itself (docs: Object detection).')
  try:
    with open(path, encoding='utf-8') as f:
      record = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise UserError(f'COCO annotations {path} are not valid JSON ({error}). Export them again '
                    'from the labelling tool, or repair the file.') from None
  missing = [key for key in ('images', 'annotations', 'categories')
             if not isinstance(record, dict) or not isinstance(record.get(key), list)]
  if missing:
    raise UserError(f'COCO annotations {path} lack the list(s) {missing}: a COCO file is an '
                    'object with "images", "annotations" and "categories" lists. Export the '
                    'data set in COCO format.')
  return record


def read(path, image_dirs, categories=None):
  """Annotations of the COCO file at `path`, its images found in the first of `image_dirs`
  that holds each file_name. `categories` ((ids, names) of the training file) makes a test
  file use the training file's classes."""
  record = load_json(path)
  ids, names = categories or _categories(record['categories'], path)
  index_of = {coco_id: i for i, coco_id in enumerate(ids)}
  images = _images(record['images'], path, image_dirs)
  per_image = {image_id: ([], []) for image_id in images}
  skipped = {'zero-area boxes': 0, 'crowd annotations': 0}
  for annotation in record['annotations']:
    found = _annotation(annotation, path, images, index_of)
    if isinstance(found, str):
      skipped[found] += 1
      continue
    image_id, box, label = found
    per_image[image_id][0].append(box)
    per_image[image_id][1].append(label)
  order = list(images)
  sizes = np.asarray([images[i][1:] for i in order], np.float64).reshape(-1, 2)
  normalised = tuple(
      np.clip(boxes_lib.from_coco(per_image[i][0], *images[i][1:]), 0, 1) for i in order)
  return Annotations(tuple(ids), tuple(names), tuple(images[i][0] for i in order),
                     np.asarray(order, np.int64), sizes, normalised,
                     tuple(np.asarray(per_image[i][1], np.int32) for i in order), skipped)


def _categories(categories, path):
  try:
    ordered = sorted((int(c['id']), str(c.get('name', c['id']))) for c in categories)
  except (KeyError, TypeError, ValueError):
    raise UserError(f'COCO annotations {path}: every category needs an integer "id" (and a '
                    '"name"). Repair the "categories" list.') from None
  if not ordered:
    raise UserError(f'COCO annotations {path} list no categories: add the object classes to '
                    '"categories".')
  ids = [i for i, _ in ordered]
  if len(set(ids)) != len(ids):
    raise UserError(f'COCO annotations {path}: category ids repeat ({ids}); give each class '
                    'one id.')
  return tuple(ids), tuple(name for _, name in ordered)


def _images(images, path, image_dirs):
  """{image id: (file path, height, width)}; UserError for a missing image file."""
  found, missing = {}, []
  for image in images:
    try:
      image_id, name = int(image['id']), str(image['file_name'])
      height, width = float(image['height']), float(image['width'])
    except (KeyError, TypeError, ValueError):
      raise UserError(f'COCO annotations {path}: image {image!r:.120} lacks an integer "id", '
                      'a "file_name", or its "width" and "height". Repair the "images" '
                      'list.') from None
    if height <= 0 or width <= 0:
      raise UserError(f'COCO annotations {path}: image {image_id} ({name}) has size '
                      f'{width:g} x {height:g}; give its true width and height in pixels.')
    file = next((os.path.join(d, name) for d in image_dirs
                 if os.path.isfile(os.path.join(d, name))), None)
    if file is None:
      missing.append(name)
    found[image_id] = (file, height, width)
  if missing:
    raise UserError(f'COCO annotations {path} list {len(missing)} image(s) not found in '
                    f'{", ".join(image_dirs)}: {", ".join(missing[:5])}'
                    f'{" ..." if len(missing) > 5 else ""}. Put the image files there (file_name '
                    'is relative to the image folder), or remove them from "images".')
  if not found:
    raise UserError(f'COCO annotations {path} list no images: add them to "images".')
  return found


def _annotation(annotation, path, images, index_of):
  """(image id, COCO bbox, class index), or why it is skipped."""
  try:
    image_id, category = int(annotation['image_id']), int(annotation['category_id'])
    x, y, w, h = (float(v) for v in annotation['bbox'])
  except (KeyError, TypeError, ValueError):
    raise UserError(f'COCO annotations {path}: annotation {annotation!r:.160} lacks an '
                    'integer "image_id" and "category_id" or a "bbox" [x, y, width, height]. '
                    'Repair it or remove it.') from None
  which = f'annotation {annotation.get("id", "?")} (image {image_id})'
  if image_id not in images:
    raise UserError(f'COCO annotations {path}: {which} refers to an image that "images" does not '
                    'list. Add the image to "images" or remove its annotations.')
  if category not in index_of:
    raise UserError(f'COCO annotations {path}: {which} has category_id {category}, which is not '
                    f'in "categories" (ids {sorted(index_of)}). Add the category or fix the id.')
  if annotation.get('iscrowd', 0):
    return 'crowd annotations'
  if w <= 0 or h <= 0:
    return 'zero-area boxes'
  _, height, width = images[image_id]
  if x < -TOLERANCE or y < -TOLERANCE or x + w > width + TOLERANCE or y + h > height + TOLERANCE:
    raise UserError(f'COCO annotations {path}: {which} has bbox [{x:g}, {y:g}, {w:g}, {h:g}] '
                    f'reaching outside its {width:g} x {height:g} image. A COCO bbox is [x, y, '
                    'width, height] in pixels from the top-left corner: fix the box, or the '
                    'image\'s width and height.')
  return image_id, (x, y, w, h), index_of[category]


def skipped_line(annotations, path):
  """A sentence counting what was skipped in a file ('' when nothing was)."""
  counted = [f'{count} {what}' for what, count in annotations.skipped.items() if count]
  return f'{path}: skipped {" and ".join(counted)}.' if counted else ''
