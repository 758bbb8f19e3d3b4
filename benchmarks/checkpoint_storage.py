"""checkpoint_seconds of one training run per workdir storage: local disk, gs://, s3://, az://.

  python -m benchmarks.checkpoint_storage --out=benchmarks/checkpoint_storage_cpu.json

digits_cnn with wider dense layers (DENSE), so that a checkpoint (parameters and Adam's
two moments) weighs tens of MB, trains NUM_STEPS steps and saves every SAVE_EVERY (keep
2, so the bucket also sees deletions), once per storage. `checkpoint_seconds` is the
benchmark suite's name (benchmarks/jaxlab_peer.py) for the loop's `timings['save']`:
the time training waited on saves, including the last one's completion (for s3:// and
az://, its upload). The buckets are the test emulators on 127.0.0.1
(tests/storage_emulators.py, tests/cloud_emulators.py), so a figure is the client's
cost (serialising, hashing, HTTP over loopback, the emulator's own CPU on the same
cores), not a real network's: see docs/cloud_storage.md.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DENSE = (2048, 2048)
NUM_STEPS = 88
SAVE_EVERY = 22


def _config():
  spec = importlib.util.spec_from_file_location('digits_cnn', ROOT / 'experiments' / 'digits_cnn.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.model.dense_features = DENSE
  config.num_steps = NUM_STEPS
  config.steps_per_loop = config.log_every_steps = SAVE_EVERY
  config.eval_every_steps = NUM_STEPS
  config.checkpoint_every_steps = SAVE_EVERY
  config.checkpoint.async_save = True
  config.plots = config.progress = False
  return config


@contextlib.contextmanager
def _workdir(kind, local_root):
  if kind == 'local':
    yield os.path.join(local_root, 'run')
    return
  from tests import cloud_emulators, storage_emulators  # pylint: disable=g-import-not-at-top
  start = dict(gs=storage_emulators.gcs_emulator, s3=cloud_emulators.s3_emulator,
               az=cloud_emulators.azure_emulator)[kind]
  with start() as emulator:
    yield emulator.fresh_url('bench')


def _checkpoint_bytes(workdir):
  from jaxlab import storage  # pylint: disable=g-import-not-at-top
  if not storage.is_remote(workdir):
    step = max(p for p in pathlib.Path(workdir, 'checkpoints').iterdir() if p.name.isdigit())
    return sum(f.stat().st_size for f in step.rglob('*') if f.is_file())
  fs = storage.filesystem(workdir)
  fs.invalidate_cache()
  root = f'{storage.bucket_path(workdir)}/checkpoints'
  steps = sorted({int(p[len(root) + 1:].split('/')[0]) for p in fs.find(root)
                  if p[len(root) + 1:].split('/')[0].isdigit()})
  return sum(fs.du(f'{root}/{steps[-1]}', total=False).values())


def measure(kind):
  from jaxlab import storage  # pylint: disable=g-import-not-at-top
  from jaxlab.train import loop  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as local_root, _workdir(kind, local_root) as workdir:
    storage.validate_workdir(workdir)
    started = time.perf_counter()
    summary = loop.run(_config(), workdir)
    wall = time.perf_counter() - started
    return dict(storage=kind, checkpoint_seconds=summary['timings']['save'],
                saves=NUM_STEPS // SAVE_EVERY, train_seconds=summary['timings']['train'],
                run_seconds=wall, checkpoint_mb=_checkpoint_bytes(workdir) / 2**20,
                test_accuracy=summary['eval']['accuracy'])


def _median_row(done):
  """The run whose checkpoint_seconds is the median."""
  return sorted(done, key=lambda run: run['checkpoint_seconds'])[len(done) // 2]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--storages', default='local,gs,s3,az')
  parser.add_argument('--repeats', type=int, default=3, help='Runs per storage (median).')
  parser.add_argument('--out', default='')
  args = parser.parse_args(argv)
  sys.path.insert(0, str(ROOT))
  from jaxlab.runtime import setup as runtime  # pylint: disable=g-import-not-at-top
  os.environ['JAXLAB_COMPILATION_CACHE'] = ''  # every storage compiles alike
  runtime.setup()
  measure('local')  # warm-up, not reported: the first save compiles the digests
  runs = {kind: [] for kind in args.storages.split(',')}
  for _ in range(args.repeats):  # storages interleaved, so a load change hits all alike
    for kind, done in runs.items():
      done.append(measure(kind))
      print(json.dumps(done[-1]), flush=True)
  rows = [dict(_median_row(done), repeats=[run['checkpoint_seconds'] for run in done])
          for done in runs.values()]
  local = next((row['checkpoint_seconds'] for row in rows if row['storage'] == 'local'), None)
  for row in rows:
    row['vs_local'] = row['checkpoint_seconds'] / local if local else None
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  result = dict(
      date=time.strftime('%Y-%m-%dT%H:%M:%S%z'), cpus=os.cpu_count(),
      load_average_1min=os.getloadavg()[0], dense_features=list(DENSE), num_steps=NUM_STEPS,
      save_every=SAVE_EVERY, rows=rows,
      versions={name: metadata.version(name) for name in (
          'orbax-checkpoint', 'tensorstore', 'gcsfs', 's3fs', 'adlfs', 'moto',
          'gcp-storage-emulator')})
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
