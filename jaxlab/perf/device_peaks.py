"""The peak matmul rate MFU is measured against: a table of vendor figures for known
accelerators, and on CPUs a short GEMM measurement cached per machine.

Figures are dense (no 2:4 sparsity) and per JAX device, i.e. per chip for every
accelerator here (TPU v4 and v5p expose both TensorCores of a chip as one device).
An accelerator not in the table gets no peak, with the reason: never a guess.
"""

import dataclasses
import hashlib
import json
import os
import platform
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

# dtype of the matmuls -> the table's column. float32 matmuls at JAX's default precision
# run as one bf16 pass on TPU (so the bf16 rate) and on TF32 tensor cores on NVIDIA GPUs
# since Ampere (docs.jax.dev/en/latest/201/precision.html).
_COLUMNS = {'bfloat16': 'bf16', 'float16': 'bf16', 'float32': 'fp32'}

# (name, device_kind pattern, dense bf16 TFLOP/s, float32 TFLOP/s at default precision).
# Device kinds as jax reports them (jax/_src/pallas/mosaic/tpu_info.py lists the TPU
# ones; GPUs report the CUDA device name). More specific patterns come first.
KNOWN_PEAKS = (
    # cloud.google.com/tpu/docs/v4: 275 TFLOP/s bf16 per chip.
    ('TPU v4', r'^TPU v4$', 275.0, 275.0),
    # cloud.google.com/tpu/docs/v5e: 197 TFLOP/s bf16 per chip.
    ('TPU v5e', r'^TPU v5( lite|e)$', 197.0, 197.0),
    # cloud.google.com/tpu/docs/v5p: 459 TFLOP/s bf16 per chip.
    ('TPU v5p', r'^TPU v5p?$', 459.0, 459.0),
    # cloud.google.com/tpu/docs/v6e (Trillium): 918 TFLOP/s bf16 per chip.
    ('TPU v6e', r'^TPU v6( lite|e)$', 918.0, 918.0),
    # NVIDIA A100 datasheet (SXM and PCIe alike): BF16 312, TF32 156 TFLOP/s dense.
    ('NVIDIA A100', r'A100', 312.0, 156.0),
    # NVIDIA H100 datasheet, PCIe: BF16 1513 and TF32 756 with sparsity; halved.
    ('NVIDIA H100 PCIe', r'H100.*PCIe', 756.5, 378.0),
    # NVIDIA H100 datasheet, SXM: BF16 1979 and TF32 989 with sparsity; halved.
    # (H100 NVL is left out: its published figures have changed.)
    ('NVIDIA H100 SXM', r'H100(?!.*(PCIe|NVL))', 989.5, 494.5),
    # NVIDIA H200 datasheet, NVL: BF16 1671 and TF32 835 with sparsity; halved.
    ('NVIDIA H200 NVL', r'H200.*NVL', 835.5, 417.5),
    # NVIDIA H200 datasheet, SXM: as H100 SXM (GH200's GPU too).
    ('NVIDIA H200', r'H200', 989.5, 494.5),
)

CACHE_FILE = 'gemm_peaks.json'


@dataclasses.dataclass(frozen=True)
class Peak:
  """FLOP/s at best (None when unknown), and where that figure came from or why not."""
  flops_per_second: float | None
  source: str

  def times(self, count, unit):
    if self.flops_per_second is None:
      return self
    return Peak(self.flops_per_second * count, f'{self.source}; x {count} {unit}')

  def to_json(self):
    return dict(peak_flops_per_second=self.flops_per_second, peak_source=self.source)


def table_peak(device_kind, dtype):
  """The table's per-device peak for `device_kind` (a jax Device.device_kind) and the
  matmul dtype."""
  column = _COLUMNS.get(jnp.dtype(dtype).name)
  if column is None:
    return Peak(None, f'no peak for {jnp.dtype(dtype).name} matmuls')
  precision = jax.config.jax_default_matmul_precision
  if column == 'fp32' and precision not in (None, 'default'):
    return Peak(None, f'no table peak for float32 matmuls at jax_default_matmul_precision='
                      f'{precision!r} (the table holds the default precision\'s rate)')
  for name, pattern, bf16, fp32 in KNOWN_PEAKS:
    if re.search(pattern, device_kind.strip()):
      tflops = bf16 if column == 'bf16' else fp32
      return Peak(tflops * 1e12, f'{name} {column} dense peak (vendor figure, per chip)')
  return Peak(None, f'no known peak for device {device_kind!r} (jaxlab.perf.device_peaks.'
                    'KNOWN_PEAKS lists the accelerators it knows)')


