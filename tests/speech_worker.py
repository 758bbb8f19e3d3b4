"""The speech models on 8 fake CPU devices, all checks in one JAX process (printed as
JSON on the last line): loss curves on one device and on a mesh of all three axes
(data=2, fsdp=2, tensor=2), and the sharding tables that --dry_run prints (built from the same
layout, without compiling the block again: the runs above compiled it on these meshes).

Started by tests/test_speech.py with XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

import json
import sys

from tests.conftest import load_config, read_metrics
from tests.multidevice_worker import LAYOUTS

MODELS = {'speech_cnn': 'smoke', 'speech_gru': 'gru,smoke'}


def _config(arg, layout, **overrides):
  config = load_config('speech_commands_cnn', arg, **overrides)
  for axis, size in LAYOUTS[layout].items():
    config.mesh[axis] = size
  return config


def sharding_table(config):
  """The rows (path, shape, spec) of `jaxlab train --dry_run`'s table."""
  from jaxlab import tasks
  from jaxlab.perf import dry_run
  from jaxlab.models import modeling
  from jaxlab.parallel import mesh as mesh_lib
  from jaxlab.train import programs as programs_lib
  info, _ = dry_run.shape_info(config.data)
  task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config))
  programs = programs_lib.TrainPrograms(config, task, mesh_lib.create(config.mesh),
                                        config.num_steps)
  return [(path, shape, str(spec)) for path, shape, spec in programs.layout.param_table]


def run(workdir, layouts, table_layouts):
  from jaxlab.train import loop
  result = {}
  for model, arg in MODELS.items():
    losses = {}
    for layout in layouts:
      config = _config(arg, layout, num_steps=8, steps_per_loop=4, log_every_steps=2,
                       eval_every_steps=0, checkpoint_every_steps=0)
      loop.run(config, f'{workdir}/{model}-{layout}')
      losses[layout] = [r['train/loss'] for r in read_metrics(f'{workdir}/{model}-{layout}')
                        if 'train/loss' in r]
    tables = {layout: sharding_table(_config(arg, layout)) for layout in table_layouts}
    result[model] = dict(losses=losses, tables=tables)
  return result


if __name__ == '__main__':
  print(json.dumps(run(**json.loads(sys.argv[1]))))
