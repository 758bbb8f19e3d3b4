"""The offline text experiment's three models on 8 fake CPU devices, in one process.

For each model: the smoke run on one device, then `eval` and `predict` (on a .txt file)
of its checkpoint; the same run under data x FSDP x tensor parallelism (2 x 2 x 2) and its
parameter sharding table; for one model, what `jaxlab train --dry_run` prints for that
layout (a compile of its own). One process, so JAX starts once.

Started by tests/test_text_models.py with XLA_FLAGS=--xla_force_host_platform_device_count=8;
prints its result as JSON (last line).
"""

import contextlib
import io
import json
import pathlib
import sys

import numpy as np

from tests.conftest import load_config, read_metrics
from tests.multidevice_worker import LAYOUTS

MODELS = ('lstm', 'gru', 'transformer')
SHARDED = dict(data=2, fsdp=2, tensor=2)  # every axis at once: FSDP and TP beside DP


def _config(model, mesh, **overrides):
  config = load_config('python_snippets_text', f'{model},smoke', **overrides)
  for axis, size in mesh.items():
    config.mesh[axis] = size
  return config


def _printed(function, *args, **kwargs):
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    value = function(*args, **kwargs)
  return value, out.getvalue()


def _losses(workdir):
  return [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]


def end_to_end(model, workdir, text_file):
  """Train on one device, then eval and predict its checkpoint as the CLI would."""
  from jaxlab import data as data_lib
  from jaxlab.commands import eval as eval_command
  from jaxlab.inference import trained_run as inference
  from jaxlab.commands import predict as predict_command
  from jaxlab.data import sources
  from jaxlab.train import loop
  config = _config(model, LAYOUTS['single'])
  loop.run(config, workdir)
  evals = [r for r in read_metrics(workdir) if 'eval/accuracy' in r]
  result, _ = _printed(eval_command.main, workdir, 'latest')
  code, printed = _printed(predict_command.main, workdir, [text_file], checkpoint='latest', top_k_count=8,
                           as_json=True)
  # The file's tokens are those of the same text in the test split.
  run = inference.load(workdir, 'latest')
  from_file = run.task.predict_inputs([text_file])[0]['tokens']
  test = data_lib.load(config.data).test
  return dict(losses=_losses(workdir), train_eval=evals[-1]['eval/accuracy'],
              eval=result['accuracy'], predict_exit=code,
              prediction=json.loads(printed.strip().splitlines()[-1]),
              same_tokens=bool(np.array_equal(from_file,
                                              sources.read_rows(test, 0, 1)['tokens'])))


def sharding_table(config):
  """{parameter path: PartitionSpec text}, as the --dry_run table shows them."""
  from jaxlab import tasks
  from jaxlab.perf import dry_run
  from jaxlab.models import modeling
  from jaxlab.parallel import mesh as mesh_lib
  info, _ = dry_run.shape_info(config.data)
  task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config))
  _, layout = modeling.variables_layout(config, task, mesh_lib.create(config.mesh))
  return {path: str(spec) for path, _, spec in layout.param_table}


def run(workdir, text_file, dry_run_model='transformer'):
  from jaxlab.commands import train as train_command
  from jaxlab.train import loop
  result = {}
  for model in MODELS:
    entry = end_to_end(model, f'{workdir}/{model}-single', text_file)
    sharded = _config(model, SHARDED, eval_every_steps=0, checkpoint_every_steps=0)
    loop.run(sharded, f'{workdir}/{model}-sharded')
    entry['sharded_losses'] = _losses(f'{workdir}/{model}-sharded')
    entry['table'] = sharding_table(sharded)
    if model == dry_run_model:
      entry['dry_run'] = _printed(train_command.dry_run_report, sharded, verbose=True)[1]  # --dry_run --verbose
    result[model] = entry
  return result


if __name__ == '__main__':
  print(json.dumps(run(**json.loads(sys.argv[1]))))
