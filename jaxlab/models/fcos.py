"""FCOS (Tian et al. 2019), an anchor-free one-stage detector, on jaxlab's ResNets.

image -> ResNet stages C3, C4, C5 (strides 8, 16, 32 with the imagenet stem) -> a small
feature pyramid (1x1 lateral convs, top-down sums of nearest upsampling, 3x3 smoothing:
P3, P4, P5, all `fpn_width` channels) -> one head shared by the levels: a class tower and a
box tower of `head_depth` 3x3 conv + GroupNorm + relu each, then per location C class
logits (bias at the prior 0.01, Lin et al. 2017), 4 distances (top, left, bottom, right
to the box's sides, in units of the level's stride: softplus of a learned per-level
scale times the conv's output) and 1 centerness logit (on the box tower, as FCOS v2).

The output is one array B x N x (C + 5), N the locations of all levels in order (P3
row-major, then P4, P5); `locations` gives their centres and strides, which the
detection task (jaxlab.tasks.detection) uses to assign targets and decode boxes.

`backbone_init=DIR`: the ResNet starts from the weights of a jaxlab classifier's workdir
of the same ResNet (its head is left behind), loaded by the trainer at step 0
(jaxlab.finetune.init_from); the factory only records it.

Shape letters: B batch, H x W spatial, C channels or classes, N locations.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlab.models import layers, resnet

LEVELS = (1, 2, 3)  # C3, C4, C5: ResNet stages 2-4 (0-based 1..3)
PRIOR = 0.01  # initial foreground probability of every class logit


def strides(stem):
  """The stride of each pyramid level for a ResNet stem."""
  base = 4 if stem == 'imagenet' else 1
  return tuple(base * 2 ** level for level in LEVELS)


def level_shapes(image_size, stem):
  """(height, width) of each level's feature map for square images of `image_size`."""
  shapes = []
  size = image_size
  if stem == 'imagenet':
    size = (size + 1) // 2  # the 7x7/2 conv
    size = (size + 1) // 2  # the 3x3/2 max-pool
  for stage in range(4):
    if stage > 0:
      size = (size + 1) // 2
    if stage in LEVELS:
      shapes.append((size, size))
  return shapes


def locations(image_size, stem):
  """(centres N x 2 as normalised (y, x), strides N in pixels) of every output location."""
  centres, location_strides = [], []
  for (h, w), stride in zip(level_shapes(image_size, stem), strides(stem)):
    ys, xs = np.meshgrid((np.arange(h) + 0.5) * stride, (np.arange(w) + 0.5) * stride,
                         indexing='ij')
    centres.append(np.stack([ys.ravel(), xs.ravel()], -1) / image_size)
    location_strides.append(np.full(h * w, stride, np.float32))
  return (np.concatenate(centres).astype(np.float32), np.concatenate(location_strides))


def conv(in_features, out_features, kernel_size, *, dtype, rngs, bias=0.0):
  pad = kernel_size // 2
  return nnx.Conv(
      in_features, out_features, (kernel_size, kernel_size), padding=((pad, pad), (pad, pad)),
      dtype=dtype, kernel_init=nnx.with_partitioning(nnx.initializers.normal(0.01),
                                                     (None, None, 'conv_in', 'conv_out')),
      bias_init=nnx.with_partitioning(nnx.initializers.constant(bias), ('conv_out',)),
      rngs=rngs)


