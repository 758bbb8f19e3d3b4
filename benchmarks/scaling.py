"""How cost grows with the work: the "Scaling" section of RESULTS.md.

  python -m benchmarks.scaling --out=benchmarks/scaling_cpu.json   # ~15 min on 2 cores
  python -m benchmarks.scaling --short --out=/tmp/scaling.json     # the wiring, ~1 min

Four sweeps, each point a process of its own (so its peak RSS is its own and nothing is
cached between points; jaxlab's persistent compilation cache is off), training with
jaxlab's own session: the experiment's config at the point's size, its blocks compiled
ahead, then `Session.run_block` timed over blocks after the first.

- batch: steps/s and model GFLOP/s of the seed MLP and mnist_cnn against the global
  batch, beside the GEMM peak that jaxlab's meter measures;
- sequence: the language model's tokens/s and XLA's peak memory estimate for a step
  against the sequence length, at a constant number of tokens per batch, for two widths
  (model FLOPs per token grow with the length: attention's quadratic term);
- dataset: host RSS and steps/s of a streamed training set (memory-mapped .npy files)
  against its size, at a constant batch;
- depth: compile time of the language model's training block against its depth, its
  blocks scanned (one compiled block whatever the depth) or unrolled.

`benchmarks.report` renders the JSON; this module also draws the plots
(benchmarks/scaling_*.png) beside it.
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / 'experiments'

FULL = dict(
    batch=dict(models=('mnist_mlp', 'mnist_cnn'), batches=(8, 32, 128, 512, 1024, 4096),
               examples_per_block={'mnist_mlp': 32768, 'mnist_cnn': 4096}),
    sequence=dict(lengths=(128, 256, 512, 1024, 2048), widths=(128, 256), tokens=8192),
    dataset=dict(sizes=(10_000, 100_000, 1_000_000, 10_000_000), batch=256, steps=50),
    depth=dict(layers=(1, 2, 4, 8, 16), seq_len=128, batch=8),
    timed_blocks=3)
SHORT = dict(
    batch=dict(models=('mnist_mlp',), batches=(8, 64), examples_per_block={'mnist_mlp': 256}),
    sequence=dict(lengths=(32, 64), widths=(32,), tokens=256),
    dataset=dict(sizes=(1_000, 4_000), batch=32, steps=4),
    depth=dict(layers=(1, 2), seq_len=32, batch=4),
    timed_blocks=1)
SWEEPS = ('batch', 'sequence', 'dataset', 'depth')
# The dataset sweep's rows: 8x8 single-channel images (as scikit-learn's digits), so 10M
# rows are 640 MB on disk.
ROW_SHAPE = (8, 8, 1)


# --- one point, in its own process ---------------------------------------------------


def _config(experiment, overrides):
  from ml_collections import config_flags
  module = config_flags.config_flags._LoadConfigModule(  # pylint: disable=protected-access
      experiment, str(EXPERIMENTS / f'{experiment}.py'))
  config = module.get_config()
  config.progress = False
  config.plots = False
  config.eval_every_steps = 0
  config.checkpoint_every_steps = 0
  for dotted, value in overrides.items():
    node = config
    *path, leaf = dotted.split('.')
    for part in path:
      node = node[part]
    node[leaf] = tuple(value) if isinstance(value, list) else value
  return config


def measure(point):
  """Compiles and times one point (a dict: experiment, overrides, steps_per_loop,
  timed_blocks); returns its figures."""
  import jax
  from jaxlab.perf import memory_fit
  from jaxlab.runtime import setup as runtime
  from jaxlab.train import session as session_lib
  runtime.setup()
  length, timed = point['steps_per_loop'], point['timed_blocks']
  overrides = dict(point['overrides'], steps_per_loop=length, log_every_steps=length,
                   num_steps=length * (timed + 1))
  config = _config(point['experiment'], overrides)
  with tempfile.TemporaryDirectory() as workdir:
    session = session_lib.Session.create(config, workdir)
    try:
      compiled = session.compiled_block(length)
      memory = compiled.memory_analysis()
      seconds, step = [], 0
      for _ in range(timed + 1):  # the first block's time (first-call costs) is left out
        started = time.perf_counter()
        session.state, metrics = session.run_block(step, step + length)
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - started)
        step += length
      loss = float(jax.device_get(metrics['loss'])[-1])
    finally:
      session.finish()
  per_step = statistics.median(seconds[1:] or seconds) / length
  return dict(seconds_per_step=per_step, steps_per_second=1 / per_step,
              examples_per_second=config.data.batch_size / per_step,
              flops_per_step=session.meter.flops_per_step,
              gflops=session.meter.flops_per_step / per_step / 1e9,
              peak_gflops=(session.meter.peak.flops_per_second or 0) / 1e9 or None,
              compile_seconds=session.timings['compile'],
              step_peak_bytes=memory_fit.peak_bytes(memory) if memory else None,
              peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              **resident_mb(),
              placement=session.input.placement, final_loss=loss)


def resident_mb():
  """The process's resident memory now, split (Linux): private (anonymous) pages, which
  are its own, and file pages mapped from the page cache (libraries, memory-mapped data),
  which the kernel shares and reclaims."""
  try:
    with open('/proc/self/status') as f:
      fields = dict(line.split(':', 1) for line in f if ':' in line)
  except OSError:
    return {}
  megabytes = lambda name: int(fields[name].split()[0]) / 1024 if name in fields else None
  return dict(private_rss_mb=megabytes('RssAnon'), file_rss_mb=megabytes('RssFile'))


def run_point(point):
  """`measure(point)` in a fresh process (compilation cache off), with its wall time."""
  env = dict(os.environ, JAXLAB_COMPILATION_CACHE='')
  started = time.perf_counter()
  result = subprocess.run([sys.executable, '-m', 'benchmarks.scaling',
                           f'--point={json.dumps(point)}'], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
  if result.returncode != 0:
    raise RuntimeError(f'scaling point {point} failed:\n{result.stderr[-3000:]}')
  figures = json.loads(result.stdout.strip().splitlines()[-1])
  return dict(point, **figures, process_seconds=time.perf_counter() - started)


# --- the sweeps ----------------------------------------------------------------------


def batch_points(sizes, timed):
  for experiment in sizes['models']:
    for batch in sizes['batches']:
      steps = max(2, sizes['examples_per_block'][experiment] // batch)
      yield dict(sweep='batch', experiment=experiment, batch=batch, steps_per_loop=steps,
                 timed_blocks=timed, overrides={
                     'data.name': 'synthetic', 'data.num_train': steps * batch,
                     'data.num_test': 100, 'data.batch_size': batch,
                     'data.placement': 'device'})


def sequence_points(sizes, timed):
  for width in sizes['widths']:
    for length in sizes['lengths']:
      batch = max(1, sizes['tokens'] // length)
      yield dict(sweep='sequence', experiment='python_docs_lm', seq_len=length, width=width,
                 batch=batch, steps_per_loop=2, timed_blocks=timed, overrides={
                     'data.seq_len': length, 'data.batch_size': batch,
                     'data.eval_batch_size': batch, 'data.num_test': batch,
                     'model.embed_dim': width, 'model.mlp_dim': 4 * width,
                     'model.num_heads': max(1, width // 32), 'model.num_layers': 2})


def dataset_points(sizes, timed, folder):
  for count in sizes['sizes']:
    path = os.path.join(folder, f'rows_{count}')
    write_rows(path, count)
    yield dict(sweep='dataset', experiment='mnist_mlp', examples=count, batch=sizes['batch'],
               steps_per_loop=sizes['steps'], timed_blocks=timed, overrides={
                   'data.name': 'npz', 'data.path': path, 'data.placement': 'stream',
                   'data.batch_size': sizes['batch'], 'data.eval_batch_size': sizes['batch']})


def depth_points(sizes, timed):
  del timed  # compile time is the measure: one timed block shows the program runs
  for scanned in (True, False):
    for layers in sizes['layers']:
      yield dict(sweep='depth', experiment='python_docs_lm', layers=layers, scanned=scanned,
                 steps_per_loop=1, timed_blocks=1, overrides={
                     'model.num_layers': layers, 'model.scan_layers': scanned,
                     'data.seq_len': sizes['seq_len'], 'data.batch_size': sizes['batch'],
                     'data.eval_batch_size': sizes['batch'], 'data.num_test': sizes['batch']})


def write_rows(path, count, chunk=1_000_000):
  """A folder of .npy arrays (jaxlab.data.arrays) of `count` random 8x8 images and
  their labels, written a chunk at a time (memory stays flat), and a small test set."""
  import numpy as np
  os.makedirs(path, exist_ok=True)
  rng = np.random.default_rng(count)
  images = np.lib.format.open_memmap(os.path.join(path, 'x_train.npy'), mode='w+',
                                     dtype=np.uint8, shape=(count, *ROW_SHAPE))
  labels = np.lib.format.open_memmap(os.path.join(path, 'y_train.npy'), mode='w+',
                                     dtype=np.int32, shape=(count,))
  for start in range(0, count, chunk):
    stop = min(count, start + chunk)
    images[start:stop] = rng.integers(0, 256, (stop - start, *ROW_SHAPE), dtype=np.uint8)
    labels[start:stop] = rng.integers(0, 10, stop - start, dtype=np.int32)
  images.flush()
  labels.flush()
  del images, labels
  np.save(os.path.join(path, 'x_test.npy'), rng.integers(0, 256, (100, *ROW_SHAPE), np.uint8))
  np.save(os.path.join(path, 'y_test.npy'), np.arange(100, dtype=np.int32) % 10)


def run(sweeps, short, folder):
  sizes = SHORT if short else FULL
  timed = sizes['timed_blocks']
  makers = dict(batch=lambda: batch_points(sizes['batch'], timed),
                sequence=lambda: sequence_points(sizes['sequence'], timed),
                dataset=lambda: dataset_points(sizes['dataset'], timed, folder),
                depth=lambda: depth_points(sizes['depth'], timed))
  rows = []
  for sweep in sweeps:
    for point in makers[sweep]():
      row = run_point(point)
      rows.append(row)
      print(f'  {sweep:8s} ' + ' '.join(f'{k}={row[k]}' for k in
                                       ('experiment', 'batch', 'seq_len', 'width', 'examples',
                                        'layers', 'scanned') if k in row) +
            f'  {row["steps_per_second"]:.1f} steps/s, compile {row["compile_seconds"]:.2f} s,'
            f' RSS {row["peak_rss_mb"]:.0f} MB', flush=True)
      if sweep == 'dataset':
        import shutil
        shutil.rmtree(point['overrides']['data.path'], ignore_errors=True)
  return rows


# --- plots ---------------------------------------------------------------------------


def draw(rows, out_dir):
  """benchmarks/scaling_<sweep>.png for each sweep measured; returns their file names."""
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  drawn = []

  def two_panels(name, title):
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    figure.suptitle(title)
    drawn.append(f'scaling_{name}.png')
    return figure, axes

  def save(figure):
    figure.tight_layout()
    figure.savefig(os.path.join(out_dir, drawn[-1]), dpi=90)
    plt.close(figure)

  by_sweep = lambda sweep: [r for r in rows if r['sweep'] == sweep]
  if by_sweep('batch'):
    figure, (rate, flops) = two_panels('batch', 'Global batch size')
    for experiment in sorted({r['experiment'] for r in by_sweep('batch')}):
      points = [r for r in by_sweep('batch') if r['experiment'] == experiment]
      xs = [r['batch'] for r in points]
      rate.plot(xs, [r['steps_per_second'] for r in points], marker='o', label=experiment)
      flops.plot(xs, [r['gflops'] for r in points], marker='o', label=experiment)
    peak = next((r['peak_gflops'] for r in by_sweep('batch') if r['peak_gflops']), None)
    if peak:
      flops.axhline(peak, color='grey', linestyle='--', label='GEMM peak')
    for axis, label in ((rate, 'steps/s'), (flops, 'model GFLOP/s')):
      axis.set_xscale('log', base=2)
      axis.set(yscale='log', xlabel='global batch', ylabel=label)
      axis.legend()
    save(figure)
  if by_sweep('sequence'):
    figure, (tokens, memory) = two_panels('sequence', 'Language model: sequence length')
    for width in sorted({r['width'] for r in by_sweep('sequence')}):
      points = [r for r in by_sweep('sequence') if r['width'] == width]
      xs = [r['seq_len'] for r in points]
      tokens.plot(xs, [r['examples_per_second'] * r['seq_len'] for r in points], marker='o',
                  label=f'width {width}')
      memory.plot(xs, [(r['step_peak_bytes'] or 0) / 2**20 for r in points], marker='o',
                  label=f'width {width}')
    for axis in (tokens, memory):
      axis.set_xscale('log', base=2)
    tokens.set(xlabel='sequence length', ylabel='tokens/s', ylim=(0, None))
    memory.set(xlabel='sequence length', ylabel='step peak MB (XLA)', ylim=(0, None))
    tokens.legend()
    memory.legend()
    save(figure)
  if by_sweep('dataset'):
    figure, (rss, rate) = two_panels('dataset', 'Streamed training set size')
    points = by_sweep('dataset')
    xs = [r['examples'] for r in points]
    rss.plot(xs, [r['peak_rss_mb'] for r in points], marker='o', label='peak RSS')
    if all(r.get('private_rss_mb') is not None for r in points):
      rss.plot(xs, [r['private_rss_mb'] for r in points], marker='o', label='private, at the end')
    rss.legend()
    rate.plot(xs, [r['steps_per_second'] for r in points], marker='o')
    rss.set(xscale='log', xlabel='training examples', ylabel='host memory MB', ylim=(0, None))
    rate.set(xscale='log', xlabel='training examples', ylabel='steps/s', ylim=(0, None))
    save(figure)
  if by_sweep('depth'):
    figure, (compile_time, rate) = two_panels('depth', 'Language model: depth')
    for scanned in (True, False):
      points = [r for r in by_sweep('depth') if r['scanned'] == scanned]
      label = 'scanned' if scanned else 'unrolled'
      compile_time.plot([r['layers'] for r in points], [r['compile_seconds'] for r in points],
                        marker='o', label=label)
      rate.plot([r['layers'] for r in points], [r['steps_per_second'] for r in points],
                marker='o', label=label)
    compile_time.set(xlabel='layers', ylabel='compile s', ylim=(0, None))
    rate.set(xlabel='layers', ylabel='steps/s', ylim=(0, None))
    compile_time.legend()
    rate.legend()
    save(figure)
  return drawn


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default='', help='Write the results as JSON here (and the '
                      'plots beside it).')
  parser.add_argument('--only', default=','.join(SWEEPS),
                      help=f'Comma-separated sweeps: {", ".join(SWEEPS)}.')
  parser.add_argument('--short', action='store_true', help='Tiny sizes: checks the wiring.')
  parser.add_argument('--replot', action='store_true',
                      help='Redraw the plots from the --out JSON, measuring nothing.')
  parser.add_argument('--point', default='', help=argparse.SUPPRESS)  # one point (internal)
  args = parser.parse_args(argv)
  if args.point:
    print(json.dumps(measure(json.loads(args.point))))
    return 0
  if args.replot:
    with open(args.out) as f:
      print(', '.join(draw(json.load(f)['rows'], os.path.dirname(os.path.abspath(args.out)))))
    return 0
  sweeps = [s for s in args.only.split(',') if s]
  unknown = sorted(set(sweeps) - set(SWEEPS))
  if unknown:
    parser.error(f'unknown sweep(s) {", ".join(unknown)}; choose from {", ".join(SWEEPS)}')
  from benchmarks import environment
  started = time.perf_counter()
  with tempfile.TemporaryDirectory() as folder:
    rows = run(sweeps, args.short, folder)
  results = dict(command=' '.join(['python -m benchmarks.scaling', *(argv or sys.argv[1:])]),
                 short=args.short, sizes=SHORT if args.short else FULL, rows=rows,
                 environment=environment.describe(dict(os.environ)),
                 load_average_1min=environment.load_average(),
                 seconds=time.perf_counter() - started)
  if args.out:
    out_dir = os.path.dirname(os.path.abspath(args.out))
    results['plots'] = draw(rows, out_dir)
    with open(args.out, 'w') as f:
      json.dump(results, f, indent=1)
    print(f'wrote {args.out} and {", ".join(results["plots"])}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
