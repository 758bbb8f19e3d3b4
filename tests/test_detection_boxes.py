"""Box geometry, box-moving augmentation, compiled NMS and the COCO metrics: each checked
against a direct computation (pixels found by thresholding, a plain NumPy NMS, ground
truth fed back as predictions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.data import box_augment
from jaxlab.data import boxes as boxes_lib
from jaxlab.tasks import box_decoding, coco_metrics


def random_boxes(rng, count, low=0.0, high=1.0, min_size=0.05):
  start = rng.uniform(low, high - min_size, (count, 2))
  size = rng.uniform(min_size, 0.5, (count, 2))
  return np.concatenate([start, np.minimum(start + size, high)], -1).astype(np.float32)


def test_coco_pixel_boxes_round_trip_through_normalised_boxes():
  rng = np.random.default_rng(0)
  xywh = np.concatenate([rng.uniform(0, 100, (20, 2)), rng.uniform(1, 60, (20, 2))], -1)
  normalised = boxes_lib.from_coco(xywh, 170, 230)
  np.testing.assert_allclose(boxes_lib.to_coco(normalised, 170, 230), xywh, atol=1e-3)
  np.testing.assert_allclose(normalised[0], [xywh[0, 1] / 170, xywh[0, 0] / 230,
                                             (xywh[0, 1] + xywh[0, 3]) / 170,
                                             (xywh[0, 0] + xywh[0, 2]) / 230], rtol=1e-6)


def test_iou_and_giou_of_known_boxes_on_numpy_and_jax():
  a = np.array([[0, 0, 2, 2]], np.float32)
  b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [3, 3, 4, 4]], np.float32)
  np.testing.assert_allclose(boxes_lib.iou_matrix(a, b), [[1 / 7, 1, 0]], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(boxes_lib.iou_matrix(jnp.asarray(a), jnp.asarray(b))),
                             [[1 / 7, 1, 0]], rtol=1e-6)
  # Disjoint boxes: GIoU = 0 - (16 - 5) / 16.
  np.testing.assert_allclose(boxes_lib.giou(a[0], b[2]), -11 / 16, rtol=1e-6)


@pytest.mark.parametrize('names', [('crop',), ('scale_jitter',), ('flip',),
                                   ('crop', 'flip', 'scale_jitter')])
def test_box_transforms_are_invertible(names):
  boxes = jnp.asarray(random_boxes(np.random.default_rng(1), 16))
  for seed in range(8):
    window = box_augment.random_window(names, jax.random.PRNGKey(seed))
    mapped = box_augment.map_boxes(boxes, window)
    np.testing.assert_allclose(box_augment.unmap_boxes(mapped, window), boxes, atol=1e-5)


def painted(size, boxes):
  """A size x size x 1 image, 255 inside each box (pixel-aligned), 0 elsewhere."""
  image = np.zeros((size, size, 1), np.float32)
  for ymin, xmin, ymax, xmax in np.round(np.asarray(boxes) * size).astype(int):
    image[ymin:ymax, xmin:xmax] = 255
  return image


def pixel_box(image, size):
  """The normalised box of the pixels brighter than half."""
  ys, xs = np.nonzero(np.asarray(image)[..., 0] > 127)
  return np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]) / size


@pytest.mark.parametrize('names', [('crop',), ('flip',), ('scale_jitter',),
                                   ('crop', 'flip', 'scale_jitter')])
def test_crops_flips_and_jitter_move_boxes_exactly_with_the_pixels(names):
  size = 64
  rng = np.random.default_rng(2)
  checked = 0
  for seed in range(12):
    box = np.round(random_boxes(rng, 1, 0.1, 0.9, 0.2) * size) / size  # on pixel edges
    image, boxes, mask = box_augment.apply_window(
        jnp.asarray(painted(size, box)), jnp.asarray(box), jnp.ones(1),
        box_augment.random_window(names, jax.random.PRNGKey(seed)))
    if float(mask[0]) == 0:  # dropped: almost nothing of it is left in the output
      continue
    # The box the pixels show is where the transformed box says, to a pixel (bilinear
    # resampling blurs an edge by at most one output pixel).
    np.testing.assert_allclose(pixel_box(image, size), np.asarray(boxes[0]), atol=1.01 / size)
    checked += 1
  assert checked >= 6


def test_a_box_that_leaves_the_window_is_dropped_and_one_cut_by_it_is_clipped():
  boxes = jnp.asarray([[0.05, 0.05, 0.15, 0.15], [0.4, 0.4, 0.8, 0.8]], jnp.float32)
  window = jnp.asarray([0.3, 0.3, 0.7, 0.7])  # a 2x zoom on the centre
  _, moved, mask = box_augment.apply_window(jnp.zeros((32, 32, 3)), boxes, jnp.ones(2), window)
  np.testing.assert_array_equal(np.asarray(mask), [0, 1])
  np.testing.assert_allclose(np.asarray(moved[1]), [0.25, 0.25, 1.0, 1.0], atol=1e-6)


def numpy_nms(boxes, scores, classes, threshold):
  """Greedy class-wise NMS, the textbook loop: indices kept, by descending score."""
  order = list(np.argsort(-scores, kind='stable'))
  kept = []
  while order:
    best = order.pop(0)
    kept.append(best)
    order = [i for i in order if classes[i] != classes[best]
             or boxes_lib.iou_matrix(boxes[best:best + 1], boxes[i:i + 1])[0, 0] <= threshold]
  return kept


@pytest.mark.parametrize('seed', range(5))
def test_compiled_nms_equals_a_plain_numpy_nms_on_random_boxes(seed):
  rng = np.random.default_rng(seed)
  count = 60
  boxes = random_boxes(rng, count, min_size=0.1)
  scores = rng.permutation(count).astype(np.float32) / count + 0.01  # distinct
  classes = rng.integers(0, 3, count).astype(np.int32)
  order = np.argsort(-scores, kind='stable')
  keep = jax.jit(box_decoding.nms, static_argnums=3)(
      jnp.asarray(boxes[order]), jnp.asarray(classes[order]), jnp.ones(count, bool), 0.5)
  assert sorted(order[np.asarray(keep)].tolist()) == sorted(numpy_nms(boxes, scores, classes, 0.5))


def test_decoding_keeps_the_best_box_per_object_and_pads_to_a_fixed_size():
  boxes = np.array([[0.1, 0.1, 0.4, 0.4], [0.11, 0.1, 0.41, 0.4], [0.6, 0.6, 0.9, 0.9]],
                   np.float32)
  scores = np.zeros((3, 2), np.float32)
  scores[0, 1], scores[1, 1], scores[2, 0] = 0.9, 0.8, 0.7  # 1 duplicates 0
  found = box_decoding.decode(jnp.asarray(scores[None]), jnp.asarray(boxes[None]),
                              score_threshold=0.05, pre_nms_top_k=6, iou_threshold=0.6,
                              max_detections=5)
  assert found['boxes'].shape == (1, 5, 4) and found['valid'].shape == (1, 5)
  np.testing.assert_array_equal(np.asarray(found['valid'][0]), [1, 1, 0, 0, 0])
  np.testing.assert_array_equal(np.asarray(found['classes'][0, :2]), [1, 0])
  np.testing.assert_allclose(np.asarray(found['boxes'][0, :2]), boxes[[0, 2]])


def ground_truth_outputs(rng, images=6, max_boxes=5):
  gt = np.zeros((images, max_boxes, 4), np.float32)
  classes = rng.integers(0, 4, (images, max_boxes)).astype(np.int32)
  mask = np.zeros((images, max_boxes), np.float32)
  for i in range(images):
    count = int(rng.integers(1, max_boxes + 1))
    gt[i, :count] = random_boxes(rng, count, min_size=0.05)
    mask[i, :count] = 1
  return dict(gt_boxes=gt, gt_classes=classes, gt_mask=mask,
              image_id=np.arange(1, images + 1, dtype=np.int32),
              image_hw=rng.uniform(60, 900, (images, 2)).astype(np.float32))


def test_the_map_of_ground_truth_fed_back_as_predictions_is_one():
  outputs = ground_truth_outputs(np.random.default_rng(3))
  outputs.update(boxes=outputs['gt_boxes'], classes=outputs['gt_classes'],
                 valid=outputs['gt_mask'], scores=outputs['gt_mask'] * 0.9)
  metrics = coco_metrics.evaluate(outputs, category_ids=(1, 3, 7, 8))  # ids with gaps
  assert metrics['mAP'] == pytest.approx(1.0) and metrics['AP50'] == pytest.approx(1.0)
  assert metrics['AP75'] == pytest.approx(1.0)


def test_shifted_or_missing_predictions_score_below_one():
  outputs = ground_truth_outputs(np.random.default_rng(4))
  shifted = outputs['gt_boxes'] + np.array([0.02, 0.02, 0.02, 0.02], np.float32)
  outputs.update(boxes=shifted, classes=outputs['gt_classes'], valid=outputs['gt_mask'],
                 scores=outputs['gt_mask'] * 0.9)
  assert coco_metrics.evaluate(outputs, (1, 2, 3, 4))['mAP'] < 0.9
  outputs.update(valid=np.zeros_like(outputs['gt_mask']))
  assert coco_metrics.evaluate(outputs, (1, 2, 3, 4))['mAP'] == 0.0
