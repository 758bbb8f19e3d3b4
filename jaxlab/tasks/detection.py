"""Object detection (`task.name=detection`): an image -> boxes, each with a class and a score.

A batch holds 'image' (uint8 S x S x C), up to data.max_boxes 'boxes' (normalised [ymin,
xmin, ymax, xmax]), their 'classes' and 'box_mask' (1 for a real box, 0 for padding),
'image_id' and 'image_hw' (the original height and width). The model is a dense detector
whose outputs follow FCOS's layout (`jaxlab.models.fcos`: per location C class logits, 4
distances, 1 centerness logit).

Training: data.augment ('crop', 'flip', 'scale_jitter') moves boxes with the pixels on the
device (`jaxlab.data.box_augment`); the losses are FCOS's (`jaxlab.tasks.fcos_targets`).
Eval and predict decode boxes inside the compiled step (`jaxlab.tasks.box_decoding`);
eval scores them with COCO's evaluator on the host (`jaxlab.tasks.coco_metrics`).
Predictions are boxes in the input image's pixels, COCO's [x, y, width, height], with
a class and a score: every box above task.score_threshold, at most task.max_detections
(`--top_k` does not cut them).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.data import box_augment
from jaxlab.errors import UserError
from jaxlab.models import fcos
from jaxlab.tasks import base, box_decoding, coco_metrics, fcos_targets

FEATURES = ('image', 'boxes', 'classes', 'box_mask', 'image_id', 'image_hw')


class Detection(base.Task):
  metric_names = coco_metrics.NAMES

  def __init__(self, config, info, **kwargs):
    super().__init__(config, info, **kwargs)
    missing = [name for name in FEATURES if name not in info.features]
    if missing or not info.num_classes:
      raise UserError(f'The detection task needs images with boxes; {info.name!r} has features '
                      f'{sorted(info.features)}. Use a detection data set (--config.data.name='
                      'coco_json with --config.data.path=DIR, shapes_detection, coco or voc).')
    height, width, _ = info.image_shape
    if height != width:
      raise UserError(f'The detection task takes square images; {info.name!r} gives {height} x '
                      f'{width}. Set --config.data.image_size.')
    self.image_size = height
    stem = config.model.get('stem', 'imagenet')
    centres, strides = fcos.locations(height, stem)
    self.layout = (jnp.asarray(centres), jnp.asarray(strides), float(height), info.num_classes)
    self.augment = tuple(name for name in config.data.augment)
    unknown = sorted(set(self.augment) - set(box_augment.NAMES))
    if unknown:
      raise UserError(f'--config.data.augment={self.augment}: {unknown} cannot move boxes; use '
                      f'{", ".join(box_augment.NAMES)}.')
    task = config.task
    self.loss_settings = dict(focal_alpha=float(task.focal_alpha),
                              focal_gamma=float(task.focal_gamma),
                              box_l1_weight=float(task.box_l1_weight),
                              center_radius=float(task.center_radius))
    self.decoding = box_decoding.settings(task)
    ids = (info.preprocessing or {}).get('category_ids')
    self.category_ids = tuple(ids) if ids else tuple(range(1, info.num_classes + 1))

  # --- shapes ---------------------------------------------------------------------------

  def batch_spec(self):
    spec = self.info.spec()
    return {name: spec[name] for name in FEATURES}

  def model_signature(self):
    return self.info.image_shape, self.info.num_classes

  # --- compiled ---------------------------------------------------------------------------

  def train_batch(self, batch, key):
    if not self.augment:
      return batch
    image, boxes, box_mask = box_augment.augment(self.augment, batch['image'], batch['boxes'],
                                                 batch['box_mask'], key)
    return dict(batch, image=image, boxes=boxes, box_mask=box_mask)

  def model_inputs(self, batch, key, *, train):
    del key, train  # augmentation is train_batch's: it moves the boxes too
    x = batch['image'].astype(jnp.float32) / self.info.pixel_max
    return (x.astype(self.compute_dtype),), {}

  def loss(self, outputs, batch):
    return fcos_targets.loss(outputs, batch, self.layout, self.loss_settings)

  def detections(self, outputs):
    """Decoded boxes (normalised, clipped to the image) of the model's outputs."""
    centres, strides, image_size, num_classes = self.layout
    logits, distances, centerness = fcos_targets.split_outputs(outputs.astype(jnp.float32),
                                                               num_classes)
    scores = jnp.sqrt(jax.nn.sigmoid(logits) * jax.nn.sigmoid(centerness)[..., None])
    boxes = jnp.clip(fcos_targets.decode_boxes(distances, centres, strides, image_size), 0, 1)
    return box_decoding.decode(scores, boxes, **self.decoding)

  def eval_outputs(self, outputs, batch):
    return dict(self.detections(outputs), gt_boxes=batch['boxes'], gt_classes=batch['classes'],
                gt_mask=batch['box_mask'], image_id=batch['image_id'], image_hw=batch['image_hw'])

  def predict_outputs(self, outputs, batch):
    found = self.detections(outputs)
    height, width = batch['image_hw'][:, 0:1, None], batch['image_hw'][:, 1:2, None]
    scale = jnp.concatenate([height, width, height, width], -1)
    return dict(found, boxes=found['boxes'] * scale)  # pixels, [ymin, xmin, ymax, xmax]

  # --- host -----------------------------------------------------------------------------

  def eval_metrics(self, outputs):
    return coco_metrics.evaluate(outputs, self.category_ids)

  def eval_line(self, metrics):
    return ', '.join(f'{name} {metrics[name]:.4f}' for name in ('mAP', 'AP50', 'AP75'))

  def predict_spec(self):
    return {'image': (self.info.image_shape, np.dtype(np.float32)),
            'image_hw': ((2,), np.dtype(np.float32))}

  def predict_inputs(self, paths):
    from jaxlab.tasks import detection_inputs
    found, errors = detection_inputs.read_files(paths)
    batch, readable, unreadable = detection_inputs.batch_of(found, self.info)
    return batch, readable, dict(errors, **unreadable)

  def file_batch(self, named_bytes):
    """(batch, readable names, {name: error}) of uploaded files (jaxlab serve)."""
    from jaxlab.tasks import detection_inputs
    return detection_inputs.batch_of(named_bytes, self.info)

  def predictions(self, outputs, top_k):
    del top_k  # every box above task.score_threshold (see the module docstring)
    result = []
    for boxes, scores, classes, valid in zip(outputs['boxes'], outputs['scores'],
                                             outputs['classes'], outputs['valid']):
      detections = []
      for (ymin, xmin, ymax, xmax), score, label in zip(boxes[valid > 0], scores[valid > 0],
                                                        classes[valid > 0]):
        box = [round(float(v), 2) for v in (xmin, ymin, xmax - xmin, ymax - ymin)]
        detections.append(dict(label=int(label), name=self.info.label_name(int(label)),
                               score=round(float(score), 4), box=box))
      result.append({'detections': detections})
    return result

  def prediction_line(self, prediction):
    found = prediction['detections']
    shown = '; '.join(f'{d["name"]} {d["score"]:.2f} at [{", ".join(f"{v:g}" for v in d["box"])}]'
                      for d in found)
    return f'{len(found)} box{"es" if len(found) != 1 else ""}' + (f': {shown}' if found else '')

  def draw(self, path, prediction, out_path):
    """Writes `path` with its predicted boxes drawn and labelled to `out_path` (PNG)."""
    from jaxlab.tasks import detection_inputs
    return detection_inputs.draw(path, prediction, out_path)
