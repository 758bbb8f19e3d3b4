"""Evaluation: the task's metrics of a model on a test set, held on the devices whole
(small sets) or streamed batch by batch; and `jaxlab eval`, which does it for a
saved checkpoint. Imports nothing from training."""


import jax
import numpy as np

from jaxlab import data as data_lib
from jaxlab.inference import trained_run as inference
from jaxlab.privacy import accounting as privacy
from jaxlab.data import pipeline, placement, sources
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.parallel import sharding


def place_test_set(source, task, eval_batch_size, mesh):
  """The task's features of the whole test set, padded to whole eval batches, on every
  device."""
  rows = sources.read_resident(source, 0, len(source))
  replicated = sharding.replicated(mesh)
  return {name: pipeline.place(pipeline.pad_to_multiple(np.asarray(rows[name]), eval_batch_size),
                               replicated)
          for name in task.batch_spec()}


def resident_outputs(programs, variables, arrays, eval_batch_size, count):
  outputs = jax.device_get(programs.eval_resident(eval_batch_size)(variables, arrays))
  return {k: np.asarray(v)[:count] for k, v in outputs.items()}


def streamed_outputs(programs, variables, source, task, eval_batch_size, data_config,
                     transform=None):
  """Outputs of every real example of a streamed test set (padding and bad records left
  out), in order."""
  from jaxlab.data import stream
  evaluate_batch = programs.eval_batch()
  kept = []
  for arrays in stream.eval_batches(source, example_spec=task.batch_spec(),
                                    batch_size=eval_batch_size, sharding=programs.batch_sharding,
                                    transform=transform,
                                    num_workers=max(data_config.num_workers, 0)):
    outputs = jax.device_get(evaluate_batch(variables, arrays))
    real = np.asarray(outputs.pop('mask')) > 0
    kept.append({k: np.asarray(v)[real] for k, v in outputs.items()})
  return {k: np.concatenate([part[k] for part in kept]) for k in kept[0]} if kept else {}


def outputs(programs, variables, source, task, eval_batch_size, data_config, transform=None):
  """Per-example outputs of a test set: held on the devices whole when it fits (by
  data.placement's rule), streamed otherwise."""
  mesh = programs.mesh
  if placement.choose(data_config, task.info, len(source), mesh, per_device=False) == 'device':
    test = place_test_set(source, task, eval_batch_size, mesh)
    return resident_outputs(programs, variables, test, eval_batch_size, len(source))
  return streamed_outputs(programs, variables, source, task, eval_batch_size, data_config,
                          transform)


def evaluate(run, worst_examples_path=None):
  """The task's metrics of `run` (inference.TrainedRun) on its configured test set. A task
  that lists its worst-scoring examples (`write_worst_examples`) writes them to
  `worst_examples_path`, named in the result as 'worst_examples'."""
  splits = data_lib.load(run.config.data, run.workdir)
  eval_batch = mesh_lib.eval_batch_size(run.config, run.programs.mesh)
  test_outputs = outputs(run.programs, run.variables, splits.test, run.task, eval_batch,
                         run.config.data, splits.test_transform)
  result = run.task.eval_metrics(test_outputs)
  if worst_examples_path and hasattr(run.task, 'write_worst_examples'):
    run.task.write_worst_examples(test_outputs, worst_examples_path)
    result = dict(result, worst_examples=str(worst_examples_path))
  result = dict(step=run.step, num_examples=len(splits.test), **result)
  report = privacy.report(run.config, len(splits.train), run.step)
  return result if report is None else dict(result, privacy=report)


# What each `jaxlab quantize --mode` made int8 (jaxlab.inference.quantize's docstring says how).
QUANTIZED = {'w8': 'int8 weights', 'w8a8': 'int8 weights and activations'}


def what_was_evaluated(result):
  """Lines saying what the numbers are of, beyond the table: an int8 model's mode and
  origin, a private run's (ε, δ); none for a plain float run."""
  lines = []
  quantization = result.get('quantization')
  if quantization:
    mode = quantization['mode']
    lines.append(f'Model: int8, quantized with --mode={mode} ({QUANTIZED.get(mode, mode)}) from '
                 f'step {quantization["source_step"]} of {quantization["source_workdir"]}.')
  if result.get('privacy'):
    lines.append(f'Privacy: trained with DP-SGD, {privacy.describe(result["privacy"])}.')
  return lines


def evaluate_workdir(workdir, which):
  """(metrics, step) of the checkpoint `which` of a workdir (what `jaxlab eval` shows); a
  quantized workdir's metrics say how it was quantized; a task with sequence outputs also
  writes its worst-scoring test examples beside them (`write_worst_examples`)."""
  from jaxlab.workdir import files  # pylint: disable=g-import-not-at-top
  run = inference.load(workdir, which)
  worst = (files.path(workdir, files.worst_examples(run.step, run.task.worst_examples_extension))
           if hasattr(run.task, 'write_worst_examples') else None)
  result = evaluate(run, worst)
  if run.quantization:
    result = dict(result, quantization=run.quantization)
  return result, run.step
