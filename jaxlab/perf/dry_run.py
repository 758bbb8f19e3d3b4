"""`jaxlab train --dry_run`: compile one training block without data or training, and
report what a run would need: parameters, model FLOPs per step and per run and the
peak MFU would be measured against, the estimated training time, device-hours and cloud
cost (at config.cost.assumed_mfu), memory per device and whether it fits, and (with
--verbose) the config and how every parameter is sharded over the mesh.

The report ends with a short summary: the figures to decide on, the verdict, and when
the run would not fit, the flags to turn first. It is a command's output (it prints);
`analyse` is the library part.
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxlab import config as config_lib
from jaxlab import data as data_lib
from jaxlab import tasks
from jaxlab.perf import memory_fit
from jaxlab.models import modeling
from jaxlab.privacy import accounting as privacy
from jaxlab.data import pipeline
from jaxlab.data import placement as placement_lib
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.parallel import sharding
from jaxlab.train import inputs
from jaxlab.perf import mfu
from jaxlab.train import programs as programs_lib


def shape_info(data_config):
  """DatasetInfo and train size: from the known shapes (no data is loaded), or from
  the data set itself."""
  known = data_lib.known_info(data_config)
  if known is not None:
    return known
  splits = data_lib.load(data_config)
  return splits.info, len(splits.train)


class Lowered(NamedTuple):
  """One training block lowered for the run's mesh, before XLA compiles it."""
  block: Any  # jax.stages.Lowered
  traced: Any  # jax.stages.Traced: the block's jaxpr, where the step's FLOPs are counted
  programs: programs_lib.TrainPrograms
  task: Any
  placement: str  # 'device' or 'stream'
  length: int  # steps per compiled call
  num_train: int
  available: Any  # memory_fit.available() of the mesh, read before any allocation


def lower(config):
  """The run's training block traced and lowered onto its mesh, from shapes alone: what
  fails here (a config the model or the mesh rejects, a batch that does not split) fails
  the run the same way, in seconds rather than after an XLA compile."""
  mesh = mesh_lib.create(config.mesh)
  available = memory_fit.available(mesh)  # read before anything is allocated
  mesh_lib.check_batch_size(config.data.batch_size, mesh)
  info, num_train = shape_info(config.data)
  task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config))
  inputs.check_batch_spec(task, info)
  steps_per_epoch = pipeline.training_steps_per_epoch(num_train, config.data.batch_size)
  programs = programs_lib.TrainPrograms(config, task, mesh,
                                        config_lib.total_steps(config, steps_per_epoch), num_train)
  length = max(1, min(int(config.steps_per_loop), programs.num_steps))
  placement = placement_lib.choose(config.data, info, num_train, mesh)
  if placement == 'device':
    block = programs.resident_block(length, steps_per_epoch, config.data.batch_size)
    args = _abstract_resident(task, length, steps_per_epoch, num_train, mesh)
  else:
    block = programs.streamed_block()
    args = (programs_lib.abstract_batches(task, length, config.data.batch_size, mesh,
                                          with_mask=True),)
  traced = block.trace(programs.layout.abstract(), *args, *programs.teacher_args)
  return Lowered(traced.lower(), traced, programs, task, placement, length, num_train, available)


def analyse(config):
  """A dict with the compiled block's costs, whether it fits the devices' memory (and
  the flags that shrink it) and the parameter sharding table."""
  lowered = lower(config)
  programs, task, placement = lowered.programs, lowered.task, lowered.placement
  mesh = programs.mesh
  compiled = lowered.block.compile()
  meter = mfu.Meter.create(config, task, programs, traced_block=(lowered.traced, lowered.length))
  memory = compiled.memory_analysis()
  fit = memory_fit.of_compiled(compiled, lowered.available)
  params = jax.tree.leaves(programs.layout.shapes.params)
  return dict(
      task=type(task).__name__, placement=placement,
      num_params=int(sum(math.prod(p.shape) for p in params)),
      param_bytes=int(sum(math.prod(p.shape) * p.dtype.itemsize for p in params)),
      trained_params=programs.trainability.counts(programs.layout.shapes.params)[0],
      opt_state_bytes=_bytes(programs.layout.shapes.opt_state),
      flops_per_step=meter.flops_per_step, flops_source=meter.flops_source,
      flops_per_run=meter.flops_per_step * programs.num_steps, **meter.peak.to_json(),
      estimate=meter.estimate(programs.num_steps, config.cost.assumed_mfu),
      steps_per_loop=lowered.length, num_steps=programs.num_steps, mesh=dict(mesh.shape),
      memory_per_device=_memory(memory), fit=fit,
      knobs=memory_fit.knobs(config, mesh, fit, placement) if fit and not fit.fits else [],
      privacy=privacy.report(config, lowered.num_train, programs.num_steps),
      sharding_table=[(path, shape, str(spec)) for path, shape, spec in programs.layout.param_table])


