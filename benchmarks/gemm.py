"""The machine's measured matrix-multiply peak, the yardstick for MFU."""

import time


def measure_peak_gflops(dtype='float32', sizes=(1024, 2048, 3072), repeats=10):
  """Best GFLOP/s of an XLA matmul over a few square sizes, in this process."""
  import jax
  best = 0.0
  for size in sizes:
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), dtype=dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (size, size), dtype=dtype)
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, b).block_until_ready()
    started = time.perf_counter()
    for _ in range(repeats):
      out = matmul(a, b)
    out.block_until_ready()
    seconds = (time.perf_counter() - started) / repeats
    best = max(best, 2 * size ** 3 / seconds / 1e9)
  return best


def measure_peaks():
  """float32 peak everywhere; bfloat16 too on accelerators (on CPUs bf16 is not faster)."""
  import jax
  peaks = {'float32': measure_peak_gflops('float32')}
  if jax.default_backend() != 'cpu':
    peaks['bfloat16'] = measure_peak_gflops('bfloat16', sizes=(4096, 8192, 16384))
  return peaks
