"""TFDS detection sets, streamed, their JPEGs decoded on the host without TensorFlow:
`data.name=coco` (coco/2017: train, and validation as the test split; 80 classes) and
`data.name=voc` (voc/2007: train + validation... as TFDS splits them, trainval for
training here, test for the test split; 20 classes).

The records stay encoded in TFDS's ArrayRecord files (`jaxlab.data.tfds_source`, prepared
once with `tfds build coco/2017 --file_format=array_record`); each is decoded and
stretched to data.image_size in Grain's workers, and its boxes (TFDS's are already
normalised [ymin, xmin, ymax, xmax]) padded to data.max_boxes. Crowd boxes (COCO) and
boxes marked difficult (VOC) are left out, as their evaluators leave them out.
"""

import numpy as np

from jaxlab.data import boxes as boxes_lib
from jaxlab.data import image_fit, sources, tfds_source
from jaxlab.data.info import DatasetInfo, Splits
from jaxlab.errors import UserError

# data.name -> (TFDS name, training split, test split, box flags to leave out)
SETS = {
    'coco': ('coco/2017', 'train', 'validation', 'is_crowd'),
    'voc': ('voc/2007', 'train+validation', 'test', 'is_difficult'),
}
KNOWN = {'coco': (80, 118287), 'voc': (20, 5011)}  # classes, training images (what --dry_run needs)


def known_info(data_config):
  """(DatasetInfo, training examples) without opening TFDS."""
  num_classes, num_train = KNOWN[data_config.name]
  size = int(data_config.image_size)
  info = DatasetInfo(data_config.name, boxes_lib.features(size, 3, int(data_config.max_boxes)),
                     num_classes=num_classes,
                     preprocessing={'image': image_fit.spec(size, 'stretch', 'rgb')})
  return info, int(data_config.num_train or num_train)


class TfdsDetectionSource:
  """A TFDS detection split as detection examples (`jaxlab.data.boxes.features`)."""

  decodes = True  # decoding is the work: stream it through Grain's worker processes

  def __init__(self, source, *, size, max_boxes, left_out):
    self.source, self.size, self.max_boxes, self.left_out = source, size, max_boxes, left_out

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    record = self.source[index]
    data = record['image']
    try:
      width, height = image_fit._open(data).size  # pylint: disable=protected-access  # the header only
      image = image_fit.fit(data, self.size, 3, 'stretch')
    except sources.BadRecord as error:
      raise sources.BadRecord(self, index, error.reason) from error
    objects = record['objects']
    kept = ~np.asarray(objects.get(self.left_out, np.zeros(len(objects['label']), bool)), bool)
    boxes = np.clip(np.asarray(objects['bbox'], np.float32).reshape(-1, 4)[kept], 0, 1)
    image_id = int(record.get('image/id', index + 1))
    return boxes_lib.example(image, boxes, np.asarray(objects['label'])[kept], self.max_boxes,
                             image_id, height, width)

  def __repr__(self):
    return repr(self.source)


def load(data_config, workdir=None):
  del workdir
  name, train_split, test_split, left_out = SETS[data_config.name]
  if data_config.placement != 'stream':
    raise UserError(f'--config.data.name={data_config.name} streams encoded JPEGs that the host '
                    f'decodes, but --config.data.placement={data_config.placement!r}; set '
                    '--config.data.placement=stream (its experiment does).')
  train = tfds_source.source(name, train_split, data_config.data_dir, decode=False)
  test = tfds_source.source(name, test_split, data_config.data_dir, decode=False)
  label = train.info.features['objects']['label']
  size, max_boxes = int(data_config.image_size), int(data_config.max_boxes)
  info = DatasetInfo(data_config.name, boxes_lib.features(size, 3, max_boxes),
                     num_classes=label.num_classes, class_names=tuple(label.names),
                     preprocessing={'image': image_fit.spec(size, 'stretch', 'rgb')})
  make = dict(size=size, max_boxes=max_boxes, left_out=left_out)
  return Splits(info, TfdsDetectionSource(train, **make), TfdsDetectionSource(test, **make))
