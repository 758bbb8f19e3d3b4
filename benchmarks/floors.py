"""What this backend can do at best, for the explanations in RESULTS.md.

- The step floor of `seed_mlp`: the quickstart MLP's training step written by hand
  (no metrics, float32 inputs already on the device, a precomputed index per
  batch) inside one `lax.scan` over an epoch, with Adam and with plain SGD. No
  framework can take fewer microseconds per step on this backend; a gap between
  jaxlab's step and this one is jaxlab's own cost.
- The forward matmul of `mlp_large_batch` alone (4096x784 by 784x128): how much of
  the GEMM peak its matrix shapes reach before any other work of the step.

The runner measures these, and the GEMM peaks (jaxlab.perf.device_peaks), in a process of
their own with jaxlab's XLA options, so that it never holds the device itself:

    python -m benchmarks.floors [--kernels=resnet18_cifar,lm_small]
    # prints {"gemm_peaks_gflops", "floors" (with "kernels": benchmarks.kernels), "xla_flags"}
"""

import json
import time


def _best_seconds(function, *args, repeats):
  import jax
  jax.block_until_ready(function(*args))  # compiles
  best = float('inf')
  for _ in range(repeats):
    started = time.perf_counter()
    jax.block_until_ready(function(*args))
    best = min(best, time.perf_counter() - started)
  return best


def mlp_step_us(optimizer, batch_size=32, steps=1000, num_examples=60000, repeats=3):
  """Best microseconds per step of a bare scan of `steps` MLP steps (784-128-10)."""
  import jax
  import jax.numpy as jnp
  import optax
  import numpy as np
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((num_examples, 784), np.float32))
  labels = jnp.asarray(rng.integers(0, 10, num_examples, np.int32))
  indices = jnp.asarray(rng.integers(0, num_examples, (steps, batch_size), np.int32))
  params = {'w1': jnp.asarray(rng.normal(0, 0.05, (784, 128)), jnp.float32),
            'b1': jnp.zeros(128),
            'w2': jnp.asarray(rng.normal(0, 0.1, (128, 10)), jnp.float32),
            'b2': jnp.zeros(10)}
  tx = optax.adam(1e-3) if optimizer == 'adam' else optax.sgd(1e-2)

  def loss(params, x, y):
    hidden = jax.nn.relu(x @ params['w1'] + params['b1'])
    logits = hidden @ params['w2'] + params['b2']
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def epoch(params, opt_state, images, labels, indices):
    def step(carry, index):
      params, opt_state = carry
      grads = jax.grad(loss)(params, images[index], labels[index])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None
    return jax.lax.scan(step, (params, opt_state), indices)[0]

  # The better of two attempts, each jitted anew: in a few processes the first measured
  # Adam's step ~3x slower than usual (480 us against 150; cause not found).
  seconds = min(_best_seconds(jax.jit(epoch), params, tx.init(params), images, labels,
                              indices, repeats=repeats) for _ in range(2))
  return 1e6 * seconds / steps


def matmul_gflops(m=4096, k=784, n=128, repeats=50):
  """Best GFLOP/s of one (m x k) @ (k x n) float32 matmul, the large-batch forward."""
  import jax
  a = jax.random.normal(jax.random.PRNGKey(0), (m, k))
  b = jax.random.normal(jax.random.PRNGKey(1), (k, n))
  matmul = jax.jit(lambda x, y: x @ y)
  seconds = _best_seconds(matmul, a, b, repeats=repeats)
  return 2 * m * k * n / seconds / 1e9


def gemm_peaks_gflops():
  """float32 peak everywhere; bfloat16 too on accelerators (on CPUs bf16 is not faster).
  Longer than training's cached CPU measurement: larger sizes, a second per size."""
  import jax
  from jaxlab.perf import device_peaks
  peaks = {'float32': device_peaks.measure_gemm_flops('float32', sizes=(1024, 2048, 3072),
                                                      seconds_per_size=1.0) / 1e9}
  if jax.default_backend() != 'cpu':
    peaks['bfloat16'] = device_peaks.measure_gemm_flops(
        'bfloat16', sizes=(4096, 8192, 16384), seconds_per_size=1.0) / 1e9
  return peaks


def measure(steps=1000):
  return {
      'seed_mlp_bare_steps': steps,
      'seed_mlp_bare_step_us': {'adam': mlp_step_us('adam', steps=steps),
                                'sgd': mlp_step_us('sgd', steps=steps)},
      'mlp_large_batch_forward_matmul_gflops': matmul_gflops(),
  }


def main(argv):
  """argv: [--kernels=W1,W2]: also the kernels of those workloads (benchmarks.kernels)."""
  import os
  from benchmarks import kernels
  from jaxlab.runtime import setup as runtime
  runtime.setup()
  floors = measure()
  chosen = [w for arg in argv if arg.startswith('--kernels=')
            for w in arg.split('=', 1)[1].split(',') if w]
  if chosen:
    floors['kernels'] = kernels.measure(chosen)
  print(json.dumps(dict(gemm_peaks_gflops=gemm_peaks_gflops(), floors=floors,
                        xla_flags=os.environ.get('XLA_FLAGS', '')), indent=2))


if __name__ == '__main__':
  import sys
  main(sys.argv[1:])
