"""Does a compiled training block fit the devices' memory? XLA's estimate of the block's
peak per device, set against what one device has, the verdict, and the flags that shrink
the need.

What one device has: on GPU and TPU the allocator's `bytes_limit`; on CPU the host's
MemAvailable shared by its CPU devices (they are all in this host's RAM), read before the
run allocates anything. JAXLAB_DEVICE_MEMORY_GIB overrides both, e.g. to check a config
against a target machine's memory before renting it.
"""

import dataclasses
import os

import jax

from jaxlab.models import modeling
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib

# `jaxlab train` refuses only above this multiple of the available memory. The estimate
# is XLA's buffer assignment, not a measurement: on CPU it sums temporaries the runtime
# allocates one at a time, and MemAvailable also moves with other processes and counts
# memory the kernel can reclaim, so a need a little over the figure may still run. A
# quarter more than the device has is past that noise: it fails (out of memory, or a host
# swapping to a crawl), only later, after data loading and compiling.
REFUSE_ABOVE = 1.25

OVERRIDE_ENV = 'JAXLAB_DEVICE_MEMORY_GIB'


@dataclasses.dataclass(frozen=True)
class Available:
  """Bytes one device may use (None: unknown), and where that figure came from."""
  bytes_per_device: int | None
  source: str


def available(mesh):
  """What one device of `mesh` has to use."""
  override = os.environ.get(OVERRIDE_ENV)
  if override:
    try:
      return Available(int(float(override) * 2**30), f'{OVERRIDE_ENV}={override}')
    except ValueError:
      raise UserError(f'{OVERRIDE_ENV}={override!r} is not a number of GiB; set it to e.g. '
                      '16 or unset it.') from None
  device = mesh.devices.flat[0]
  if device.platform == 'cpu':
    return _host_share(len(jax.local_devices(backend='cpu')))
  stats = _memory_stats(device)
  if stats.get('bytes_limit'):
    return Available(int(stats['bytes_limit']), f'{device.device_kind} bytes_limit')
  return Available(None, f'{device.device_kind} reports no memory limit')


