"""The larger workloads' kernels alone, XLA against PyTorch, side by side.

For RESULTS.md's "What limits the misses": how fast the products that make up nearly all
of `resnet18_cifar`'s and `lm_small`'s FLOPs run on their own, at those workloads'
shapes, in each framework, on this machine: the rate a framework's kernels give these
products with nothing else to do, which its whole train step can approach (or pass
slightly, by running independent kernels at once) but not leave far behind.

- resnet18_cifar: one 3x3 stride-1 convolution per stage (32x32x64 ... 4x4x512, batch
  128), forward plus both gradients. XLA runs jaxlab's convolution (models.conv: the
  custom VJP the ResNet uses); PyTorch runs F.conv2d on NCHW tensors, as its peer does.
- lm_small: each weight matmul of a layer (query, key, value and output projections,
  SwiGLU's gate, up and down) and the head, with its two gradient products, over
  16 x 256 tokens; and attention's two batched products (scores and the weighted sum,
  in full) with theirs. XLA runs jnp/lax products, PyTorch torch.matmul.

Measured by benchmarks.floors (`--kernels=resnet18_cifar,lm_small`) in its own process
with jaxlab's XLA options; PyTorch with its default threads, as its peer runs.
"""

import time

from benchmarks.peers import common

RESNET_STAGES = ((32, 64), (16, 128), (8, 256), (4, 512))  # (height = width, channels)


def _best(function, repeats):
  function()  # compiles / warms up
  best = float('inf')
  for _ in range(repeats):
    started = time.perf_counter()
    function()
    best = min(best, time.perf_counter() - started)
  return best


def _jax_call(jitted, *args):
  import jax
  return lambda: jax.block_until_ready(jitted(*args))


def resnet18_convolutions(batch=128, stages=RESNET_STAGES, repeats=3):
  """Seconds and GFLOP/s of the stages' convolutions, forward and backward, per framework."""
  import jax
  import numpy as np
  import torch
  from jaxlab.models import conv
  rng = np.random.default_rng(0)
  flops, seconds = 0.0, {'xla': 0.0, 'torch': 0.0}
  step = jax.jit(lambda x, w, dy: _conv_and_grads(conv, x, w, dy))
  for size, channels in stages:
    x = rng.standard_normal((batch, size, size, channels), np.float32)
    w = rng.standard_normal((3, 3, channels, channels), np.float32) * 0.05
    dy = rng.standard_normal((batch, size, size, channels), np.float32)
    flops += 3 * 2 * batch * size * size * 9 * channels * channels
    seconds['xla'] += _best(_jax_call(step, x, w, dy), repeats)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_()
    tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous().requires_grad_()
    tdy = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous()

    def torch_step(tx=tx, tw=tw, tdy=tdy):
      y = torch.nn.functional.conv2d(tx, tw, padding=1)
      torch.autograd.grad(y, (tx, tw), tdy)
    seconds['torch'] += _best(torch_step, repeats)
  return _summary(flops, seconds, shapes=[list(s) for s in stages], batch=batch)


def _conv_and_grads(conv, x, w, dy):
  import jax
  padding = ((1, 1), (1, 1))
  y, vjp = jax.vjp(lambda x, w: conv.conv2d_nhwc(x, w, (1, 1), padding, None), x, w)
  return y, *vjp(dy)


def lm_matmuls(workload='lm_small', repeats=5):
  """Seconds and GFLOP/s of one train step's matmuls at the LM's shapes, per framework
  (`workload`: a name or a common.Workload)."""
  spec = common.get_workload(workload) if isinstance(workload, str) else workload
  options, batch = dict(spec.options), spec.batch_size
  tokens, width = batch * options['seq_len'], options['embed_dim']
  layers, mlp, vocab = options['num_layers'], options['mlp_dim'], options['vocab_size']
  heads, length = options['num_heads'], options['seq_len']
  # (rows, inner, columns, times per step): the weight matmuls of every layer, the head.
  weights = [(tokens, width, width, 4 * layers), (tokens, width, mlp, 2 * layers),
             (tokens, mlp, width, layers), (tokens, width, vocab, 1)]
  # Attention per layer, batched over B x N: scores (L x H by H x L), sum (L x L by L x H).
  attention = [(batch * heads, length, width // heads, length, layers),
               (batch * heads, length, length, width // heads, layers)]
  flops, seconds = 0.0, {'xla': 0.0, 'torch': 0.0}
  for rows, inner, columns, times in weights:
    flops += times * 3 * 2 * rows * inner * columns
    for framework, products in (('xla', _xla_products), ('torch', _torch_products)):
      seconds[framework] += times * _best(products(1, rows, inner, columns), repeats)
  for batch_heads, rows, inner, columns, times in attention:
    flops += times * 3 * 2 * batch_heads * rows * inner * columns
    for framework, products in (('xla', _xla_products), ('torch', _torch_products)):
      seconds[framework] += times * _best(products(batch_heads, rows, inner, columns), repeats)
  return _summary(flops, seconds, tokens=tokens)


def _xla_products(batch, rows, inner, columns):
  """A matmul and its two gradient products (a batched one when batch > 1)."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, rows, inner), np.float32))
  w = jnp.asarray(rng.standard_normal((batch, inner, columns), np.float32))
  dy = jnp.asarray(rng.standard_normal((batch, rows, columns), np.float32))

  @jax.jit
  def products(x, w, dy):
    return (jnp.einsum('bri,bic->brc', x, w), jnp.einsum('brc,bic->bri', dy, w),
            jnp.einsum('bri,brc->bic', x, dy))
  return _jax_call(products, x, w, dy)


def _torch_products(batch, rows, inner, columns):
  import torch
  x, w = torch.randn(batch, rows, inner), torch.randn(batch, inner, columns)
  dy = torch.randn(batch, rows, columns)
  return lambda: (torch.matmul(x, w), torch.matmul(dy, w.transpose(1, 2)),
                  torch.matmul(x.transpose(1, 2), dy))


def _summary(flops, seconds, **details):
  return dict(details, flops=flops, seconds=seconds,
              gflops={name: flops / s / 1e9 for name, s in seconds.items()})


MEASURES = {'resnet18_cifar': resnet18_convolutions, 'lm_small': lm_matmuls}


def measure(workloads):
  """{workload: summary} for those of `workloads` this module measures (needs torch)."""
  import importlib.util
  if importlib.util.find_spec('torch') is None:
    return {}
  return {name: MEASURES[name]() for name in workloads if name in MEASURES}
