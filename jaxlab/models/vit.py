"""Vision Transformer (Dosovitskiy et al. 2021), as big_vision's `models/vit.py` builds it.

image_BxHxWxC -> non-overlapping P x P patches -> Dense to D -> + position embedding
[-> prepend a class token] -> [LayerNorm -> self-attention -> + -> LayerNorm -> GELU MLP
-> +]* -> LayerNorm -> class token or mean over patches -> Dense -> logits.

`variant` names the size as big_vision does, 'S/16' = ViT-Small with 16 x 16 patches
(width, depth, MLP width and heads from Table 2 of Zhai et al. 2022, "Scaling Vision
Transformers"); 'Ti/4' or 'S/4' suit 32 x 32 images (64 patches). Position embeddings
are learned, or fixed 2-D sine-cosine ('sincos2d'); as in big_vision they are added to
the patches only, not to the class token. The head starts at zero (big_vision's
head_zeroinit), so the first logits are uniform.

Shape letters: B batch, H x W image, C channels, L tokens, D width, N heads, K head
width, M MLP width.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlab.errors import UserError
from jaxlab.models import dense as dense_ops
from jaxlab.models import layers

# variant -> (width D, depth, MLP width M, heads N); big_vision's table.
SIZES = {
    'mu': (32, 1, 128, 2),
    'Ti': (192, 12, 768, 3),
    'S': (384, 12, 1536, 6),
    'M': (512, 12, 2048, 8),
    'B': (768, 12, 3072, 12),
    'L': (1024, 24, 4096, 16),
    'H': (1280, 32, 5120, 16),
}
POSEMBS = ('learn', 'sincos2d')
POOLS = ('cls', 'gap')
ATTENTION_IMPLEMENTATIONS = (None, 'xla', 'cudnn')

_xavier = lambda axes: nnx.with_partitioning(nnx.initializers.xavier_uniform(), axes)


def parse_variant(variant):
  """'S/16' -> (D, depth, M, N, patch 16); UserError for unknown names."""
  size, _, patch = str(variant).partition('/')
  if size not in SIZES or not patch.isdigit() or int(patch) < 1:
    raise UserError(f'Unknown ViT variant {variant!r} in --config.model.variant: give SIZE/PATCH '
                    f'with SIZE one of {", ".join(SIZES)} and PATCH the patch side in pixels, '
                    'e.g. "S/16" for 224 x 224 images or "Ti/4" for 32 x 32.')
  return (*SIZES[size], int(patch))


def posemb_sincos_2d(height, width, dim, temperature=10_000.0):
  """1 x (height * width) x dim fixed embeddings: sin and cos of x and y (big_vision's)."""
  y, x = np.mgrid[:height, :width]
  omega = 1.0 / temperature ** (np.arange(dim // 4) / (dim // 4 - 1))
  y = np.einsum('m,d->md', y.flatten(), omega)
  x = np.einsum('m,d->md', x.flatten(), omega)
  table = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
  return jnp.asarray(table, jnp.float32)[None]


def layer_norm(features, *, epsilon=1e-6, dtype, rngs):
  return nnx.LayerNorm(
      features, epsilon=epsilon, dtype=dtype, rngs=rngs,
      scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ('embed',)),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ('embed',)))


class Attention(nnx.Module):
  """Multi-head self-attention without a mask (every patch sees every patch)."""

  def __init__(self, width, num_heads, *, implementation, dtype, rngs):
    head_dim = width // num_heads

    def projection(spec, shape, axes, bias_shape, bias_axes):
      return nnx.Einsum(spec, shape, bias_shape, kernel_init=_xavier(axes), dtype=dtype,
                        einsum_op=dense_ops.einsum, bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(),
                                                        bias_axes), rngs=rngs)

    qkv = (('BLD,DNK->BLNK', (width, num_heads, head_dim), ('embed', 'heads', 'head_dim'),
            (num_heads, head_dim), ('heads', 'head_dim')))
    self.query, self.key, self.value = (projection(*qkv) for _ in range(3))
    self.out = projection('BLNK,NKD->BLD', (num_heads, head_dim, width),
                          ('heads', 'head_dim', 'embed'), (width,), ('embed',))
    self.implementation = implementation

  def __call__(self, x_BxLxD):
    y_BxLxNxK = jax.nn.dot_product_attention(self.query(x_BxLxD), self.key(x_BxLxD),
                                             self.value(x_BxLxD),
                                             implementation=self.implementation)
    return self.out(y_BxLxNxK)


