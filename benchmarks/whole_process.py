"""The `whole_process` workload: what a user waits for, from typing the command to
the prompt coming back.

    jaxlab train --config=experiments/mnist_mlp.py --config.data.name=synthetic --workdir=DIR
    python -m benchmarks.peers.torch_script --workdir=DIR

Both train the Keras-quickstart MLP on the same 60,000 synthetic MNIST-shaped images
(jaxlab.data.synthetic, made in the process) for 5 epochs of 1,875 steps, evaluate on
the 10,000 test images after every epoch and save the weights; jaxlab also writes its
metrics, TensorBoard events, a checkpoint per epoch and two plots. Each is timed from
outside, start to exit, as a subprocess of this runner. jaxlab runs twice per repeat:
first with an empty persistent compilation cache (a first run on a machine), then with
the cache that the first run left (every later run of the same config).
"""

import os
import re
import subprocess
import sys
import time

from benchmarks import environment

ROOT = environment.ROOT
NAME = 'whole_process'
PEERS = ('jaxlab_cli', 'jaxlab_cli_warm_cache', 'torch_script')
FULL = dict(epochs=5, num_train=None, num_test=None)  # None: the data set's own sizes
SHORT = dict(epochs=2, num_train=4096, num_test=1000)
_DONE = re.compile(r'Done: step (\d+), test accuracy (\d+\.\d+)')


def jaxlab_command(workdir, sizes):
  command = [sys.executable, '-m', 'jaxlab.main', 'train', '--config=experiments/mnist_mlp.py',
             '--config.data.name=synthetic', f'--workdir={workdir}']
  if sizes['num_train']:
    command += [f'--config.data.num_train={sizes["num_train"]}',
                f'--config.data.num_test={sizes["num_test"]}',
                f'--config.num_epochs={sizes["epochs"]}']
  return command


def torch_command(workdir, sizes):
  command = [sys.executable, '-m', 'benchmarks.peers.torch_script', f'--workdir={workdir}',
             f'--epochs={sizes["epochs"]}']
  if sizes['num_train']:
    command += [f'--num_train={sizes["num_train"]}', f'--num_test={sizes["num_test"]}']
  return command


def timed(command, env):
  """(wall seconds, {'steps', 'test_accuracy'}) of one run, parsed from its 'Done:' line."""
  load = environment.load_average()
  started = time.perf_counter()
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
  seconds = time.perf_counter() - started
  done = _DONE.search(result.stdout)
  if result.returncode != 0 or not done:
    raise RuntimeError(f'{" ".join(command)} failed (exit {result.returncode}):\n'
                       f'{result.stdout[-2000:]}\n{result.stderr[-3000:]}')
  return seconds, dict(status='ok', steps=int(done.group(1)),
                       test_accuracy=float(done.group(2)), load_average=load,
                       command=command)


def run(peers, repeats, short, tmp, peer_env):
  """{peer: [(seconds, result), ...]}, the runs interleaved per repeat. `peers` are the
  suite's names: 'jaxlab' runs both jaxlab rows, 'torch' the PyTorch script."""
  sizes = SHORT if short else FULL
  wanted = {'jaxlab_cli': 'jaxlab', 'jaxlab_cli_warm_cache': 'jaxlab', 'torch_script': 'torch'}
  measured = {peer: [] for peer in PEERS if wanted[peer] in peers}
  for repeat in range(repeats):
    cache = os.path.join(tmp, f'xla_cache_{repeat}')  # empty: the cold run fills it
    jaxlab_env = dict(peer_env, JAXLAB_COMPILATION_CACHE=cache)
    commands = {
        'jaxlab_cli': (jaxlab_command(os.path.join(tmp, f'jaxlab_{repeat}'), sizes), jaxlab_env),
        'jaxlab_cli_warm_cache': (jaxlab_command(os.path.join(tmp, f'jaxlab_warm_{repeat}'),
                                                 sizes), jaxlab_env),
        'torch_script': (torch_command(os.path.join(tmp, f'torch_{repeat}'), sizes), peer_env),
    }
    for peer in measured:
      seconds, result = timed(*commands[peer])
      measured[peer].append((seconds, result))
      print(f'  {NAME:16s} {peer:26s} process {seconds:6.1f}s  steps {result["steps"]}  '
            f'accuracy {result["test_accuracy"]:.4f}', flush=True)
  return measured
