"""One process of a multi-process training run on 127.0.0.1: trains, then saves the
parameters it holds locally to OUT (npz), so a test can compare processes.

  python -m tests.multihost_worker PROCESS_ID NUM_PROCESSES PORT WORKDIR OUT [KEY=VALUE ...]
"""

import ast
import sys

import jax
import numpy as np

from jaxlab.runtime import setup as runtime
from tests.conftest import load_config


def main(process_id, num_processes, port, workdir, out, *overrides):
  if num_processes > 1:
    runtime.setup(coordinator=f'127.0.0.1:{port}', num_processes=num_processes,
                  process_id=process_id, timeout=120)
  else:
    runtime.setup()
  from jaxlab.train import loop
  config = load_config('digits_cnn', **{k: ast.literal_eval(v) for k, v in
                                        (o.split('=', 1) for o in overrides)})
  summary = loop.run(config, workdir)
  local = {'/'.join(str(getattr(k, 'key', k)) for k in path): np.asarray(leaf.addressable_data(0))
           for path, leaf in jax.tree_util.tree_leaves_with_path(loop_state(summary))}
  np.savez(out, **local)
  print(f'process {jax.process_index()} of {jax.process_count()} on {jax.device_count()} '
        f'devices: step {summary["step"]}', flush=True)


def loop_state(summary):
  return summary['state'].params


if __name__ == '__main__':
  process_id, num_processes, port = map(int, sys.argv[1:4])
  main(process_id, num_processes, port, *sys.argv[4:])
