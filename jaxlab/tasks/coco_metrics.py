"""COCO's detection metrics, from pycocotools' `COCOeval` (the evaluator papers report), on
boxes mapped back to each image's pixels.

The ground truth is the test set's padded boxes (data.max_boxes per image, as the task
saw them) scaled to the image's original height and width; a box's area is its width x
height (COCO's own files give the segment's area, so APs/m/l of COCO itself differ a
little from the official figures). Metrics: mAP (AP at IoU .50:.05:.95), AP50, AP75, and
AP of small (< 32² pixels), medium and large objects; -1 where the test set has no such
object, as pycocotools reports it.
"""

import contextlib
import io

import numpy as np

from jaxlab.data import boxes as boxes_lib

NAMES = ('mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl')


def coco_records(outputs, category_ids):
  """(ground-truth dataset dict, detection list) in COCO's JSON form, in pixels."""
  images, annotations, detections = [], [], []
  for i, image_id in enumerate(np.asarray(outputs['image_id']).tolist()):
    height, width = (float(v) for v in outputs['image_hw'][i])
    images.append(dict(id=image_id, height=height, width=width))
    real = np.asarray(outputs['gt_mask'][i]) > 0
    for box, label in zip(boxes_lib.to_coco(outputs['gt_boxes'][i][real], height, width),
                          np.asarray(outputs['gt_classes'][i])[real]):
      annotations.append(dict(id=len(annotations) + 1, image_id=image_id, iscrowd=0,
                              category_id=category_ids[int(label)], bbox=box.tolist(),
                              area=float(box[2] * box[3])))
    kept = np.asarray(outputs['valid'][i]) > 0
    for box, label, score in zip(boxes_lib.to_coco(outputs['boxes'][i][kept], height, width),
                                 np.asarray(outputs['classes'][i])[kept],
                                 np.asarray(outputs['scores'][i])[kept]):
      detections.append(dict(image_id=image_id, category_id=category_ids[int(label)],
                             bbox=box.tolist(), score=float(score)))
  categories = [dict(id=c, name=str(c)) for c in category_ids]
  return dict(images=images, annotations=annotations, categories=categories), detections


def evaluate(outputs, category_ids):
  """{mAP, AP50, AP75, APs, APm, APl} of per-example outputs (numpy): detections 'boxes'
  (normalised), 'scores', 'classes', 'valid'; ground truth 'gt_boxes', 'gt_classes',
  'gt_mask'; 'image_id' and 'image_hw'."""
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  from pycocotools.cocoeval import COCOeval  # pylint: disable=g-import-not-at-top
  if not len(outputs.get('image_id', ())):
    return {name: float('nan') for name in NAMES}
  dataset, detections = coco_records(outputs, list(category_ids))
  with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
    ground_truth = COCO()
    ground_truth.dataset = dataset
    ground_truth.createIndex()
    if not detections or not dataset['annotations']:
      return {name: 0.0 if dataset['annotations'] else -1.0 for name in NAMES}
    evaluator = COCOeval(ground_truth, ground_truth.loadRes(detections), 'bbox')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  return {name: float(value) for name, value in zip(NAMES, evaluator.stats[:6])}
