"""Boxes out of a dense detector's outputs, compiled and of fixed size: score threshold,
top-k, class-wise non-maximum suppression, top-k again. No host loop per image, so it
runs inside the eval step and inside an exported model.

`nms` is greedy NMS exactly (the boxes visited in descending score; each kept box
suppresses the later boxes of its class overlapping it by more than the IoU threshold),
as a `fori_loop` over a fixed K x K IoU matrix.

Shape letters: B batch, N locations, C classes, K candidates, D detections.
"""

import jax
import jax.numpy as jnp
from jax import lax

from jaxlab.data import boxes as boxes_lib


def nms(boxes_Kx4, classes_K, valid_K, iou_threshold):
  """Which of K candidates, sorted by descending score, greedy class-wise NMS keeps."""
  same_class = classes_K[:, None] == classes_K[None, :]
  later = jnp.arange(len(classes_K))[:, None] < jnp.arange(len(classes_K))[None, :]
  suppresses_KxK = (boxes_lib.iou_matrix(boxes_Kx4, boxes_Kx4) > iou_threshold) & same_class & later

  def visit(i, keep_K):
    return keep_K & ~(keep_K[i] & suppresses_KxK[i])

  return lax.fori_loop(0, len(classes_K), visit, valid_K)


def decode_one(scores_NxC, boxes_Nx4, *, score_threshold, pre_nms_top_k, iou_threshold,
               max_detections):
  """{boxes D x 4, scores D, classes D, valid D} of one image, by descending score."""
  num_classes = scores_NxC.shape[1]
  k = min(pre_nms_top_k, scores_NxC.size)
  scores_K, flat_K = lax.top_k(scores_NxC.reshape(-1), k)
  location_K, classes_K = flat_K // num_classes, flat_K % num_classes
  boxes_Kx4 = boxes_Nx4[location_K]
  keep_K = nms(boxes_Kx4, classes_K, scores_K > score_threshold, iou_threshold)
  d = min(max_detections, k)
  kept_scores, order = lax.top_k(jnp.where(keep_K, scores_K, -1.0), d)
  valid = kept_scores > 0
  return {'boxes': jnp.where(valid[:, None], boxes_Kx4[order], 0.0),
          'scores': jnp.where(valid, kept_scores, 0.0),
          'classes': jnp.where(valid, classes_K[order], 0).astype(jnp.int32),
          'valid': valid}


def decode(scores_BxNxC, boxes_BxNx4, **settings):
  """decode_one over a batch; outputs padded to max_detections (or fewer candidates)."""
  return jax.vmap(lambda s, b: decode_one(s, b, **settings))(scores_BxNxC, boxes_BxNx4)


def settings(task_config):
  """decode's keyword arguments from config.task."""
  return dict(score_threshold=float(task_config.score_threshold),
              pre_nms_top_k=int(task_config.pre_nms_top_k),
              iou_threshold=float(task_config.nms_iou),
              max_detections=int(task_config.max_detections))