def _bytes(tree):
  return int(sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def _abstract_resident(task, length, steps_per_epoch, num_train, mesh):
  """ShapeDtypeStructs of the resident block's arguments: permutations and data."""
  replicated, by_example = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  spanned = pipeline.epochs_spanned(length, steps_per_epoch)
  padded = mesh_lib.round_up_to_shards(num_train, mesh)
  data = {name: jax.ShapeDtypeStruct((padded, *shape), dtype, sharding=by_example)
          for name, (shape, dtype) in task.batch_spec().items()}
  return jax.ShapeDtypeStruct((spanned, num_train), jnp.int32, sharding=replicated), data


def _memory(memory):
  if memory is None:
    return None
  fields = ('argument_size_in_bytes', 'output_size_in_bytes', 'temp_size_in_bytes',
            'generated_code_size_in_bytes', 'alias_size_in_bytes')
  return {f.replace('_in_bytes', ''): int(getattr(memory, f, 0)) for f in fields}


def _estimate_line(estimate):
  if estimate is None:
    return 'estimated time and cost: none (no peak to divide the FLOPs by)'
  return (f'estimated (FLOPs per run / (peak x assumed MFU {estimate["assumed_mfu"]:.0%}), an '
          f'estimate, not a measurement): {estimate["estimated_seconds"]:.4g} s of training, '
          f'{estimate["examples_per_second"]:.4g} examples/s, {mfu.describe_cost(estimate)}')


def summary_lines(result, batch_size):
  """The report's last lines: the figures to decide on, the verdict and the knobs."""
  lines = ['summary:',
           f'  parameters: {result["num_params"]:,} ({memory_fit.size(result["param_bytes"])}), '
           f'trained: {result["trained_params"]:,}; optimizer state: '
           f'{memory_fit.size(result["opt_state_bytes"])}',
           f'  model FLOPs per step: {result["flops_per_step"]:.4g} (global batch {batch_size})']
  estimate = result['estimate']
  if estimate:
    per_step = estimate['estimated_seconds'] / result['num_steps']
    lines.append(f'  estimated step time: {per_step:.3g} s at an assumed MFU of '
                 f'{estimate["assumed_mfu"]:.0%} (--config.cost.assumed_mfu), '
                 f'{_duration(estimate["estimated_seconds"])} for {result["num_steps"]:,} steps')
  else:
    lines.append(f'  estimated step time: none ({result["peak_source"]})')
  fit = result['fit']
  if fit is None:
    lines.append('  memory: no verdict (this backend gives no memory analysis)')
    return lines
  lines.append(f'  peak memory per device (XLA\'s estimate): {memory_fit.size(fit.needed)}')
  lines.append(f'  {fit.verdict()}')
  if fit.refused:
    lines.append(f'  `jaxlab train` refuses it (above {memory_fit.REFUSE_ABOVE}x) unless '
                 '--config.allow_oversubscribe=True')
  elif not fit.fits:
    lines.append(f'  `jaxlab train` tries it (it refuses above {memory_fit.REFUSE_ABOVE}x)')
  if result['knobs']:
    lines.append('  first knobs to turn:')
    lines += [f'    {flag}  # {why}' for flag, why in result['knobs']]
  return lines


def _duration(seconds):
  """Seconds in the largest unit that keeps the number readable."""
  for unit, size in (('days', 86400), ('hours', 3600), ('minutes', 60)):
    if seconds >= 2 * size:
      return f'{seconds / size:.3g} {unit}'
  return f'{seconds:.3g} s'


def report_lines(config, result, verbose=False):
  """The report of analyse()'s `result` as lines: (with `verbose`, the config first and
  the sharding table), the summary last."""
  lines = [f'config:\n{config}'] if verbose else []
  lines += [f'task: {result["task"]}  data placement: {result["placement"]}',
            f'mesh: {result["mesh"]}  steps: {result["num_steps"]}  '
            f'steps per compiled call: {result["steps_per_loop"]}',
            f'model FLOPs per train step (global batch): {result["flops_per_step"]:.4g} '
            f'({result["flops_source"]}); per run of {result["num_steps"]} steps: '
            f'{result["flops_per_run"]:.4g}']
  if result['privacy']:
    lines.append(f'privacy budget of the whole run: {privacy.describe(result["privacy"])}')
  peak = result['peak_flops_per_second']
  lines.append(f'MFU peak: {f"{peak / 1e12:.4g} TFLOP/s, " if peak else "none, "}'
               f'{result["peak_source"]}')
  lines.append(_estimate_line(result['estimate']))
  if result['memory_per_device']:
    lines.append('compiled memory per device: ' + ', '.join(
        f'{k} {memory_fit.size(v)}' for k, v in result['memory_per_device'].items()))
  if verbose:
    lines += _sharding_table_lines(result['sharding_table'])
  return lines + [''] + summary_lines(result, config.data.batch_size)


def _sharding_table_lines(table):
  width = max(len(row[0]) for row in table)
  return ['', f'{"parameter":<{width}}  {"shape":<18} sharding'] + [
      f'{path:<{width}}  {str(shape):<18} {spec}' for path, shape, spec in table]
