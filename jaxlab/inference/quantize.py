"""Post-training int8 quantization through qwix (`jaxlab quantize`).

  w8    int8 weights (per output channel, absmax). Dense layers compute with float
        activations; convolutions quantize their input activations on the fly
        (dynamic range, per example), since qwix's int8 convolution needs both sides int8.
  w8a8  int8 weights and int8 activations with static scales, calibrated as the mean
        absmax over `calibration_batches` training batches (qwix's static-range flow:
        a QtProvider model collects the statistics, a PtqProvider model turns them into
        scales).

The quantized model is written as a workdir of its own, `<workdir>/quantized_<mode>/`
(the config, the data set's info and one checkpoint of the quantized variables, plus
`quantization.json`), so `jaxlab eval` and `jaxlab predict` use it with
`--workdir=<workdir>/quantized_<mode>`; `jaxlab.inference.trained_run.load` rebuilds the quantized
model from `quantization.json`. The float model and the quantized one are compared
(metrics, bytes of weights, measured inference time) in a table and in
`<workdir>/quantize_<mode>.json`.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlab.checkpoint import manager as checkpoint_lib
from jaxlab import config as config_lib
from jaxlab import data as data_lib
from jaxlab import storage
from jaxlab.inference import evaluate, quantized as quantized_lib
from jaxlab.inference import trained_run as inference
from jaxlab.models import modeling
from jaxlab.workdir import files as workdir_files
from jaxlab.data import pipeline, sources
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib

MODES = quantized_lib.MODES
DEFAULT_CALIBRATION_BATCHES = 10
TIMING_REPEATS = 20


def output_workdir(workdir, mode):
  return workdir_files.path(workdir, f'quantized_{mode}')


def _calibration_batches(run, train, count):
  """(args, kwargs) of the first `count` training batches, in order, unaugmented."""
  size = run.config.data.batch_size
  count = min(count, max(len(train) // size, 1))
  rows = sources.read_rows(train, 0, min(count * size, len(train)))
  batches = []
  for start in range(0, count * size, size):
    batch = {name: jnp.asarray(np.asarray(rows[name][start:start + size]))
             for name in run.task.batch_spec() if name in rows}
    batches.append(run.task.model_inputs(batch, None, train=False))
  return batches


def _weight_bytes(variables):
  return int(sum(np.dtype(leaf.dtype).itemsize * int(np.prod(leaf.shape))
                 for leaf in jax.tree.leaves(variables.params)))


def _seconds_per_batch(run, arrays):
  """Median wall time of the compiled eval forward pass on one placed batch."""
  forward = run.programs.eval_batch()
  jax.block_until_ready(forward(run.variables, arrays))  # compile
  times = []
  for _ in range(TIMING_REPEATS):
    start = time.perf_counter()
    jax.block_until_ready(forward(run.variables, arrays))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _timing_batch(run, test):
  """The first eval batch of the test set, placed as evaluation places it."""
  size = mesh_lib.eval_batch_size(run.config, run.programs.mesh)
  rows = sources.read_rows(test, 0, min(size, len(test)))
  return {name: pipeline.place(pipeline.pad_to_multiple(np.asarray(rows[name]), size),
                               run.programs.batch_sharding)
          for name in run.task.batch_spec()}, size


def write_quantized(run, variables, target, mode, calibration_batches):
  """The quantized workdir: config, data info, quantization.json and one checkpoint."""
  from etils import epath
  if storage.exists(target):  # a rerun replaces the previous quantization
    epath.Path(target).rmtree()
  storage.make_dirs(target)
  config_lib.save(run.config, target)
  data_lib.save_info(run.info, target)
  tokenizer = workdir_files.path(run.workdir, workdir_files.TOKENIZER)
  if storage.exists(tokenizer):
    storage.write_bytes(workdir_files.path(target, workdir_files.TOKENIZER),
                        epath.Path(tokenizer).read_bytes())
  qwix = quantized_lib.import_qwix()
  spec = dict(mode=mode, source_workdir=run.workdir, source_step=run.step,
              calibration_batches=calibration_batches if mode == 'w8a8' else 0,
              qwix_version=qwix.__version__)
  storage.write_text(workdir_files.path(target, workdir_files.QUANTIZATION),
                     json.dumps(spec, indent=2) + '\n')
  checkpointer = checkpoint_lib.Checkpointer(target, keep=1, best_metric=None,
                                             async_save=False)
  try:
    checkpointer.save(run.step, dict(params=variables.params, model_state=variables.model_state),
                      dict(step=int(run.step), quantization=mode), {})
    checkpointer.wait()
  finally:
    checkpointer.close()


def check_mode(mode, calibration_batches):
  if mode not in MODES:
    raise UserError(f'--mode={mode} is not a quantization mode; use w8 (int8 weights) or '
                    'w8a8 (int8 weights and activations, calibrated).')
  if calibration_batches is not None and mode != 'w8a8':
    raise UserError('--calibration_batches sets the activation scales of --mode=w8a8; w8 '
                    'quantizes weights only and needs none. Drop the flag or pass --mode=w8a8.')
  if calibration_batches is not None and calibration_batches < 1:
    raise UserError(f'--calibration_batches={calibration_batches} must be at least 1.')


def quantize(workdir, which='best', mode='w8', calibration_batches=None):
  """Quantizes a trained run; returns the report (also written as JSON)."""
  check_mode(mode, calibration_batches)
  calibration_batches = calibration_batches or DEFAULT_CALIBRATION_BATCHES
  workdir = storage.absolute(workdir)
  if storage.exists(workdir_files.path(workdir, workdir_files.QUANTIZATION)):
    raise UserError(f'{workdir} holds a quantized model already; quantize the float run it '
                    'came from (the parent workdir).')
  run = inference.load(workdir, which)
  model = nnx.merge(run.programs.model.eval_graph, *jax.device_get(
      (run.variables.params, run.variables.model_state)))
  splits = data_lib.load(run.config.data, run.workdir)
  calibration = _calibration_batches(run, splits.train, calibration_batches) \
      if mode == 'w8a8' else ()
  quantized = quantized_lib.quantized_model(model, run.task, mode, calibration)
  _, params, rest = nnx.split(quantized, nnx.Param, ...)
  variables = modeling.Variables(nnx.to_pure_dict(params), nnx.to_pure_dict(rest))
  target = output_workdir(workdir, mode)
  write_quantized(run, variables, target, mode, calibration_batches)
  quantized_run = inference.load(target, 'latest')
  report = compare(run, quantized_run, mode, splits.test)
  report.update(quantized_workdir=target, calibration_batches=
                calibration_batches if mode == 'w8a8' else 0)
  return report


def compare(float_run, quantized_run, mode, test):
  """Metrics, bytes of weights and inference time (one eval batch of `test`, the
  compiled forward pass, median of TIMING_REPEATS) of the float and quantized runs."""
  metrics = {name: evaluate.evaluate(run) for name, run in
             (('float', float_run), ('int8', quantized_run))}
  arrays, batch_size = _timing_batch(float_run, test)
  seconds = {name: _seconds_per_batch(run, arrays) for name, run in
             (('float', float_run), ('int8', quantized_run))}
  sizes = {name: _weight_bytes(run.variables) for name, run in
           (('float', float_run), ('int8', quantized_run))}
  scalar = lambda m: {k: float(v) for k, v in m.items()
                      if np.ndim(v) == 0 and k != 'step' and not k.startswith('num_')}
  return dict(
      mode=mode, step=float_run.step, backend=jax.default_backend(),
      float_metrics=scalar(metrics['float']), int8_metrics=scalar(metrics['int8']),
      metric_change={k: scalar(metrics['int8'])[k] - v
                     for k, v in scalar(metrics['float']).items()},
      float_weight_bytes=sizes['float'], int8_weight_bytes=sizes['int8'],
      size_ratio=sizes['int8'] / sizes['float'],
      timing_batch_size=batch_size, float_seconds_per_batch=seconds['float'],
      int8_seconds_per_batch=seconds['int8'],
      speedup=seconds['float'] / seconds['int8'])
