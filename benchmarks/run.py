"""The benchmark suite: jaxlab against Keras, PyTorch and a Flax-examples loop, side by
side in one run, on the same data and initial weights; each in its own process.

  python -m benchmarks.run [--only=seed_mlp,mnist_cnn] [--out=FILE.json] [--short] [--repeats=3]
  python -m benchmarks.report FILE.json > RESULTS.md      # the tables and notes, from the JSON

Every peer is timed on one basis (benchmarks.peers.common.timing_fields): "fit s" from
the start of the fit (placing the data, tracing, compiling) to the end of its last step,
and "steady us/step" over epochs 2..N, where no one compiles. All drop the last partial
batch, so all take the same steps. Each peer reports its loss on the same examples
before the first update, and the ratios say whether it matches jaxlab's. The
`whole_process` workload times the jaxlab command line against a PyTorch script, start
to exit. The JSON keeps every repeat's raw result beside the medians, with the date,
commit, machine, versions and thread settings, the GEMM peak and the floors of
benchmarks/floors.py.

The larger workloads (`resnet18_cifar`, `lm_small`; `lm_large` on a GPU, named by
benchmarks/gpu.sh) have their own data and run jaxlab against PyTorch only, one repeat
unless --repeats says more: a step is ~0.3 TFLOP, seconds on a CPU.
"""

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import environment
from benchmarks import flops as flops_lib
from benchmarks import whole_process
from benchmarks.peers import common

ROOT = environment.ROOT

PEERS = {
    'jaxlab': ('benchmarks.jaxlab_peer', None),
    'flax_loop': ('benchmarks.peers.flax_loop_peer', None),
    'torch': ('benchmarks.peers.torch_peer', 'torch'),
    'keras': ('benchmarks.peers.keras_peer', 'tensorflow'),
}
# Extra jaxlab runs per workload: (label, extra flags).
JAXLAB_VARIANTS = {
    'seed_mlp': [('jaxlab_steps_per_loop_1', ['--steps_per_loop=1'])],
    'mnist_cnn': [('jaxlab_bf16', ['--compute_dtype=bfloat16']),
                  ('jaxlab_stream', ['--placement=stream'])],
    'mlp_large_batch': [],
    'resnet18_cifar': [],
    'lm_small': [],
    'lm_large': [('jaxlab_bf16', ['--compute_dtype=bfloat16', '--attention_implementation=cudnn'])],
}
# Extra PyTorch runs per workload (full mode): bf16 the way nanoGPT trains on a GPU.
TORCH_VARIANTS = {'lm_large': [('torch_bf16', ['--autocast_bf16'])]}
WORKLOADS = (*common.WORKLOADS, whole_process.NAME)
# Measured by their own modules, once, with no peers: `measure(short) -> dict`.
EXTRAS = {'host_pipeline': 'benchmarks.host_pipeline', 'tfds_start': 'benchmarks.tfds_start'}
# Accuracy agreement needed for a speed ratio to count (absolute, test accuracy). Runs
# differ in their shuffling only; the short mode's tiny runs vary more.
ACCURACY_TOLERANCE = {'seed_mlp': 0.02, 'mnist_cnn': 0.03, 'mlp_large_batch': 0.03,
                      whole_process.NAME: 0.02,
                      # A dozen steps from the start: accuracies are near chance and noisy.
                      'resnet18_cifar': 0.15, 'lm_small': 0.05, 'lm_large': 0.05}