class Tower(nnx.Module):
  """`depth` x (3x3 conv -> GroupNorm -> relu)."""

  def __init__(self, width, depth, *, dtype, rngs):
    self.convs = nnx.List([conv(width, width, 3, dtype=dtype, rngs=rngs) for _ in range(depth)])
    self.norms = nnx.List([nnx.GroupNorm(width, num_groups=min(32, width // 4) or 1,
                                         dtype=dtype, rngs=rngs) for _ in range(depth)])

  def __call__(self, x):
    for conv_, norm in zip(self.convs, self.norms):
      x = jax.nn.relu(norm(conv_(x)))
    return x


class FCOS(nnx.Module):
  """B x N x (C + 5) outputs of images B x H x W x C; build it with `create`."""

  def __init__(self, input_shape, num_classes, *, depth, fpn_width, head_depth, dtype, rngs,
               **backbone_options):
    self.backbone = resnet.create(input_shape, 0, rngs=rngs, depth=depth, dtype=dtype,
                                  **backbone_options)
    make = dict(dtype=dtype, rngs=rngs)
    channels = [self.backbone.stage_features[level] for level in LEVELS]
    self.laterals = nnx.List([conv(c, fpn_width, 1, **make) for c in channels])
    self.smooth = nnx.List([conv(fpn_width, fpn_width, 3, **make) for _ in channels])
    self.class_tower = Tower(fpn_width, head_depth, **make)
    self.box_tower = Tower(fpn_width, head_depth, **make)
    self.class_logits = conv(fpn_width, num_classes, 3, bias=-np.log((1 - PRIOR) / PRIOR),
                             **make)
    self.distances = conv(fpn_width, 4, 3, **make)
    self.centerness = conv(fpn_width, 1, 3, **make)
    self.scales = nnx.Param(jnp.ones((len(LEVELS),), jnp.float32))

  def pyramid(self, x_BxHxWxC):
    stages = self.backbone.features(x_BxHxWxC)
    features = [lateral(stages[level]) for lateral, level in zip(self.laterals, LEVELS)]
    for index in range(len(features) - 2, -1, -1):  # top-down
      upper = features[index + 1]
      up = jnp.repeat(jnp.repeat(upper, 2, axis=1), 2, axis=2)
      height, width = features[index].shape[1:3]
      features[index] = features[index] + up[:, :height, :width]
    return [smooth(f) for smooth, f in zip(self.smooth, features)]

  def __call__(self, x_BxHxWxC):
    outputs = []
    for index, feature in enumerate(self.pyramid(x_BxHxWxC)):
      classes = self.class_logits(self.class_tower(feature))
      box = self.box_tower(feature)
      distances = jax.nn.softplus(self.distances(box) * self.scales[index])
      centerness = self.centerness(box)
      level = jnp.concatenate([classes, distances.astype(classes.dtype),
                               centerness], -1)
      outputs.append(level.reshape(level.shape[0], -1, level.shape[-1]))
    return jnp.concatenate(outputs, axis=1)


DEFAULTS = dict(
    backbone='resnet18',  # resnet18, resnet34 or resnet50
    fpn_width=128,  # channels of the pyramid and of the head
    head_depth=2,  # 3x3 conv + GroupNorm + relu layers in each tower (FCOS uses 4)
    backbone_init='',  # a jaxlab workdir of the same ResNet to start from ('': random init)
)


def create(input_shape, num_classes, *, rngs, dtype=jnp.float32, **options):
  """FCOS for square images of `input_shape` = (S, S, C) and `num_classes` classes; other
  options (stem, width, bn_momentum, pixel_mean, ...) go to the ResNet."""
  settings = {**DEFAULTS, **options}
  backbone = settings.pop('backbone')
  settings.pop('backbone_init')  # loaded by the trainer (jaxlab.finetune.init_from)
  depths = {f'resnet{d}': d for d in resnet.STAGE_BLOCKS}
  if backbone not in depths:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'--config.model.backbone={backbone!r} is not a ResNet jaxlab has; use one '
                    f'of {", ".join(depths)}.')
  layers.check_options('fcos', dict(fpn_width=settings['fpn_width'],
                                    head_depth=settings['head_depth']),
                       counts=('fpn_width', 'head_depth'))
  return FCOS(tuple(input_shape), num_classes, depth=depths[backbone], dtype=dtype, rngs=rngs,
              **settings)
