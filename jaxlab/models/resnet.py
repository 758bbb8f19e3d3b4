"""ResNet v1.5 (He et al. 2016; the stride on the 3x3 conv, as in torchvision and Flax's
ImageNet example): resnet18 and resnet34 of BasicBlocks, resnet50 of Bottlenecks.

x -> stem -> 4 stages of residual blocks (widths w, 2w, 4w, 8w; x4 for Bottlenecks)
-> global average pool -> Dense -> logits.

stem='imagenet': 7x7/2 conv + 3x3/2 max-pool (224 x 224 inputs); stem='cifar': one 3x3
conv of stride 1 and no pool, for 32 x 32 inputs. The last BatchNorm scale of each
residual branch starts at zero, so every block starts as the identity (Goyal et al.).

Batch statistics are `nnx.BatchStat` model state, not parameters: the train graph
normalises with the batch's statistics and updates the running averages; the eval graph
(`model.eval()`) uses the running averages. Under `jax.jit` with a batch sharded over
data-parallel devices, the batch mean is a mean over the global batch: no axis_name.

Shape letters: B batch, H x W spatial, C channels.
"""

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers, vit
from jaxlab.models.conv import conv_general_dilated_canonical_vjp

STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
BOTTLENECK_DEPTHS = (50,)
STEMS = ('imagenet', 'cifar')
EXPANSION = 4  # a Bottleneck's output is 4x its inner width


def conv(in_features, out_features, kernel_size, stride=1, *, init, dtype, rngs):
  """A bias-free KxK conv padded by K // 2 on each side (torchvision's padding)."""
  pad = kernel_size // 2
  return nnx.Conv(
      in_features, out_features, (kernel_size, kernel_size), (stride, stride),
      padding=((pad, pad), (pad, pad)), use_bias=False, dtype=dtype,
      kernel_init=layers.kernel_init(init, (None, None, 'conv_in', 'conv_out')),
      conv_general_dilated=conv_general_dilated_canonical_vjp, rngs=rngs)


def batch_norm(features, *, momentum, zero_scale=False, dtype, rngs):
  scale = nnx.initializers.zeros_init() if zero_scale else nnx.initializers.ones_init()
  return nnx.BatchNorm(features, momentum=momentum, epsilon=1e-5, dtype=dtype, rngs=rngs,
                       scale_init=nnx.with_partitioning(scale, ('conv_out',)),
                       bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(),
                                                       ('conv_out',)))


class Shortcut(nnx.Module):
  """1x1 conv + BN where a block changes the shape; the identity elsewhere."""

  def __init__(self, in_features, out_features, stride, *, init, momentum, dtype, rngs):
    self.projects = stride != 1 or in_features != out_features
    if self.projects:
      self.conv = conv(in_features, out_features, 1, stride, init=init, dtype=dtype, rngs=rngs)
      self.norm = batch_norm(out_features, momentum=momentum, dtype=dtype, rngs=rngs)

  def __call__(self, x_BxHxWxC):
    return self.norm(self.conv(x_BxHxWxC)) if self.projects else x_BxHxWxC


class BasicBlock(nnx.Module):
  """3x3 conv -> BN -> relu -> 3x3 conv -> BN (scale 0 at init), + shortcut, relu."""

  def __init__(self, in_features, features, stride, *, init, momentum, dtype, rngs):
    make = dict(init=init, dtype=dtype, rngs=rngs)
    self.conv1 = conv(in_features, features, 3, stride, **make)
    self.norm1 = batch_norm(features, momentum=momentum, dtype=dtype, rngs=rngs)
    self.conv2 = conv(features, features, 3, **make)
    self.norm2 = batch_norm(features, momentum=momentum, zero_scale=True, dtype=dtype,
                            rngs=rngs)
    self.shortcut = Shortcut(in_features, features, stride, momentum=momentum, **make)
    self.out_features = features

  def __call__(self, x_BxHxWxC):
    y = jax.nn.relu(self.norm1(self.conv1(x_BxHxWxC)))
    y = self.norm2(self.conv2(y))
    return jax.nn.relu(y + self.shortcut(x_BxHxWxC))


class Bottleneck(nnx.Module):
  """1x1 conv -> BN -> relu -> 3x3 conv (the stride) -> BN -> relu -> 1x1 conv (4x wider)
  -> BN (scale 0 at init), + shortcut, relu."""

  def __init__(self, in_features, features, stride, *, init, momentum, dtype, rngs):
    make = dict(init=init, dtype=dtype, rngs=rngs)
    norm = functools.partial(batch_norm, momentum=momentum, dtype=dtype, rngs=rngs)
    self.out_features = features * EXPANSION
    self.conv1 = conv(in_features, features, 1, **make)
    self.norm1 = norm(features)
    self.conv2 = conv(features, features, 3, stride, **make)
    self.norm2 = norm(features)
    self.conv3 = conv(features, self.out_features, 1, **make)
    self.norm3 = norm(self.out_features, zero_scale=True)
    self.shortcut = Shortcut(in_features, self.out_features, stride, momentum=momentum,
                             **make)

  def __call__(self, x_BxHxWxC):
    y = jax.nn.relu(self.norm1(self.conv1(x_BxHxWxC)))
    y = jax.nn.relu(self.norm2(self.conv2(y)))
    y = self.norm3(self.conv3(y))
    return jax.nn.relu(y + self.shortcut(x_BxHxWxC))


