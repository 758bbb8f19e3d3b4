"""What the task benchmarks (detection, speech recognition, seq2seq) share: one full
`jaxlab train` of an experiment, its metrics read back, and the median time of a compiled
call."""

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(experiment, workdir, overrides=()):
  """Seconds of `jaxlab train --config=EXPERIMENT` into `workdir`; None when the workdir
  already holds a finished run's checkpoints (the benchmark then reads it again)."""
  if os.path.exists(os.path.join(workdir, 'checkpoints')):
    return None
  started = time.perf_counter()
  subprocess.run([sys.executable, '-m', 'jaxlab.main', 'train', f'--config={experiment}',
                  f'--workdir={workdir}', *overrides], cwd=ROOT, check=True)
  return time.perf_counter() - started


def last_records(workdir, *keys):
  """For each key, the last record of the run's metrics.jsonl that holds it."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return tuple([r for r in records if key in r][-1] for key in keys)


def median_seconds(function, args, repeats):
  """Median wall time of `function(*args)` to its results being ready, after one call
  that compiles it."""
  import jax  # pylint: disable=import-outside-toplevel
  jax.block_until_ready(function(*args))
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    jax.block_until_ready(function(*args))
    times.append(time.perf_counter() - started)
  return statistics.median(times)
