"""FCOS's targets and losses (Tian et al. 2019), compiled: which box each location learns,
and the loss of a batch of outputs against padded ground-truth boxes.

A location learns a box when its centre lies inside the box, within `center_radius`
strides of the box's centre (centre sampling), and the largest of its distances to the
box's sides falls in its level's range: [2s, 4s] for stride s, open-ended below at the
finest level and above at the coarsest. Of several such boxes it learns the smallest.

Losses, each summed over the batch and divided by the batch's positive locations:
sigmoid focal loss of the class logits (optax.sigmoid_focal_loss; every location, one-hot
targets, all zero for background), GIoU loss of the decoded boxes weighted by the
centerness target (and normalised by its sum), binary cross-entropy of the centerness,
and optionally L1 of the distances in stride units.

Shape letters: B batch, N locations, M boxes, C classes.
"""

import jax
import jax.numpy as jnp
import optax

from jaxlab.data import boxes as boxes_lib


def split_outputs(outputs_BxNxK, num_classes):
  """(class logits B x N x C, distances B x N x 4 in strides, centerness logits B x N)."""
  return (outputs_BxNxK[..., :num_classes], outputs_BxNxK[..., num_classes:num_classes + 4],
          outputs_BxNxK[..., num_classes + 4])


def decode_boxes(distances_xNx4, centres_Nx2, strides_N, image_size):
  """Normalised [ymin, xmin, ymax, xmax] of (top, left, bottom, right) distances in strides."""
  scaled = distances_xNx4 * (strides_N / image_size)[:, None]
  return jnp.concatenate([centres_Nx2 - scaled[..., :2], centres_Nx2 + scaled[..., 2:]], -1)


def level_ranges(strides_N):
  """(lower, upper) of each location's regression range, in pixels."""
  lower = jnp.where(strides_N == strides_N.min(), 0.0, 2.0 * strides_N)
  upper = jnp.where(strides_N == strides_N.max(), jnp.inf, 4.0 * strides_N)
  return lower, upper


def assign(centres_Nx2, strides_N, boxes_Mx4, mask_M, image_size, center_radius):
  """(positive N bool, matched box index N, distances to it N x 4 in pixels) of one image."""
  centre_px = centres_Nx2[:, None, :] * image_size  # N x 1 x 2
  box_px = boxes_Mx4[None] * image_size  # 1 x M x 4
  distances = jnp.concatenate([centre_px - box_px[..., :2], box_px[..., 2:] - centre_px], -1)
  box_centre = (box_px[..., :2] + box_px[..., 2:]) / 2
  radius = center_radius * strides_N[:, None, None]
  near_centre = jnp.all(jnp.abs(centre_px - box_centre) < radius, -1)
  largest = distances.max(-1)
  lower, upper = level_ranges(strides_N)
  candidate = ((distances.min(-1) > 0) & near_centre & (largest >= lower[:, None])
               & (largest <= upper[:, None]) & (mask_M[None] > 0))
  area = jnp.where(candidate, boxes_lib.area(box_px)[0][None, :], jnp.inf)
  matched = jnp.argmin(area, axis=1)
  positive = candidate.any(axis=1)
  return positive, matched, jnp.take_along_axis(distances, matched[:, None, None], 1)[:, 0]


def centerness(distances_Nx4):
  """sqrt(min(t, b) / max(t, b) * min(l, r) / max(l, r)) of distances (t, l, b, r)."""
  t, l, b, r = (distances_Nx4[..., i] for i in range(4))
  ratio = (jnp.minimum(t, b) / jnp.maximum(jnp.maximum(t, b), 1e-9)
           * jnp.minimum(l, r) / jnp.maximum(jnp.maximum(l, r), 1e-9))
  return jnp.sqrt(jnp.clip(ratio, 0.0, 1.0))


def targets(batch, centres_Nx2, strides_N, image_size, num_classes, center_radius):
  """{positive B x N, classes B x N x C one-hot, boxes B x N x 4, distances B x N x 4
  (strides), centerness B x N} of a batch."""
  def one(boxes_Mx4, classes_M, mask_M):
    positive, matched, distances = assign(centres_Nx2, strides_N, boxes_Mx4, mask_M, image_size,
                                          center_radius)
    onehot = jax.nn.one_hot(classes_M[matched], num_classes) * positive[:, None]
    return dict(positive=positive, classes=onehot, boxes=boxes_Mx4[matched],
                distances=distances / strides_N[:, None], centerness=centerness(distances))
  return jax.vmap(one)(batch['boxes'], batch['classes'], batch['box_mask'])


def loss(outputs_BxNxK, batch, layout, settings):
  """(scalar loss, {name: scalar} metrics) of a batch; `layout` is (centres, strides,
  image_size, num_classes), `settings` the task's focal/box options."""
  centres, strides, image_size, num_classes = layout
  logits, distances, centerness_logits = split_outputs(outputs_BxNxK.astype(jnp.float32),
                                                       num_classes)
  target = targets(batch, centres, strides, image_size, num_classes, settings['center_radius'])
  example = batch['mask'][:, None] if 'mask' in batch else jnp.ones(logits.shape[:1])[:, None]
  positive = target['positive'] * example  # B x N
  count = jnp.maximum(positive.sum(), 1.0)
  focal = optax.sigmoid_focal_loss(logits, target['classes'], alpha=settings['focal_alpha'],
                                   gamma=settings['focal_gamma'])
  class_loss = (focal.sum(-1) * example).sum() / count
  predicted = decode_boxes(distances, centres, strides, image_size)
  weight = target['centerness'] * positive
  giou = boxes_lib.giou(predicted, target['boxes'])
  box_loss = ((1 - giou) * weight).sum() / jnp.maximum(weight.sum(), 1e-6)
  bce = optax.sigmoid_binary_cross_entropy(centerness_logits, target['centerness'])
  centerness_loss = (bce * positive).sum() / count
  l1 = (jnp.abs(distances - target['distances']).sum(-1) * positive).sum() / count
  total = class_loss + box_loss + centerness_loss + settings['box_l1_weight'] * l1
  return total, {'class_loss': class_loss, 'box_loss': box_loss,
                 'centerness_loss': centerness_loss, 'positives': positive.sum() / example.sum()}