class ResNet(nnx.Module):
  """Logits of images B x H x W x C; build it with `create` (or a registry name)."""

  def __init__(self, input_shape, num_classes, *, depth, stem, width, bn_momentum,
               kernel_init, pixel_mean=None, pixel_std=None, dtype=jnp.float32,
               rngs: nnx.Rngs):
    channels = input_shape[-1]
    self.pixel_stats = vit.pixel_stats(pixel_mean, pixel_std)
    make = dict(init=kernel_init, dtype=dtype, rngs=rngs)
    kernel = 7 if stem == 'imagenet' else 3
    self.stem = conv(channels, width, kernel, 2 if stem == 'imagenet' else 1, **make)
    self.stem_norm = batch_norm(width, momentum=bn_momentum, dtype=dtype, rngs=rngs)
    self.max_pool = stem == 'imagenet'
    block = Bottleneck if depth in BOTTLENECK_DEPTHS else BasicBlock
    self.blocks = nnx.List()
    in_features = width
    stage_features = []  # channels of each stage's output (a detector's pyramid)
    for stage, count in enumerate(STAGE_BLOCKS[depth]):
      for index in range(count):
        stride = 2 if stage > 0 and index == 0 else 1
        self.blocks.append(block(in_features, width * 2 ** stage, stride,
                                 momentum=bn_momentum, **make))
        in_features = self.blocks[-1].out_features
      stage_features.append(in_features)
    self.stage_features = tuple(stage_features)
    # num_classes=0: a backbone without its classifier (jaxlab.models.fcos)
    self.head = layers.dense(in_features, num_classes, ('embed', 'classes'), init='lecun_normal',
                             dtype=dtype, rngs=rngs) if num_classes else None
    self.stage_ends = tuple(int(sum(STAGE_BLOCKS[depth][:i + 1])) for i in range(4))

  def features(self, x_BxHxWxC):
    """The outputs of the 4 stages (strides 4, 8, 16, 32 with the imagenet stem)."""
    x_BxHxWxC = vit.normalize_pixels(x_BxHxWxC, *self.pixel_stats)
    x = jax.nn.relu(self.stem_norm(self.stem(x_BxHxWxC)))
    if self.max_pool:
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    outputs = []
    for index, block in enumerate(self.blocks):
      x = block(x)
      if index + 1 in self.stage_ends:
        outputs.append(x)
    return outputs

  def __call__(self, x_BxHxWxC):
    return self.head(self.features(x_BxHxWxC)[-1].mean(axis=(1, 2)))


DEFAULTS = dict(
    stem='imagenet',  # 'imagenet': 7x7/2 conv + max-pool; 'cifar': 3x3/1 conv, no pool
    width=64,  # channels of the stem and the first stage (each later stage doubles them)
    bn_momentum=0.9,  # running average: new = momentum * old + (1 - momentum) * batch
    kernel_init='he_normal',  # initialiser of the conv kernels (layers.INITIALIZERS)
    pixel_mean=None,  # per-channel (x - mean) / std of the [0, 1] pixels the task gives; None: off
    pixel_std=None,  # (imported checkpoints were trained on inputs normalised so)
)


def create(input_shape, num_classes, *, rngs, depth, dtype=jnp.float32, **options):
  """The ResNet of `depth` (18, 34 or 50) for images of `input_shape` = (H, W, C)."""
  settings = {**DEFAULTS, **options}
  layers.check_options(f'resnet{depth}', settings, counts=('width',),
                       rates=('bn_momentum',),
                       choices=dict(stem=STEMS, kernel_init=tuple(layers.INITIALIZERS)))
  if len(input_shape) != 3:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'resnet{depth} takes images of shape (height, width, channels), got inputs '
                    f'of shape {input_shape}; pick an image data set (--config.data.name).')
  return ResNet(input_shape, num_classes, depth=depth, rngs=rngs, dtype=dtype, **settings)


def factory(depth):
  """create() for one depth: what the registry holds under 'resnet{depth}'."""
  def create_resnet(input_shape, num_classes, *, rngs, dtype=jnp.float32, **options):
    return create(input_shape, num_classes, rngs=rngs, depth=depth, dtype=dtype, **options)
  create_resnet.__name__ = f'resnet{depth}'
  return create_resnet
