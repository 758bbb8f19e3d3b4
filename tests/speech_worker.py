"""The speech models on 8 fake CPU devices, all checks in one JAX process (printed as
JSON on the last line): loss curves on one device, under FSDP (fsdp=8) and DP+TP
(data=4, tensor=2), and the dry run's sharding tables.

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


def run(workdir, layouts, table_layouts):
  from jaxlab import dry_run
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
    tables = {layout: dry_run.analyse(_config(arg, layout))['sharding_table']
              for layout in table_layouts}
    result[model] = dict(losses=losses, tables=tables)
  return result


if __name__ == '__main__':
  print(json.dumps(run(**json.loads(sys.argv[1]))))
