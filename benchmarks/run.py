"""The benchmark suite: jaxlab against Keras, PyTorch and a Flax-examples loop, side by
side in one run, on the same data and initial weights; each in its own process.

  python -m benchmarks.run [--only=seed_mlp,mnist_cnn] [--out=FILE.json] [--short] [--repeats=3]

Reports per workload and peer: steady-state training time, compile time, whole-process
wall time, examples/s, us/step, peak memory, analytic FLOPs per step, achieved GFLOP/s and
the fraction of the GEMM peak measured in this run, and test accuracy; then jaxlab's
ratios against each peer. A speed ratio counts only where the accuracies agree.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import flops as flops_lib
from benchmarks import gemm
from benchmarks.peers import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PEERS = {
    'jaxlab': ('benchmarks.jaxlab_peer', None),
    'flax_loop': ('benchmarks.peers.flax_loop_peer', None),
    'torch': ('benchmarks.peers.torch_peer', 'torch'),
    'keras': ('benchmarks.peers.keras_peer', 'tensorflow'),
}
# Extra jaxlab runs per workload: (label, extra flags).
JAXLAB_VARIANTS = {
    'seed_mlp': [('jaxlab_steps_per_loop_1', ['--steps_per_loop=1'])],
    'mnist_cnn': [('jaxlab_bf16', ['--compute_dtype=bfloat16'])],
    'mlp_large_batch': [],
}
# Accuracy agreement needed for a speed ratio to count (absolute, test accuracy). Runs
# differ in their shuffling only; the short mode's tiny runs vary more.
ACCURACY_TOLERANCE = {'seed_mlp': 0.02, 'mnist_cnn': 0.03, 'mlp_large_batch': 0.03}
SHORT_ACCURACY_TOLERANCE = 0.06
FULL = dict(n_train=60000, n_test=10000)
SHORT = dict(n_train=8192, n_test=1024)


@dataclasses.dataclass
class Run:
  workload: str
  peer: str
  results: list  # one RESULT.json per repeat
  process_seconds: list

  def median(self, key):
    values = [r[key] for r in self.results if r.get(key) is not None]
    return statistics.median(values) if values else None


def installed(module):
  return module is None or importlib.util.find_spec(module) is not None


# Peers run in the environment the user started us with: jaxlab's runtime.setup() adds
# XLA options to this process's environment, and only jaxlab's own runs may use them.
PEER_ENV = dict(os.environ)


def run_peer(module, workload, data, init, epochs, extra, out):
  started = time.perf_counter()
  command = [sys.executable, '-m', module, f'--workload={workload}', f'--data={data}',
             f'--init={init}', f'--epochs={epochs}', f'--out={out}', *extra]
  if module.endswith('keras_peer'):
    command.append('--verbose=0')
  result = subprocess.run(command, cwd=ROOT, env=PEER_ENV, capture_output=True, text=True,
                          check=False)
  seconds = time.perf_counter() - started
  if result.returncode != 0:
    raise RuntimeError(f'{module} failed:\n{result.stderr[-3000:]}')
  with open(out) as f:
    return json.load(f), seconds


def benchmark(workloads, repeats, short, peers):
  sizes = SHORT if short else FULL
  runs, skipped = [], []
  with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, 'data.npz')
    common.save_npz(data, common.make_synthetic_mnist(sizes['n_train'], sizes['n_test'], seed=0))
    for name in workloads:
      workload = common.get_workload(name)
      init = os.path.join(tmp, f'init_{name}.npz')
      common.save_npz(init, common.make_init(name, seed=0))
      epochs = 2 if short else workload.epochs
      entries = [(peer, *PEERS[peer], []) for peer in peers]
      if 'jaxlab' in peers:
        entries += [(label, PEERS['jaxlab'][0], None, extra)
                    for label, extra in JAXLAB_VARIANTS[name]]
      for label, module, requirement, extra in entries:
        if not installed(requirement):
          skipped.append(f'{label}: {requirement} is not installed (pip install -e ".[bench]")')
          continue
        run = Run(name, label, [], [])
        for repeat in range(repeats):
          result, seconds = run_peer(module, name, data, init, epochs, extra,
                                     os.path.join(tmp, f'{name}_{label}_{repeat}.json'))
          run.results.append(result)
          run.process_seconds.append(seconds)
          print(f'  {name:16s} {label:26s} train {result["train_seconds"]:7.2f}s  '
                f'process {seconds:6.1f}s  accuracy {result["test_accuracy"]:.4f}', flush=True)
        runs.append(run)
  return runs, skipped


def summarize(runs, peaks):
  """One row per (workload, peer); MFU against the GEMM peak of the row's compute dtype."""
  rows = []
  for run in runs:
    dtype = run.results[0].get('compute_dtype', 'float32')
    peak_gflops = peaks.get(dtype) or peaks['float32']
    workload = common.get_workload(run.workload)
    step_flops = flops_lib.workload_flops(workload)
    us_per_step = run.median('us_per_step')
    gflops = step_flops / (us_per_step * 1e-6) / 1e9 if us_per_step else None
    rows.append(dict(
        workload=run.workload, peer=run.peer, train_seconds=run.median('train_seconds'),
        compile_seconds=run.median('compile_seconds'),
        process_seconds=statistics.median(run.process_seconds), us_per_step=us_per_step,
        examples_per_second=run.median('examples_per_second'),
        peak_rss_mb=run.median('peak_rss_mb'), flops_per_step=step_flops,
        gflops=gflops, fraction_of_peak=gflops / peak_gflops if gflops else None,
        test_accuracy=run.median('test_accuracy'), repeats=len(run.results),
        compute_dtype=dtype,
        checkpoint_seconds=run.median('checkpoint_seconds')))
  return rows


