"""On-device augmentation of detection batches that moves the boxes with the pixels: pure
functions of (images, boxes, mask, key), compiled into the training step.

Every augmentation is a *window* [y0, x0, y1, x1] of the source image, in normalised
coordinates, that becomes the whole output image: a random resized crop is a window inside
[0, 1]; scale jitter grows or shrinks it around a random place (a window wider than the
image zooms out, and what lies outside the image is black); a flip swaps x0 and x1. The
pixels are resampled bilinearly in one pass (two interpolation matrices, `resample`), and
each box is mapped by the same affine map (`map_boxes`), so both move exactly together.
A box is clipped to the output and dropped (its mask set to 0) when less than
`MIN_VISIBLE` of its area remains.

Names for data.augment: 'crop', 'flip', 'scale_jitter' (applied in that order, as one window).
Shape letters: B batch, S output side, H x W input, C channels, M boxes.
"""

import jax
import jax.numpy as jnp

CROP_AREA = (0.3, 1.0)  # a random resized crop keeps this share of the image's area...
CROP_ASPECT = (3 / 4, 4 / 3)  # ...with its width / height in this range
JITTER_ZOOM = (0.6, 1.5)  # scale jitter: the content shrinks (< 1) or grows (> 1) this much
MIN_VISIBLE = 0.3  # a box keeps at least this share of its area, else it is dropped
IDENTITY = jnp.array([0.0, 0.0, 1.0, 1.0])
NAMES = ('crop', 'flip', 'scale_jitter')


def crop_window(key):
  """A random resized crop: a window inside [0, 1]^2 of CROP_AREA and CROP_ASPECT."""
  area_key, aspect_key, y_key, x_key = jax.random.split(key, 4)
  area = jax.random.uniform(area_key, (), minval=CROP_AREA[0], maxval=CROP_AREA[1])
  log_aspect = jax.random.uniform(aspect_key, (), minval=jnp.log(CROP_ASPECT[0]),
                                  maxval=jnp.log(CROP_ASPECT[1]))
  height = jnp.minimum(jnp.sqrt(area / jnp.exp(log_aspect)), 1.0)
  width = jnp.minimum(jnp.sqrt(area * jnp.exp(log_aspect)), 1.0)
  y0 = jax.random.uniform(y_key, ()) * (1 - height)
  x0 = jax.random.uniform(x_key, ()) * (1 - width)
  return jnp.stack([y0, x0, y0 + height, x0 + width])


def jitter_window(window, key):
  """`window` scaled by 1 / zoom (zoom in JITTER_ZOOM) at a random place that keeps the
  old window inside the new one (zooming out) or the new inside the old (zooming in)."""
  zoom_key, place_key = jax.random.split(key)
  zoom = jnp.exp(jax.random.uniform(zoom_key, (), minval=jnp.log(JITTER_ZOOM[0]),
                                    maxval=jnp.log(JITTER_ZOOM[1])))
  size = window[2:] - window[:2]
  new_size = size / zoom
  slack = size - new_size  # > 0 zooming in, < 0 zooming out
  start = window[:2] + jax.random.uniform(place_key, (2,)) * slack
  return jnp.concatenate([start, start + new_size])


def flip_window(window, key):
  """Swaps x0 and x1 with probability 1/2: the output is mirrored left-right."""
  flip = jax.random.bernoulli(key, 0.5)
  return jnp.where(flip, window[jnp.array([0, 3, 2, 1])], window)


def random_window(names, key):
  window = IDENTITY
  crop_key, jitter_key, flip_key = jax.random.split(key, 3)
  if 'crop' in names:
    window = crop_window(crop_key)
  if 'scale_jitter' in names:
    window = jitter_window(window, jitter_key)
  if 'flip' in names:
    window = flip_window(window, flip_key)
  return window


def _interpolation(start, stop, out_size, in_size):
  """out_size x in_size bilinear weights sampling [start, stop] (normalised) of an axis of
  in_size pixels; rows of points outside the input are zero."""
  centres = start + (jnp.arange(out_size) + 0.5) / out_size * (stop - start)
  position = centres * in_size - 0.5  # in input pixel indices
  return jnp.maximum(0.0, 1.0 - jnp.abs(position[:, None] - jnp.arange(in_size)[None, :]))


def resample(image_HxWxC, window, out_size):
  """The window of one image as out_size x out_size (float32)."""
  height, width, _ = image_HxWxC.shape
  rows = _interpolation(window[0], window[2], out_size, height)
  cols = _interpolation(window[1], window[3], out_size, width)
  return jnp.einsum('ih,hwc,jw->ijc', rows, image_HxWxC.astype(jnp.float32), cols)


def map_boxes(boxes_Mx4, window):
  """Boxes in the coordinates of the window's output (not clipped)."""
  start, size = window[:2], window[2:] - window[:2]
  a = (boxes_Mx4[:, :2] - start) / size
  b = (boxes_Mx4[:, 2:] - start) / size
  return jnp.concatenate([jnp.minimum(a, b), jnp.maximum(a, b)], -1)


def unmap_boxes(boxes_Mx4, window):
  """The inverse of map_boxes: output coordinates back to the source's."""
  start, size = window[:2], window[2:] - window[:2]
  a = boxes_Mx4[:, :2] * size + start
  b = boxes_Mx4[:, 2:] * size + start
  return jnp.concatenate([jnp.minimum(a, b), jnp.maximum(a, b)], -1)


def clip_boxes(boxes_Mx4, mask_M):
  """(boxes clipped to [0, 1], mask without those that kept < MIN_VISIBLE of their area)."""
  from jaxlab.data import boxes as boxes_lib
  clipped = jnp.clip(boxes_Mx4, 0.0, 1.0)
  visible = boxes_lib.area(clipped) / jnp.maximum(boxes_lib.area(boxes_Mx4), 1e-9)
  kept = (visible >= MIN_VISIBLE) & (boxes_lib.area(clipped) > 0)
  return jnp.where(kept[:, None], clipped, 0.0), mask_M * kept


def apply_window(image, boxes, mask, window):
  """(image, boxes, mask) of one example seen through `window`."""
  out = resample(image, window, image.shape[0])
  boxes, mask = clip_boxes(map_boxes(boxes, window), mask)
  return out, boxes, mask


def augment(names, images_BxSxSxC, boxes_BxMx4, mask_BxM, key):
  """(images float32, boxes, mask) of a batch, each example through its own random window."""
  keys = jax.random.split(key, images_BxSxSxC.shape[0])
  windows = jax.vmap(lambda k: random_window(names, k))(keys)
  return jax.vmap(apply_window)(images_BxSxSxC, boxes_BxMx4, mask_BxM, windows)