def mesh_peak(mesh, dtype, cache_dir=None):
  """The peak of the whole mesh: per chip x chips; on CPU the host's measured GEMM rate x
  processes (CPU devices of one process share its cores)."""
  devices = list(mesh.devices.flat)
  if devices[0].platform == 'cpu':
    processes = len({d.process_index for d in devices})
    return cpu_peak(dtype, cache_dir).times(processes, 'host(s)')
  return table_peak(devices[0].device_kind, dtype).times(len(devices), 'device(s)')


def cpu_peak(dtype, cache_dir=None):
  """This machine's measured XLA:CPU GEMM rate, measured once per machine and setting.

  A figure measured while other processes kept the cores busy is too low; it is measured
  again (keeping the best) only when a later start finds the machine quieter than then.
  """
  dtype = jnp.dtype(dtype).name
  path = os.path.join(cache_dir or _cache_dir(), CACHE_FILE)
  key, load = _machine_key(dtype), _load_per_core()
  entry = _read_json(path).get(key)
  if not isinstance(entry, dict) or entry['load_per_core'] > 1 and load < entry['load_per_core']:
    measured = measure_gemm_flops(dtype)
    if isinstance(entry, dict):
      measured = max(measured, entry['flops_per_second'])
      load = min(load, entry['load_per_core'])
    entry = dict(flops_per_second=measured, load_per_core=load)
    _write_json(path, dict(_read_json(path), **{key: entry}))
  busy = (f'; measured on a busy machine ({entry["load_per_core"]:.1f} runnable threads per '
          'core), so MFU reads high' if entry['load_per_core'] > 1 else '')
  return Peak(entry['flops_per_second'],
              f'measured XLA:CPU {dtype} GEMM peak (cached in {path}{busy})')


def _load_per_core():
  return os.getloadavg()[0] / len(os.sched_getaffinity(0))


def measure_gemm_flops(dtype='float32', sizes=(512, 1024, 1536), seconds_per_size=0.2):
  """Best FLOP/s of one square matmul over `sizes`: each compiled once, run once to
  warm up, then timed call by call for about `seconds_per_size`."""
  best, rng = 0.0, np.random.default_rng(0)
  for size in sizes:
    a, b = (jnp.asarray(rng.standard_normal((size, size), np.float32), dtype) for _ in 'ab')
    matmul = jax.jit(jnp.matmul).lower(a, b).compile()
    matmul(a, b).block_until_ready()
    deadline, calls = time.perf_counter() + seconds_per_size, 0
    while calls < 3 or time.perf_counter() < deadline:
      started = time.perf_counter()
      matmul(a, b).block_until_ready()
      best = max(best, 2 * size ** 3 / (time.perf_counter() - started))
      calls += 1
  return best


def _cache_dir():
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'jaxlab')


def _machine_key(dtype):
  """What the measured rate depends on: the CPU, the cores this process may use, jax and
  the XLA and threading settings."""
  # Forcing N host devices does not change one device's GEMM: not part of the key.
  xla_flags = re.sub(r'--xla_force_host_platform_device_count=\S*', '',
                     os.environ.get('XLA_FLAGS', '')).split()
  parts = dict(cpu=_cpu_model(), cores=len(os.sched_getaffinity(0)), jax=jax.__version__,
               xla_flags=sorted(xla_flags),
               threads=os.environ.get('OMP_NUM_THREADS', ''), dtype=dtype)
  digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
  return f'{parts["cpu"]} / {parts["cores"]} cores / {dtype} / {digest}'


def _cpu_model():
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _read_json(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _write_json(path, value):
  """Atomically (a rename), so concurrent runs never read half a file."""
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f'{path}.{os.getpid()}.tmp'
    with open(temporary, 'w') as f:
      json.dump(value, f, indent=1, sort_keys=True)
    os.replace(temporary, path)
  except OSError:
    pass  # a read-only home: measure again next time
