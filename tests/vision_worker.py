"""The vision models on 8 fake CPU devices, as JSON on the last line: for each smoke
experiment, the per-step losses and final BatchNorm statistics of one compiled block of
train steps on 1 device and on a data x fsdp x tensor mesh of 8, and the `--dry_run`
report (with its sharding table) of that mesh.

Started by tests/test_vision_models.py in one subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the flag must precede JAX's start).
"""

import contextlib
import io
import json

import jax
import numpy as np

from tests.conftest import load_config

EXPERIMENTS = ('cifar10_resnet18', 'cifar10_vit')
LAYOUTS = {
    'single': dict(data=1, fsdp=1, tensor=1),
    # The batch is split over data x fsdp (4 shards: BatchNorm's batch mean must still be
    # the global one), parameters over fsdp and tensor.
    'dp_fsdp_tp': dict(data=2, fsdp=2, tensor=2),
}
STEPS = 4


def _config(name, layout):
  config = load_config(name, data__placement='stream', steps_per_loop=STEPS, num_steps=STEPS)
  config.mesh.update(LAYOUTS[layout])
  return config


def train(name, layout):
  """(loss of each step, {BatchNorm statistic: values}) after one block of STEPS steps:
  the compiled block that streamed training runs, on the smoke data's first batches."""
  from jaxlab import data as data_lib
  from jaxlab import tasks
  from jaxlab.models import modeling
  from jaxlab.inference import programs
  from jaxlab.data import sources
  from jaxlab.parallel import mesh as mesh_lib
  from jaxlab.train import programs as train_programs, state as state_lib
  config = _config(name, layout)
  mesh = mesh_lib.create(config.mesh)
  splits = data_lib.load(config.data)
  task = tasks.create(config, splits.info, compute_dtype=modeling.compute_dtype(config))
  compiled = train_programs.TrainPrograms(config, task, mesh, STEPS)
  state = state_lib.create(config, task, compiled.tx, compiled.layout)
  batch = config.data.batch_size
  rows = sources.read_rows(splits.train, 0, STEPS * batch)
  block = {k: np.asarray(rows[k]).reshape(STEPS, batch, *np.shape(rows[k])[1:])
           for k in task.batch_spec()}
  block['mask'] = np.ones((STEPS, batch), np.float32)
  block = jax.device_put(block, programs.block_sharding(mesh))
  state, metrics = compiled.streamed_block()(state, block)
  stats = jax.tree_util.tree_leaves_with_path(jax.device_get(state.model_state))
  return (np.asarray(metrics['loss']).tolist(),
          {jax.tree_util.keystr(path): np.asarray(v).tolist() for path, v in stats})


def dry_run_report(name, layout):
  from jaxlab.commands import train as train_command
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    train_command.dry_run_report(_config(name, layout), verbose=True)  # --dry_run --verbose
  return printed.getvalue()


def main():
  # The dry run compiles the very block that `train` ran: the suite's compilation cache
  # lets it reuse that compile instead of paying for it twice (and a later run, all).
  from jaxlab.runtime import setup
  setup.enable_compilation_cache()
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  result = {'devices': jax.device_count(), 'runs': {}, 'dry_runs': {}}
  for name in EXPERIMENTS:
    result['runs'][name] = {layout: train(name, layout) for layout in LAYOUTS}
    result['dry_runs'][name] = dry_run_report(name, 'dp_fsdp_tp')
  print(json.dumps(result))


if __name__ == '__main__':
  main()