class MlpBlock(nnx.Module):
  """Dense D -> M, GELU, dropout, Dense M -> D (column- then row-parallel under TP)."""

  def __init__(self, width, mlp_dim, *, dropout_rate, gelu_approximate=True, dtype, rngs):
    bias = lambda axis: nnx.with_partitioning(nnx.initializers.normal(1e-6), (axis,))
    self.up = nnx.Linear(width, mlp_dim, kernel_init=_xavier(('embed', 'mlp')),
                         bias_init=bias('mlp'), dtype=dtype,
                         dot_general=dense_ops.dot_general, rngs=rngs)
    self.down = nnx.Linear(mlp_dim, width, kernel_init=_xavier(('mlp', 'embed')),
                           bias_init=bias('embed'), dtype=dtype,
                           dot_general=dense_ops.dot_general, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)
    self.gelu_approximate = gelu_approximate

  def __call__(self, x_BxLxD, rngs=None):
    hidden = jax.nn.gelu(self.up(x_BxLxD), approximate=self.gelu_approximate)
    return self.down(self.dropout(hidden, rngs=rngs))


class EncoderBlock(nnx.Module):
  """Pre-LN: x + Attention(LN(x)), then x + MLP(LN(x)), dropout on each branch."""

  def __init__(self, width, mlp_dim, num_heads, *, dropout_rate, attention_implementation,
               norm_eps, gelu_approximate, dtype, rngs):
    self.attention_norm = layer_norm(width, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.attention = Attention(width, num_heads, implementation=attention_implementation,
                               dtype=dtype, rngs=rngs)
    self.mlp_norm = layer_norm(width, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.mlp = MlpBlock(width, mlp_dim, dropout_rate=dropout_rate,
                        gelu_approximate=gelu_approximate, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x_BxLxD, rngs=None):
    x_BxLxD = x_BxLxD + self.dropout(self.attention(self.attention_norm(x_BxLxD)), rngs=rngs)
    return x_BxLxD + self.dropout(self.mlp(self.mlp_norm(x_BxLxD), rngs), rngs=rngs)


class ViT(nnx.Module):
  """Logits of images B x H x W x C; build it with `create`."""

  def __init__(self, input_shape, num_classes, *, width, depth, mlp_dim, num_heads, patch,
               posemb, pool, dropout_rate, attention_implementation, norm_eps,
               gelu_approximate, pixel_mean, pixel_std, dtype=jnp.float32, rngs: nnx.Rngs):
    height, image_width, channels = input_shape
    self.patch = patch
    # Static tuples (hashable graph attributes), applied in __call__.
    self.pixel_stats = pixel_stats(pixel_mean, pixel_std)
    self.grid = (height // patch, image_width // patch)
    # A P x P stride-P conv as a Dense on flattened patches: the same numbers, one matmul.
    self.embedding = nnx.Linear(
        patch * patch * channels, width, dtype=dtype, rngs=rngs,
        kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, 'embed')),
        bias_init=layers.bias_init('embed'))
    num_patches = self.grid[0] * self.grid[1]
    # sincos2d is a constant of the call, not a variable: nothing to train or save.
    self.posemb = nnx.Param(
        nnx.initializers.normal(width ** -0.5)(rngs.params(), (1, num_patches, width)),
        out_sharding=(None, None, 'embed')) if posemb == 'learn' else None
    self.cls = nnx.Param(jnp.zeros((1, 1, width)), out_sharding=(None, None, 'embed')
                         ) if pool == 'cls' else None
    self.dropout = nnx.Dropout(dropout_rate)
    self.blocks = nnx.List([
        EncoderBlock(width, mlp_dim, num_heads, dropout_rate=dropout_rate,
                     attention_implementation=attention_implementation, norm_eps=norm_eps,
                     gelu_approximate=gelu_approximate, dtype=dtype, rngs=rngs)
        for _ in range(depth)])
    self.encoder_norm = layer_norm(width, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.head = nnx.Linear(
        width, num_classes, dtype=dtype, rngs=rngs,
        kernel_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ('embed', 'classes')),
        bias_init=layers.bias_init('classes'))

  def patches(self, x_BxHxWxC):
    """B x L x (P P C) non-overlapping patches, row by row."""
    (rows, cols), p = self.grid, self.patch
    batch, channels = x_BxHxWxC.shape[0], x_BxHxWxC.shape[-1]
    x = x_BxHxWxC[:, :rows * p, :cols * p].reshape(batch, rows, p, cols, p, channels)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, rows * cols, p * p * channels)

  def __call__(self, x_BxHxWxC, *, rngs=None):
    x_BxLxD = self.embedding(self.patches(normalize_pixels(x_BxHxWxC, *self.pixel_stats)))
    posemb_1xLxD = (posemb_sincos_2d(*self.grid, x_BxLxD.shape[-1]) if self.posemb is None
                    else self.posemb[...])
    x_BxLxD = x_BxLxD + posemb_1xLxD.astype(x_BxLxD.dtype)
    if self.cls is not None:
      cls_Bx1xD = jnp.broadcast_to(self.cls[...].astype(x_BxLxD.dtype),
                                   (x_BxLxD.shape[0], 1, x_BxLxD.shape[-1]))
      x_BxLxD = jnp.concatenate([cls_Bx1xD, x_BxLxD], axis=1)
    x_BxLxD = self.dropout(x_BxLxD, rngs=rngs)
    for block in self.blocks:
      x_BxLxD = block(x_BxLxD, rngs)
    x_BxLxD = self.encoder_norm(x_BxLxD)
    x_BxD = x_BxLxD[:, 0] if self.cls is not None else x_BxLxD.mean(axis=1)
    return self.head(x_BxD)