def _host_share(devices):
  free = _mem_available()
  if free is None:
    return Available(None, 'no /proc/meminfo on this host')
  shared = f', shared by {devices} CPU devices' if devices > 1 else ''
  return Available(free // devices, f'host MemAvailable{shared}')


def _mem_available():
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def _memory_stats(device):
  try:
    return device.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  (backends without it raise)
    return {}


def peak_bytes(memory):
  """XLA's peak per device of a compiled program (its CompiledMemoryStats): arguments,
  outputs and temporaries, less the outputs that reuse donated arguments."""
  if memory is None:
    return None
  return int(memory.argument_size_in_bytes + memory.output_size_in_bytes +
             memory.temp_size_in_bytes - memory.alias_size_in_bytes)


def of_compiled(compiled, available_memory):
  """The Fit of a compiled program, or None where the backend gives no memory analysis."""
  try:
    memory = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  (backends without it raise)
    memory = None
  if memory is None or available_memory is None:
    return None
  return Fit(peak_bytes(memory), available_memory, int(memory.argument_size_in_bytes))


@dataclasses.dataclass(frozen=True)
class Fit:
  needed: int  # bytes per device, XLA's estimate
  available: Available
  argument_bytes: int = 0  # of `needed`: the state and the block's input

  @property
  def ratio(self):
    return self.needed / self.available.bytes_per_device if self.available.bytes_per_device \
        else None

  @property
  def fits(self):
    return self.ratio is None or self.ratio <= 1

  @property
  def refused(self):
    return self.ratio is not None and self.ratio > REFUSE_ABOVE

  def verdict(self):
    """'fits: ...' or 'does not fit: needs 147.6 GiB per device, 6.4x the 23.0 GiB
    available' (or why there is no verdict)."""
    if self.ratio is None:
      return (f'no verdict: needs {size(self.needed)} per device, but the memory available '
              f'is unknown ({self.available.source})')
    return f'{"fits" if self.fits else "does not fit"}: {self.comparison()}'

  def comparison(self):
    """'needs 147.6 GiB per device, 6.4x the 23.0 GiB available (source)'."""
    if self.fits:
      ratio = 'under 1% of' if self.ratio < 0.01 else f'{self.ratio:.0%} of'
    else:
      ratio = f'{self.ratio:.1f}x'
    return (f'needs {size(self.needed)} per device, {ratio} the '
            f'{size(self.available.bytes_per_device)} available ({self.available.source})')


def size(count):
  """Bytes as '12.0 KiB', '151.1 MiB' or '147.6 GiB'."""
  for unit, scale in (('GiB', 2**30), ('MiB', 2**20)):
    if count >= scale:
      return f'{count / scale:.1f} {unit}'
  return f'{count / 2**10:.1f} KiB'


def knobs(config, mesh, fit, placement):
  """The flags to try first, most effective first, each with why: (flag, reason) pairs."""
  found = [_batch_knob(config, mesh, fit)]
  if config.remat == 'none' and config.model.get('remat', 'none') == 'none':
    found.append(('--config.remat=full', 'recomputes activations in the backward pass '
                  'instead of storing them'))
  if modeling.compute_dtype(config) == 'float32':
    found.append(('--config.compute_dtype=bfloat16', 'halves the activations'))
  if config.mesh.fsdp == 1:
    found.append(_fsdp_knob(mesh.devices.size))
  if placement == 'stream' and config.steps_per_loop > 1 and fit.argument_bytes > fit.needed / 4:
    found.append((f'--config.steps_per_loop={max(1, config.steps_per_loop // 10)}',
                  'each compiled call holds its steps\' input batches on the devices '
                  f'(with the state, {size(fit.argument_bytes)} of the need)'))
  return found


def _fsdp_knob(devices):
  shards = 'parameters and optimizer state over'
  if devices > 1:
    return f'--config.mesh.fsdp={devices}', f'shards {shards} the {devices} devices'
  return '--config.mesh.fsdp=N', f'shards {shards} N devices, on a machine with N (this has 1)'


def _batch_knob(config, mesh, fit):
  """A smaller global batch scaled to the available memory (roughly: activations grow
  with the batch): a divisor of the batch, so grad_accum_steps can keep the batch."""
  batch, shards = config.data.batch_size, mesh_lib.data_shards(mesh)
  target = batch * min(0.5, 0.9 / fit.ratio) if fit.ratio else batch / 2
  divisors = [batch // k for k in range(2, batch + 1)
              if batch % k == 0 and (batch // k) % shards == 0 and batch // k <= target]
  smaller = max(divisors) if divisors else max(shards, int(target) // shards * shards)
  why = f'{smaller // shards} per device, down from {batch // shards}; memory grows about ' \
      'with the batch'
  if batch % smaller == 0 and config.grad_accum_steps == 1:
    why += f'; or keep the batch with --config.grad_accum_steps={batch // smaller}'
  return f'--config.data.batch_size={smaller}', why


def refusal(fit, knob_list):
  """The UserError of a training run whose block would not fit."""
  flags = '; '.join(f'{flag} ({why})' for flag, why in knob_list)
  return UserError(
      f'The training step would not fit in memory: it {fit.comparison()}, above the '
      f'{REFUSE_ABOVE}x at which training refuses (XLA\'s estimate of the compiled step). '
      f'Nothing was trained and no checkpoint written. Try, first: {flags}. '
      '`jaxlab train ... --dry_run` shows the estimate of a setting without training; '
      '--config.allow_oversubscribe=True trains anyway.')


def check(config, mesh, fit, placement):
  """Raises the refusal of a block that clearly would not fit (unless the config allows
  it); returns a warning for one that may not, else None."""
  if fit.refused and not config.allow_oversubscribe:
    raise refusal(fit, knobs(config, mesh, fit, placement))
  if not fit.fits:
    return (f'Memory: the training step {fit.verdict()}; training anyway '
            f'({"--config.allow_oversubscribe=True" if fit.refused else f"at most {REFUSE_ABOVE}x"}).')
  return None