SHORT_ACCURACY_TOLERANCE = 0.1
# Same weights, same data, float32: the initial losses agree to rounding. ResNet-18's
# 20 float32 layers and the LMs' attention kernels round differently (~1e-4); on a GPU
# XLA may run float32 matmuls in TF32, PyTorch does not.
INITIAL_LOSS_RTOL = {'resnet18_cifar': 1e-3, 'lm_small': 1e-3, 'lm_large': 1e-2}
DEFAULT_INITIAL_LOSS_RTOL = 1e-5
# The larger workloads' peers: jaxlab against the PyTorch users would pick (a step is
# ~0.2 TFLOP, seconds on a CPU), and one repeat each unless --repeats says more.
LARGE_PEERS = ('jaxlab', 'torch')
LARGE_REPEATS = 1
# The short mode's larger workloads: the same models at a few steps.
SHORT_LARGE = dict(n_train_batches=2, epochs=2)
FULL = dict(n_train=60000, n_test=10000)
SHORT = dict(n_train=8192, n_test=1024, epochs=2)  # 2 epochs: a steady one after the first

# Peers run in the environment the user started us with: jaxlab's runtime.setup() adds
# XLA options to this process's environment, and only jaxlab's own runs may use them.
PEER_ENV = dict(os.environ)
# jaxlab's persistent compilation cache off: it compiles in every run, as the peers do.
JAXLAB_ENV = dict(PEER_ENV, JAXLAB_COMPILATION_CACHE='')


def installed(module):
  return module is None or importlib.util.find_spec(module) is not None


def run_peer(module, workload, data, init, epochs, extra, out):
  """One peer process: (its RESULT.json, wall seconds, the load average before it)."""
  load = environment.load_average()
  started, spawned_at = time.perf_counter(), time.time()
  command = [sys.executable, '-m', module, f'--workload={workload}', f'--data={data}',
             f'--init={init}', f'--epochs={epochs}', f'--out={out}', *extra]
  env = JAXLAB_ENV if module == PEERS['jaxlab'][0] else PEER_ENV
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
  seconds, exited_at = time.perf_counter() - started, time.time()
  if result.returncode != 0:
    raise RuntimeError(f'{module} failed:\n{result.stderr[-3000:]}')
  with open(out) as f:
    measured = json.load(f)
  measured.update(phase_seconds(measured, spawned_at, exited_at))
  return measured, seconds, load


# A whole process, phase by phase, from the runner's clock (start, exit) and the peer's
# (common.phase_clock, common.write_result).
PHASES = ('start_and_imports', 'before_fit', 'fit', 'after_fit', 'exit')
# jaxlab's own clock (the run's `timings`), reported by its peer.
JAXLAB_TIMINGS = ('setup', 'place', 'compile', 'loop_train', 'eval', 'checkpoint', 'finish')


def phase_seconds(result, spawned_at, exited_at):
  """{'phase_<name>_seconds': ...} for PHASES: the interpreter's start and the imports;
  reading the data and building the model and its initial state (and, but for jaxlab,
  the initial-loss check); the fit; the test evaluation, the saves and the summaries;
  the interpreter's exit. Empty for a result without the clock (no epochs)."""
  if 'fit_start_at' not in result:
    return {}
  marks = (spawned_at, result['imported_at'], result['fit_start_at'], result['fit_end_at'],
           result['written_at'], exited_at)
  return {f'phase_{name}_seconds': end - start
          for name, start, end in zip(PHASES, marks, marks[1:])}


def measure_device(kernels=()):
  """GEMM peaks and floors (benchmarks/floors.py; with the kernels of `kernels`, see
  benchmarks/kernels.py), in a process of their own: this one never holds the device (on
  a GPU, JAX would keep most of its memory from the peers)."""
  command = [sys.executable, '-m', 'benchmarks.floors', f'--kernels={",".join(kernels)}']
  result = subprocess.run(command, cwd=ROOT, env=PEER_ENV, capture_output=True, text=True,
                          check=False)
  if result.returncode != 0:
    raise RuntimeError(f'benchmarks.floors failed:\n{result.stderr[-3000:]}')
  return json.loads(result.stdout)