DEFAULTS = dict(
    variant='S/16',  # SIZE/PATCH: SIZE in SIZES ('Ti', 'S', 'B', ...), PATCH in pixels
    posemb='learn',  # position embeddings: 'learn' or fixed 'sincos2d'
    pool='gap',  # the image's representation: 'gap' (mean of the patches) or 'cls' (a token)
    dropout_rate=0.0,  # on the embeddings, the MLP's hidden layer and each residual branch
    width=None,  # D; None: the variant's (this and the next three override it for sweeps)
    depth=None,  # encoder blocks; None: the variant's
    mlp_dim=None,  # M; None: the variant's
    num_heads=None,  # N, dividing D; None: the variant's
    attention_implementation=None,  # jax.nn.dot_product_attention's: None, 'xla' or 'cudnn'
    norm_eps=1e-6,  # the LayerNorms' epsilon (Hugging Face's ViT uses 1e-12)
    gelu_approximate=True,  # the MLP's GELU: tanh approximation (True) or exact erf (False)
    pixel_mean=None,  # per-channel (x - mean) / std of the [0, 1] pixels the task gives; None: off
    pixel_std=None,  # (imported checkpoints were trained on inputs normalised so)
)


def normalize_pixels(x_BxHxWxC, mean, std):
  """(x - mean) / std per channel; the identity where mean and std are None."""
  if mean is None and std is None:
    return x_BxHxWxC
  mean_C = jnp.asarray(0.0 if mean is None else mean, jnp.float32)
  std_C = jnp.asarray(1.0 if std is None else std, jnp.float32)
  return ((x_BxHxWxC - mean_C) / std_C).astype(x_BxHxWxC.dtype)


def pixel_stats(mean, std):
  """(mean, std) as tuples of floats or None: static, hashable model attributes."""
  floats = lambda values: None if values is None else tuple(float(v) for v in values)
  return floats(mean), floats(std)


def create(input_shape, num_classes, *, rngs, dtype=jnp.float32, **options):
  """The ViT that `variant` (and any explicit width/depth/...) names, for images of
  `input_shape` = (H, W, C)."""
  settings = resolve(options)
  check(input_shape, settings)
  del settings['variant']
  return ViT(input_shape, num_classes, rngs=rngs, dtype=dtype, **settings)


def resolve(options):
  """DEFAULTS overridden by `options`, with the variant's sizes and patch filled in."""
  settings = {**DEFAULTS, **options}
  *sizes, settings['patch'] = parse_variant(settings['variant'])
  for name, value in zip(('width', 'depth', 'mlp_dim', 'num_heads'), sizes):
    if settings[name] is None:
      settings[name] = value
  return settings


def check(input_shape, s):
  layers.check_options('vit', s, counts=('width', 'depth', 'mlp_dim', 'num_heads'),
                       rates=('dropout_rate',),
                       choices=dict(posemb=POSEMBS, pool=POOLS,
                                    attention_implementation=ATTENTION_IMPLEMENTATIONS))
  problems = []
  if len(input_shape) != 3:
    problems.append(f'the input must be images (height, width, channels), got {input_shape}')
  elif input_shape[0] % s['patch'] or input_shape[1] % s['patch']:
    problems.append(f'{input_shape[0]} x {input_shape[1]} images do not divide into '
                    f'{s["patch"]} x {s["patch"]} patches (variant {s["variant"]!r})')
  if s['width'] % s['num_heads']:
    problems.append(f'width={s["width"]} is not a multiple of num_heads={s["num_heads"]}')
  if s['posemb'] == 'sincos2d' and s['width'] % 4:
    problems.append(f'posemb=\'sincos2d\' needs a width divisible by 4, got {s["width"]}')
  layers.reject('vit', problems)
