"""Model FLOPs utilisation: model FLOPs per second over the mesh's peak.

MFU counts model FLOPs (jaxlab.flops: what the model needs, not what remat or gradient
accumulation make the device do), so it compares runs and settings fairly; the peak is
jaxlab.device_peaks' (a vendor figure per chip, or on CPU the measured GEMM rate). All
of it is host arithmetic on wall times the loop already takes: nothing is added to the
compiled step and nothing waits on the device.
"""

import dataclasses

from jaxlab import device_peaks, flops, modeling


@dataclasses.dataclass(frozen=True)
class Meter:
  flops_per_step: float  # model FLOPs of one step on the global batch
  flops_source: str  # how they were counted
  peak: device_peaks.Peak  # of the whole mesh

  @classmethod
  def create(cls, config, task, programs, cache_dir=None):
    """The meter of a run: its step's model FLOPs and its mesh's peak."""
    batch_size = config.data.batch_size
    analytic = flops.analytic_flops(config, task, batch_size)
    if analytic is not None:
      counted = analytic, f'analytic formula for {config.model.name}'
    else:
      counted = (programs.step_flops(batch_size),
                 'matmuls and convolutions of the traced train step')
    peak = device_peaks.mesh_peak(programs.mesh, modeling.compute_dtype(config), cache_dir)
    return cls(*counted, peak)

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

  def summary(self, steps, seconds):
    """The run summary's fields for `steps` trained in `seconds` of training time."""
    steps_per_second = steps / seconds if seconds else None
    return dict(
        flops_per_step=self.flops_per_step, flops_source=self.flops_source,
        model_flops=self.flops_per_step * steps,
        model_tflops_per_second=(self.flops_per_step * steps_per_second / 1e12
                                 if steps_per_second else None),
        mfu=self.mfu(steps_per_second) if steps_per_second else None,
        **self.peak.to_json())

  def describe(self, steps_per_second):
    """'12.3 TFLOP/s, MFU 45.6%' (or why there is no MFU), for log lines."""
    text = f'{self.flops_per_step * steps_per_second / 1e12:.3g} TFLOP/s'
    fraction = self.mfu(steps_per_second)
    return text + (f', MFU {100 * fraction:.1f}%' if fraction is not None else ', MFU n/a')