def _entries(name, peers, extra_flags, short):
  entries = [(peer, *PEERS[peer], list(extra_flags.get(peer, ()))) for peer in peers]
  if 'jaxlab' in peers and not short:  # the short mode checks the peers, not jaxlab's options
    entries += [(label, PEERS['jaxlab'][0], None, flags)
                for label, flags in JAXLAB_VARIANTS[name]]
  if 'torch' in peers and not short:
    entries += [(label, *PEERS['torch'], [*extra_flags.get('torch', ()), *flags])
                for label, flags in TORCH_VARIANTS.get(name, ())]
  return entries


def benchmark(workloads, repeats, short, peers, extra_flags, tmp, large_repeats=LARGE_REPEATS):
  """Every (workload, peer) `repeats` times: [{'workload', 'peer', 'repeats': [...]}]."""
  sizes = SHORT if short else FULL
  data = os.path.join(tmp, 'data.npz')
  common.save_npz(data, common.make_synthetic_mnist(sizes['n_train'], sizes['n_test'], seed=0))
  runs, skipped = [], []
  for name in workloads:
    if name == whole_process.NAME:
      runs += _whole_process_runs(peers, repeats, short, tmp, skipped)
    elif name in common.LARGE_WORKLOADS:
      large_data, large_sizes = _large_data(name, short, tmp)
      runs += _workload_runs(name, large_data, large_sizes, large_repeats, short,
                             [p for p in peers if p in LARGE_PEERS], extra_flags, tmp, skipped)
    else:
      runs += _workload_runs(name, data, sizes, repeats, short, peers, extra_flags, tmp,
                             skipped)
  return runs, skipped


def _large_data(name, short, tmp):
  """A larger workload's DATA.npz (its own images or text rows) and its epochs."""
  workload = common.get_workload(name)
  if short:
    n_train = SHORT_LARGE['n_train_batches'] * workload.batch_size
    workload = dataclasses.replace(workload, n_train=n_train, n_test=workload.batch_size)
  path = os.path.join(tmp, f'data_{name}.npz')
  common.save_npz(path, common.make_workload_data(workload, 0, common.text_cache_dir(path)))
  return path, dict(epochs=SHORT_LARGE['epochs'] if short else workload.epochs)


def _workload_runs(name, data, sizes, repeats, short, peers, extra_flags, tmp, skipped):
  """The peers take turns within each repeat, so a change in the machine's load over
  the run falls on all of them alike."""
  init = os.path.join(tmp, f'init_{name}.npz')
  common.save_npz(init, common.make_init(name, seed=0))
  epochs = sizes.get('epochs', common.get_workload(name).epochs)
  entries = []
  for label, module, requirement, extra in _entries(name, peers, extra_flags, short):
    if installed(requirement):
      entries.append((label, module, extra))
    else:
      skipped.append(f'{label}: {requirement} is not installed (pip install -e ".[bench]")')
  runs = {label: dict(workload=name, peer=label, repeats=[]) for label, _, _ in entries}
  for repeat in range(repeats):
    for label, module, extra in entries:
      result, seconds, load = run_peer(module, name, data, init, epochs, extra,
                                       os.path.join(tmp, f'{name}_{label}_{repeat}.json'))
      runs[label]['repeats'].append(dict(process_seconds=seconds, load_average=load,
                                         result=result))
      steady = result.get('steady_us_per_step')
      print(f'  {name:16s} {label:26s} fit {result.get("fit_seconds", 0):7.2f}s  steady '
            f'{"-" if steady is None else format(steady, ".0f"):>6s} us/step  process '
            f'{seconds:6.1f}s  accuracy {result.get("test_accuracy", 0):.4f}', flush=True)
  return list(runs.values())


def _whole_process_runs(peers, repeats, short, tmp, skipped):
  if 'torch' in peers and not installed('torch'):
    skipped.append('whole_process torch_script: torch is not installed')
  measured = whole_process.run([p for p in peers if installed(PEERS[p][1])], repeats, short,
                               tmp, PEER_ENV)
  return [dict(workload=whole_process.NAME, peer=peer, repeats=[
      dict(process_seconds=seconds, load_average=result.pop('load_average'), result=result)
      for seconds, result in values]) for peer, values in measured.items()]


