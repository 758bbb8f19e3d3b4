"""Model FLOPs utilisation: model FLOPs per second over the mesh's peak.

MFU counts model FLOPs (jaxlab.perf.flops: what the model needs, not what remat or gradient
accumulation make the device do), so it compares runs and settings fairly; the peak is
jaxlab.perf.device_peaks' (a vendor figure per chip, or on CPU the measured GEMM rate). All
of it is host arithmetic on wall times the loop already takes: nothing is added to the
compiled step and nothing waits on the device. The same meter states what a run costs:
device-hours of its wall time at jaxlab.perf.device_prices' price (or config.cost's).
"""

import dataclasses

from jaxlab.perf import device_peaks
from jaxlab.perf import device_prices
from jaxlab.perf import flops
from jaxlab.models import modeling


TRACED_SOURCE = 'matmuls and convolutions of the traced train step'


@dataclasses.dataclass(frozen=True)
class Meter:
  flops_per_step: float  # model FLOPs of one step on the global batch
  flops_source: str  # how they were counted
  peak: device_peaks.Peak  # of the whole mesh
  batch_size: int = None  # global examples per step
  price: device_prices.Price = device_prices.Price(None, 'not priced')  # per device-hour
  devices: int = 1  # devices billed: chips, or CPU hosts

  @classmethod
  def create(cls, config, task, programs, cache_dir=None, traced_block=None):
    """The meter of a run: its step's model FLOPs and its mesh's peak. `traced_block`
    ((jax.stages.Traced, length) of a training block) is counted instead of tracing the
    step again where it holds the same work (TrainPrograms.counts_block_flops)."""
    peak = device_peaks.mesh_peak(programs.mesh, modeling.compute_dtype(config), cache_dir)
    return cls.with_peak(config, task, programs, peak, traced_block)

  @classmethod
  def with_peak(cls, config, task, programs, peak, traced_block=None, traced_blocks=None):
    """`create` with the mesh's peak already measured (before anything runs beside it).
    `traced_blocks` [(traced, length, steps)]: a run whose blocks differ in shape (length
    buckets) counts their mean per step, weighted by the steps each shape trains."""
    batch_size = config.data.batch_size
    analytic = flops.analytic_flops(config, task, batch_size)
    if analytic is not None:
      counted = analytic, f'analytic formula for {config.model.name}'
    else:
      traced_blocks = traced_blocks or ([(*traced_block, 1)] if traced_block else [])
      per_step = programs.mean_block_flops(traced_blocks) if traced_blocks else None
      if per_step is None:
        per_step = programs.step_flops(batch_size)
      counted = per_step, TRACED_SOURCE
    price, devices = device_prices.mesh_price(programs.mesh, config.cost.price_per_device_hour)
    return cls(*counted, peak, batch_size, price, devices)

  def mfu(self, steps_per_second):
    """The fraction of the peak reached at this pace, or None without a peak."""
    if self.peak.flops_per_second is None:
      return None
    return self.flops_per_step * steps_per_second / self.peak.flops_per_second

  def scalars(self, steps_per_second):
    """The train record's throughput fields for an interval run at `steps_per_second`."""
    scalars = {'train/model_tflops_per_second': self.flops_per_step * steps_per_second / 1e12}
    if self.peak.flops_per_second is not None:
      scalars['train/mfu'] = self.mfu(steps_per_second)
    return scalars

  def summary(self, steps, seconds, wall_seconds=None):
    """The run summary's fields for `steps` trained in `seconds` of training time, in a
    run that held its devices for `wall_seconds` (default: `seconds`), which is what is
    billed: set-up, compilation, evaluation and checkpoints included."""
    steps_per_second = steps / seconds if seconds else None
    return dict(
        flops_per_step=self.flops_per_step, flops_source=self.flops_source,
        model_flops=self.flops_per_step * steps,
        model_tflops_per_second=(self.flops_per_step * steps_per_second / 1e12
                                 if steps_per_second else None),
        mfu=self.mfu(steps_per_second) if steps_per_second else None,
        examples_per_second=(steps_per_second * self.batch_size
                             if steps_per_second and self.batch_size else None),
        **self.peak.to_json(), **self.cost(seconds if wall_seconds is None else wall_seconds))

  def cost(self, seconds):
    """Device-hours and dollars of holding the devices for `seconds`."""
    device_hours = self.devices * seconds / 3600
    return dict(devices=self.devices, device_hours=device_hours,
                cost_usd=device_prices.cost(device_hours, self.price), **self.price.to_json())

  def estimate(self, num_steps, assumed_mfu):
    """--dry_run's estimate of a run of `num_steps`: model FLOPs / (peak x assumed MFU)
    seconds, or None without a peak."""
    if self.peak.flops_per_second is None:
      return None
    seconds = self.flops_per_step * num_steps / (self.peak.flops_per_second * assumed_mfu)
    return dict(estimated_seconds=seconds, assumed_mfu=assumed_mfu,
                examples_per_second=(num_steps * self.batch_size / seconds if seconds else None),
                **self.cost(seconds))


  def describe(self, steps_per_second):
    """'12.3 TFLOP/s, MFU 45.6%' (or why there is no MFU), for log lines."""
    text = f'{self.flops_per_step * steps_per_second / 1e12:.3g} TFLOP/s'
    fraction = self.mfu(steps_per_second)
    return text + (f', MFU {100 * fraction:.1f}%' if fraction is not None else ', MFU n/a')


def describe_cost(cost):
  """'0.0012 device-hours (1 device(s)) x $0.389 = $0.00047 (source)', for log lines, from
  Meter.cost's fields."""
  dollars = (f' x ${cost["price_per_device_hour"]:.4g} = ${cost["cost_usd"]:.4g}'
             if cost['cost_usd'] is not None else ', cost unknown')
  return (f'{cost["device_hours"]:.4g} device-hours ({cost["devices"]} device(s)){dollars} '
          f'({cost["price_source"]})')