def ratios(rows, short=False):
  """jaxlab's time over each peer's, per workload; None where accuracies disagree."""
  out = []
  for row in rows:
    if row['peer'] == 'jaxlab':
      continue
    base = next((r for r in rows if r['workload'] == row['workload'] and r['peer'] == 'jaxlab'),
                None)
    if base is None:
      continue
    tolerance = SHORT_ACCURACY_TOLERANCE if short else ACCURACY_TOLERANCE[row['workload']]
    agree = abs(base['test_accuracy'] - row['test_accuracy']) <= tolerance
    out.append(dict(workload=row['workload'], peer=row['peer'], accuracy_agrees=agree,
                    train_ratio=base['train_seconds'] / row['train_seconds'] if agree else None,
                    process_ratio=base['process_seconds'] / row['process_seconds'] if agree else None))
  return out


def _fmt(value, spec):
  return '-' if value is None else format(value, spec)


def markdown(rows, ratio_rows, peaks):
  measured = ', '.join(f'{dtype} {value:.1f} GFLOP/s' for dtype, value in peaks.items())
  lines = [f'GEMM peak measured in this run (XLA): {measured}', '',
           '| workload | peer | train s | compile s | process s | us/step | examples/s | '
           'GFLOP/s | % of peak | peak RSS MB | test acc |',
           '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for r in rows:
    lines.append(
        f'| {r["workload"]} | {r["peer"]} | {_fmt(r["train_seconds"], ".2f")} | '
        f'{_fmt(r["compile_seconds"], ".2f")} | {_fmt(r["process_seconds"], ".1f")} | '
        f'{_fmt(r["us_per_step"], ".0f")} | {_fmt(r["examples_per_second"], ",.0f")} | '
        f'{_fmt(r["gflops"], ".1f")} | {_fmt(r["fraction_of_peak"] and 100 * r["fraction_of_peak"], ".0f")} | '
        f'{_fmt(r["peak_rss_mb"], ".0f")} | {_fmt(r["test_accuracy"], ".4f")} |')
  lines += ['', '| workload | jaxlab vs | accuracy agrees | train time ratio | process time ratio |',
            '| --- | --- | --- | ---: | ---: |']
  for r in ratio_rows:
    lines.append(f'| {r["workload"]} | {r["peer"]} | {"yes" if r["accuracy_agrees"] else "NO"} | '
                 f'{_fmt(r["train_ratio"], ".3f")} | {_fmt(r["process_ratio"], ".3f")} |')
  return '\n'.join(lines)


def parse(argv):
  parser = argparse.ArgumentParser(prog='jaxlab bench', description=__doc__.splitlines()[0])
  parser.add_argument('--only', default='', help='Comma-separated workloads: '
                      + ', '.join(common.WORKLOADS))
  parser.add_argument('--peers', default=','.join(PEERS), help='Comma-separated peers.')
  parser.add_argument('--out', default='', help='Write all results as JSON here.')
  parser.add_argument('--short', action='store_true',
                      help='Tiny sizes, one repeat: checks that everything runs (CI).')
  parser.add_argument('--repeats', type=int, default=None, help='Runs per peer (median).')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse(sys.argv[1:] if argv is None else argv)
  workloads = [w for w in args.only.split(',') if w] or list(common.WORKLOADS)
  unknown = [w for w in workloads if w not in common.WORKLOADS]
  peers = [p for p in args.peers.split(',') if p]
  if unknown or any(p not in PEERS for p in peers):
    print(f'jaxlab bench: error: unknown workload or peer in --only={args.only} '
          f'--peers={args.peers}; workloads: {", ".join(common.WORKLOADS)}; peers: '
          f'{", ".join(PEERS)}.', file=sys.stderr)
    return 2
  repeats = args.repeats or (1 if args.short else 3)
  from jaxlab import runtime
  runtime.setup()
  peaks = gemm.measure_peaks()
  print('GEMM peak: ' + ', '.join(f'{k} {v:.1f} GFLOP/s' for k, v in peaks.items()), flush=True)
  runs, skipped = benchmark(workloads, repeats, args.short, peers)
  rows = summarize(runs, peaks)
  ratio_rows = ratios(rows, short=args.short)
  print('\n' + markdown(rows, ratio_rows, peaks))
  for line in skipped:
    print(f'skipped {line}')
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(dict(gemm_peak_gflops=peaks['float32'], gemm_peaks_gflops=peaks, rows=rows, ratios=ratio_rows, skipped=skipped,
                     short=args.short, repeats=repeats), f, indent=2)
  return 0


if __name__ == '__main__':
  sys.exit(main())