def _median(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def _device(result):
  device = result.get('device', 'cpu')
  return 'gpu' if device in ('cuda', 'gpu') else device


def summarize(runs, peaks):
  """One row per (workload, peer), medians over the repeats; MFU from the steady rate,
  against the GEMM peak of the row's compute dtype."""
  rows = []
  for run in runs:
    results = [r['result'] for r in run['repeats']]
    median = lambda key: _median([r.get(key) for r in results])  # pylint: disable=cell-var-from-loop
    name = run['workload']
    workload = common.get_workload('seed_mlp' if name == whole_process.NAME else name)
    dtype = results[0].get('compute_dtype', 'float32')
    step_flops = flops_lib.workload_flops(workload)
    steady_us = median('steady_us_per_step')
    gflops = step_flops / (steady_us * 1e-6) / 1e9 if steady_us else None
    peak = peaks.get(dtype) or peaks['float32']
    rows.append(dict(
        workload=name, peer=run['peer'], device=_device(results[0]), compute_dtype=dtype,
        repeats=len(results), steps=median('steps'), fit_seconds=median('fit_seconds'),
        steady_us_per_step=steady_us, warmup_seconds=median('warmup_seconds'),
        process_seconds=_median([r['process_seconds'] for r in run['repeats']]),
        steady_examples_per_second=median('steady_examples_per_second'),
        flops_per_step=step_flops, steady_gflops=gflops,
        fraction_of_peak=gflops / peak if gflops else None,
        peak_rss_mb=median('peak_rss_mb'), initial_loss=median('initial_loss'),
        test_accuracy=median('test_accuracy'), compile_seconds=median('compile_seconds'),
        checkpoint_seconds=median('checkpoint_seconds'),
        **{f'phase_{name}_seconds': median(f'phase_{name}_seconds') for name in PHASES},
        **{f'jaxlab_{name}_seconds': median(f'{name}_seconds')
           for name in JAXLAB_TIMINGS if results[0].get('framework') == 'jaxlab'}))
  return rows


def _ratio(numerator, denominator):
  return numerator / denominator if numerator is not None and denominator else None


def _bf16_base(row):
  """jaxlab's bf16 run of a workload whose peers also run in bf16 (lm_large)."""
  return row['peer'] == 'jaxlab_bf16' and row['workload'] in TORCH_VARIANTS


def ratios(rows, short=False):
  """jaxlab's times over each peer's, per workload; None where the accuracies disagree
  or the two ran on different kinds of device."""
  out = []
  bases = {'jaxlab', 'jaxlab_cli', 'jaxlab_cli_warm_cache'}
  for base in rows:
    if base['peer'] not in bases and not _bf16_base(base):
      continue
    for row in rows:
      if row['workload'] != base['workload'] or row['peer'] in bases or _bf16_base(row):
        continue
      if row['workload'] in TORCH_VARIANTS and row['compute_dtype'] != base['compute_dtype']:
        continue  # where the peers run in both precisions, compare like with like
      tolerance = SHORT_ACCURACY_TOLERANCE if short else ACCURACY_TOLERANCE[row['workload']]
      agree = abs(base['test_accuracy'] - row['test_accuracy']) <= tolerance
      comparable = agree and base['device'] == row['device']
      same_start = None  # unknown for the whole process, and for bf16 (it rounds)
      if None not in (base['initial_loss'], row['initial_loss']) and \
          base['compute_dtype'] == row['compute_dtype']:
        rtol = INITIAL_LOSS_RTOL.get(row['workload'], DEFAULT_INITIAL_LOSS_RTOL)
        same_start = abs(row['initial_loss'] - base['initial_loss']) <= \
            rtol * abs(base['initial_loss'])
      out.append(dict(
          workload=row['workload'], jaxlab=base['peer'], peer=row['peer'],
          accuracy_agrees=agree, same_device=base['device'] == row['device'],
          same_start=same_start,
          fit_ratio=_ratio(base['fit_seconds'], row['fit_seconds']) if comparable else None,
          steady_ratio=(_ratio(base['steady_us_per_step'], row['steady_us_per_step'])
                        if comparable else None),
          process_ratio=(_ratio(base['process_seconds'], row['process_seconds'])
                         if comparable else None)))
  return out


def parse(argv):
  parser = argparse.ArgumentParser(prog='jaxlab bench', description=__doc__.splitlines()[0])
  parser.add_argument('--only', default='', help='Comma-separated workloads: '
                      + ', '.join([*WORKLOADS, *EXTRAS]))
  parser.add_argument('--peers', default=','.join(PEERS), help='Comma-separated peers.')
  parser.add_argument('--out', default='', help='Write all results as JSON here.')
  parser.add_argument('--short', action='store_true',
                      help='Tiny sizes, one repeat, no jaxlab variants: checks that everything '
                      'runs (CI).')
  parser.add_argument('--repeats', type=int, default=None, help='Runs per peer (median).')
  parser.add_argument('--torch_device', default='auto',
                      help='The PyTorch peer\'s device: cpu, cuda, or auto (cuda where '
                      'torch.cuda.is_available()).')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse(sys.argv[1:] if argv is None else argv)
  chosen = [w for w in args.only.split(',') if w] or [
      *[w for w in WORKLOADS if w not in common.GPU_WORKLOADS], *EXTRAS]
  workloads = [w for w in chosen if w in WORKLOADS]
  extras = [w for w in chosen if w in EXTRAS]
  unknown = [w for w in chosen if w not in WORKLOADS and w not in EXTRAS]
  peers = [p for p in args.peers.split(',') if p]
  if unknown or any(p not in PEERS for p in peers):
    print(f'jaxlab bench: error: unknown workload or peer in --only={args.only} '
          f'--peers={args.peers}; workloads: {", ".join(WORKLOADS)}; peers: '
          f'{", ".join(PEERS)}.', file=sys.stderr)
    return 2
  repeats = args.repeats or (1 if args.short else 3)
  started = time.perf_counter()
  context = environment.describe(PEER_ENV)
  # The larger workloads' kernels alone, jaxlab's against PyTorch's (not in the short mode).
  device = measure_device([] if args.short or 'torch' not in peers else
                          [w for w in workloads if w in common.LARGE_WORKLOADS])
  peaks = device['gemm_peaks_gflops']
  print('GEMM peak: ' + ', '.join(f'{k} {v:.1f} GFLOP/s' for k, v in peaks.items()), flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    runs, skipped = benchmark(workloads, repeats, args.short, peers,
                              {'torch': [f'--device={args.torch_device}']}, tmp,
                              large_repeats=args.repeats or LARGE_REPEATS)
  rows = summarize(runs, peaks)
  measured_extras = {}
  for name in extras:
    print(f'  {name} ...', flush=True)
    measured_extras[name] = importlib.import_module(EXTRAS[name]).measure(short=args.short)
  results = dict(
      command=' '.join(['python -m benchmarks.run', *(sys.argv[1:] if argv is None else argv)]),
      short=args.short, repeats=repeats, workloads=workloads, peers=peers,
      environment=context, jaxlab_xla_flags=device['xla_flags'],
      gemm_peak_gflops=peaks['float32'], gemm_peaks_gflops=peaks, floors=device['floors'],
      rows=rows, ratios=ratios(rows, short=args.short), skipped=skipped, runs=runs,
      extras=measured_extras,
      suite_seconds=time.perf_counter() - started)
  from benchmarks import report
  print('\n' + report.tables(results))
  for line in skipped:
    print(f'skipped {line}')
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(results, f, indent=1)
      f.write('\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
