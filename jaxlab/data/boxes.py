"""Box geometry, in the one layout jaxlab keeps boxes in: normalised [ymin, xmin, ymax, xmax]
(fractions of the image's height and width, as TFDS writes them).

COCO files hold pixel boxes [x, y, width, height]; they are converted once, when read
(`from_coco`), and back once, for the evaluator and for what `predict` prints
(`to_coco`). The geometry (areas, IoU, GIoU) works on numpy and jax arrays alike, on any
leading axes: `xp` is the array module of the inputs.

Shape letters: N and M boxes, ... any leading axes.
"""

import numpy as np


def _xp(array):
  if isinstance(array, (np.ndarray, np.generic)):
    return np
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top  # data loaders never need jax
  return jnp


def from_coco(bbox_Nx4, height, width):
  """Normalised [ymin, xmin, ymax, xmax] of COCO pixel boxes [x, y, w, h] in an image of
  `height` x `width` pixels."""
  bbox = np.asarray(bbox_Nx4, np.float64).reshape(-1, 4)
  x, y, w, h = bbox.T
  return np.stack([y / height, x / width, (y + h) / height, (x + w) / width], -1).astype(np.float32)


def to_coco(boxes_Nx4, height, width):
  """COCO pixel boxes [x, y, w, h] of normalised boxes in an image of height x width."""
  boxes = np.asarray(boxes_Nx4, np.float64).reshape(-1, 4)
  ymin, xmin, ymax, xmax = boxes.T
  return np.stack([xmin * width, ymin * height, (xmax - xmin) * width,
                   (ymax - ymin) * height], -1)


def area(boxes_x4):
  xp = _xp(boxes_x4)
  return (xp.maximum(boxes_x4[..., 2] - boxes_x4[..., 0], 0)
          * xp.maximum(boxes_x4[..., 3] - boxes_x4[..., 1], 0))


def iou_matrix(a_Nx4, b_Mx4):
  """N x M intersection over union (0 where both boxes are empty)."""
  xp = _xp(a_Nx4)
  a, b = a_Nx4[..., :, None, :], b_Mx4[..., None, :, :]
  top_left = xp.maximum(a[..., :2], b[..., :2])
  bottom_right = xp.minimum(a[..., 2:], b[..., 2:])
  overlap = xp.prod(xp.clip(bottom_right - top_left, 0, None), axis=-1)
  union = area(a) + area(b) - overlap
  return overlap / xp.maximum(union, 1e-9)


def giou(a_x4, b_x4):
  """Generalised IoU (Rezatofighi et al. 2019) of paired boxes: IoU minus the share of the
  smallest enclosing box that their union leaves empty; in [-1, 1]."""
  xp = _xp(a_x4)
  top_left = xp.maximum(a_x4[..., :2], b_x4[..., :2])
  bottom_right = xp.minimum(a_x4[..., 2:], b_x4[..., 2:])
  overlap = xp.prod(xp.clip(bottom_right - top_left, 0, None), axis=-1)
  union = area(a_x4) + area(b_x4) - overlap
  enclosing = xp.prod(xp.maximum(a_x4[..., 2:], b_x4[..., 2:])
                      - xp.minimum(a_x4[..., :2], b_x4[..., :2]), axis=-1)
  iou = overlap / xp.maximum(union, 1e-9)
  return iou - (enclosing - union) / xp.maximum(enclosing, 1e-9)


def pad(boxes_Nx4, classes_N, max_boxes):
  """(boxes max_boxes x 4 float32, classes int32, mask float32): the first max_boxes boxes,
  padded with zeros; mask is 1 for a real box."""
  count = min(len(classes_N), max_boxes)
  boxes = np.zeros((max_boxes, 4), np.float32)
  classes = np.zeros((max_boxes,), np.int32)
  mask = np.zeros((max_boxes,), np.float32)
  boxes[:count] = np.asarray(boxes_Nx4, np.float32).reshape(-1, 4)[:count]
  classes[:count] = np.asarray(classes_N)[:count]
  mask[:count] = 1
  return boxes, classes, mask


def features(size, channels, max_boxes):
  """DatasetInfo.features of a detection set of size x size images."""
  return {'image': ((size, size, channels), 'uint8'), 'boxes': ((max_boxes, 4), 'float32'),
          'classes': ((max_boxes,), 'int32'), 'box_mask': ((max_boxes,), 'float32'),
          'image_id': ((), 'int32'), 'image_hw': ((2,), 'float32')}


def example(image, boxes_Nx4, classes_N, max_boxes, image_id, height, width):
  """One detection example (the features above) from an image already fitted to size."""
  boxes, classes, mask = pad(boxes_Nx4, classes_N, max_boxes)
  return {'image': image, 'boxes': boxes, 'classes': classes, 'box_mask': mask,
          'image_id': np.int32(image_id), 'image_hw': np.asarray([height, width], np.float32)}
