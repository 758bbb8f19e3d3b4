"""`data.name=coco_json`: your images with boxes in COCO format (`jaxlab.data.coco_json`).

  jaxlab train --config=experiments/shapes_detection.py --config.data.name=coco_json \\
      --config.data.path=DIR --workdir=W

Layouts of data.path (the first that matches):
  DIR/train.json + DIR/train/ (images), and DIR/test.json + DIR/test/ (or val, valid,
      validation); a file_name may also be relative to DIR or DIR/images
  DIR/train/_annotations.coco.json + DIR/valid/_annotations.coco.json (Roboflow's export)
  DIR/annotations/instances_train*.json + DIR/train*/ (COCO's own, e.g. train2017)
  FILE.json: one file, images relative to its folder; data.validation_split holds out a share
Without a test file, data.validation_split (default 0.2) of the images are held out.

Each image is decoded when a batch needs it (in Grain's workers when streamed) and
stretched to data.image_size x data.image_size (normalised boxes keep their place); its
first data.max_boxes boxes are kept. An example holds 'image', 'boxes' (normalised
[ymin, xmin, ymax, xmax]), 'classes', 'box_mask', 'image_id' and 'image_hw' (the
original height and width, to map boxes back to pixels).
"""

import glob
import os

from jaxlab.data import boxes as boxes_lib
from jaxlab.data import coco_json, decoded_cache, holdout, image_fit, sources
from jaxlab.data.info import DatasetInfo, Splits
from jaxlab.errors import UserError
from jaxlab.runtime import messages

TEST_NAMES = ('test', 'val', 'valid', 'validation')


class DetectionImageSource:
  """Images of an `Annotations` with their padded boxes, decoded on read (picklable)."""

  decodes = True  # decoding is the work: stream it through Grain's worker processes

  def __init__(self, annotations, indices, *, size, channels, max_boxes, name):
    self.annotations, self.indices = annotations, list(indices)
    self.size, self.channels, self.max_boxes, self.name = size, channels, max_boxes, name

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, index):
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(index)
    a, i = self.annotations, self.indices[index]
    try:
      with open(a.paths[i], 'rb') as f:
        image = image_fit.fit(f.read(), self.size, self.channels, 'stretch')
    except OSError as error:
      raise sources.BadRecord(self, index, f'{a.paths[i]}: {error}') from error
    except sources.BadRecord as error:
      raise sources.BadRecord(self, index, f'{a.paths[i]}: {error.reason}') from error
    return boxes_lib.example(image, a.boxes[i], a.classes[i], self.max_boxes, a.image_ids[i],
                             *a.sizes[i])

  def rows(self, start, stop):
    return decoded_cache.decode_rows(self, start, stop) if stop > start else {}

  def __repr__(self):
    return self.name


def find_files(path):
  """[(split, annotation file, image folders)] for train and, if present, test."""
  path = os.path.expanduser(path)
  if os.path.isfile(path):
    folder = os.path.dirname(os.path.abspath(path))
    return [('train', path, [folder, os.path.join(folder, 'images')])]
  if not os.path.isdir(path):
    raise UserError(f'--config.data.path={path} is neither a folder nor a COCO .json file. '
                    f'{_LAYOUT}')
  found = []
  for split, names in (('train', ('train',)), ('test', TEST_NAMES)):
    for name in names:
      match = _split_files(path, name)
      if match:
        found.append((split, *match))
        break
  if not found or found[0][0] != 'train':
    raise UserError(f'{path} holds no training annotations. {_LAYOUT}')
  return found


_LAYOUT = ('Expected DIR/train.json with the images in DIR/train/ (and DIR/test.json with '
           'DIR/test/), Roboflow\'s DIR/train/_annotations.coco.json, COCO\'s '
           'DIR/annotations/instances_train2017.json with DIR/train2017/, or one .json file '
           '(docs: Object detection).')


def _split_files(root, name):
  """(annotation file, image folders) of one split name, or None."""
  plain = os.path.join(root, f'{name}.json')
  if os.path.isfile(plain):
    return plain, [os.path.join(root, name), os.path.join(root, 'images'), root]
  roboflow = os.path.join(root, name, '_annotations.coco.json')
  if os.path.isfile(roboflow):
    return roboflow, [os.path.join(root, name)]
  coco = sorted(glob.glob(os.path.join(root, 'annotations', f'instances_{name}*.json')))
  if coco:
    stem = os.path.basename(coco[0])[len('instances_'):-len('.json')]
    return coco[0], [os.path.join(root, stem), os.path.join(root, 'images'), root]
  return None


def load(data_config, workdir=None):
  del workdir
  files = find_files(data_config.path)
  read = {}
  for split, path, image_dirs in files:
    categories = None if split == 'train' else (read['train'][0].category_ids,
                                                read['train'][0].category_names)
    annotations = coco_json.read(path, image_dirs, categories)
    line = coco_json.skipped_line(annotations, path)
    if line:
      messages.say(line)
    read[split] = (annotations, path)
  return splits(data_config, 'coco_json', read['train'][0], read.get('test', (None,))[0],
                data_config.path)


def splits(data_config, name, train, test, what):
  """Splits of a training and an optional test `Annotations` (else a held-out share)."""
  count = len(train.paths)
  share = holdout.fraction(data_config, test is not None, what)
  if share is None:
    train_rows, test_source, test_rows = range(count), test, range(len(test.paths))
  else:
    train_rows, test_rows = holdout.split(count, share, data_config.split_seed, what)
    test_source = train
  size = int(data_config.image_size)
  channels = image_fit.CHANNELS[data_config.color_mode]
  max_boxes = int(data_config.max_boxes)
  make = dict(size=size, channels=channels, max_boxes=max_boxes)
  info = DatasetInfo(name, boxes_lib.features(size, channels, max_boxes),
                     num_classes=len(train.category_ids), class_names=train.category_names,
                     preprocessing={'image': image_fit.spec(size, 'stretch', data_config.color_mode),
                                    'category_ids': list(train.category_ids)})
  return Splits(info, DetectionImageSource(train, train_rows, name=f'{name} train', **make),
                DetectionImageSource(test_source, test_rows, name=f'{name} test', **make))
