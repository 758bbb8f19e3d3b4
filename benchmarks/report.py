"""RESULTS.md from the JSON of a benchmark run: every figure in it is read from that
file (the prose here holds none of its own).

  python -m benchmarks.report benchmarks/results_cpu.json > benchmarks/RESULTS.md
"""

import argparse
import json
import os
import sys

WHOLE = 'whole_process'
# The larger workloads (jaxlab against PyTorch) and their throughput unit per example.
LARGE = {'resnet18_cifar': ('images/s', 1), 'lm_small': ('tokens/s', 256)}
# jaxlab's training throughput over PyTorch's that the larger workloads aim for.
LARGE_SPEEDUP_TARGET = 1.25
JAXLAB_BASES = ('jaxlab', 'jaxlab_cli', 'jaxlab_cli_warm_cache')
PEER_NAMES = ('flax_loop', 'torch', 'keras')
SERVE_JSON = 'results_serve_cpu.json'  # benchmarks.serve_load's, read from beside the JSON
# benchmarks.checkpoint_storage's, read from beside the JSON.
CHECKPOINT_STORAGE_JSON = 'checkpoint_storage_cpu.json'
SCALING_JSON = 'scaling_cpu.json'  # benchmarks.scaling's, with its plots beside it
DETECTION_JSON = 'detection_cpu.json'  # benchmarks.detection's, read from beside the JSON
SPEECH_JSON = 'speech_recognition_cpu.json'  # benchmarks.speech_recognition's, the same way
SEQ2SEQ_JSON = 'seq2seq_cpu.json'  # benchmarks.seq2seq's, the same way


def _fmt(value, spec):
  return '-' if value is None else format(value, spec)


def _yes(flag):
  return '-' if flag is None else ('yes' if flag else 'NO')


def _row(results, workload, peer):
  return next((r for r in results['rows'] if r['workload'] == workload and r['peer'] == peer),
              None)


def _ratio_row(results, workload, peer, base='jaxlab'):
  return next((r for r in results['ratios'] if r['workload'] == workload and r['peer'] == peer
               and r['jaxlab'] == base), None)


def training_table(results):
  lines = ['| workload | peer | device | steps | fit s | steady us/step | warm-up s | '
           'process s | steady examples/s | steady GFLOP/s | % of peak | peak RSS MB | '
           'initial loss | test acc |',
           '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | '
           '---: | ---: |']
  for r in results['rows']:
    if r['workload'] == WHOLE:
      continue
    peak = r['fraction_of_peak'] and 100 * r['fraction_of_peak']
    lines.append(
        f'| {r["workload"]} | {r["peer"]} | {r["device"]} | {_fmt(r["steps"], ".0f")} | '
        f'{_fmt(r["fit_seconds"], ".2f")} | {_fmt(r["steady_us_per_step"], ".0f")} | '
        f'{_fmt(r["warmup_seconds"], ".2f")} | {_fmt(r["process_seconds"], ".1f")} | '
        f'{_fmt(r["steady_examples_per_second"], ",.0f")} | {_fmt(r["steady_gflops"], ".1f")} | '
        f'{_fmt(peak, ".0f")} | {_fmt(r["peak_rss_mb"], ".0f")} | '
        f'{_fmt(r["initial_loss"], ".6f")} | {_fmt(r["test_accuracy"], ".4f")} |')
  return '\n'.join(lines)


def ratio_table(results):
  lines = ['| workload | jaxlab vs | same initial loss | accuracy agrees | fit ratio | '
           'steady ratio | process ratio |',
           '| --- | --- | --- | --- | ---: | ---: | ---: |']
  for r in results['ratios']:
    if r['workload'] == WHOLE:
      continue
    device = '' if r['same_device'] else ' (other device: no ratio)'
    lines.append(f'| {r["workload"]} | {r["peer"]}{device} | {_yes(r["same_start"])} | '
                 f'{_yes(r["accuracy_agrees"])} | {_fmt(r["fit_ratio"], ".3f")} | '
                 f'{_fmt(r["steady_ratio"], ".3f")} | {_fmt(r["process_ratio"], ".3f")} |')
  return '\n'.join(lines)


def large_table(results):
  """The larger workloads: training throughput side by side, its ratio, and MFU."""
  lines = ['| workload | peer | device | steps | steady throughput | vs torch | '
           'steady GFLOP/s | MFU (% of GEMM peak) | initial loss | test acc |',
           '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for r in results['rows']:
    if r['workload'] not in LARGE:
      continue
    unit, per_example = LARGE[r['workload']]
    rate = r['steady_examples_per_second']
    torch_row = _row(results, r['workload'], 'torch')
    speedup = _ratio(rate, torch_row and torch_row['steady_examples_per_second'])
    mfu = r['fraction_of_peak'] and 100 * r['fraction_of_peak']
    lines.append(
        f'| {r["workload"]} | {r["peer"]} | {r["device"]} | {_fmt(r["steps"], ".0f")} | '
        f'{_fmt(rate and rate * per_example, ",.0f")} {unit} | {_fmt(speedup, ".2f")}x | '
        f'{_fmt(r["steady_gflops"], ".1f")} | {_fmt(mfu, ".1f")} | '
        f'{_fmt(r["initial_loss"], ".4f")} | {_fmt(r["test_accuracy"], ".4f")} |')
  return '\n'.join(lines) if len(lines) > 2 else ''


def _speedup_target(results, workload):
  jaxlab, torch_row = _row(results, workload, 'jaxlab'), _row(results, workload, 'torch')
  speedup = _ratio(jaxlab and jaxlab['steady_examples_per_second'],
                   torch_row and torch_row['steady_examples_per_second'])
  mfu = jaxlab and jaxlab['fraction_of_peak']
  measured = (f'{_fmt(speedup, ".2f")}x PyTorch\'s steady throughput; MFU '
              f'{_fmt(mfu and 100 * mfu, ".1f")}%')
  return measured, _met(speedup, LARGE_SPEEDUP_TARGET, below=False)


def merge(results, added):
  """`results` with the rows, ratios and runs of other runs (e.g. the larger workloads
  measured on their own) appended; their commands are listed in the context."""
  merged = dict(results)
  for key in ('rows', 'ratios', 'runs'):
    merged[key] = [*results[key], *[item for extra in added for item in extra[key]]]
  merged['added_runs'] = [(extra['command'], extra['gemm_peak_gflops']) for extra in added]
  merged['added_short'] = any(extra['short'] for extra in added)
  return merged


def whole_process_table(results):
  rows = [r for r in results['rows'] if r['workload'] == WHOLE]
  if not rows:
    return ''
  runs = {run['peer']: run for run in results['runs'] if run['workload'] == WHOLE}
  lines = ['| run | steps | process s (median) | every repeat, s | test acc | vs torch_script |',
           '| --- | ---: | ---: | --- | ---: | ---: |']
  for r in rows:
    each = ', '.join(f'{rep["process_seconds"]:.1f}' for rep in runs[r['peer']]['repeats'])
    ratio = _ratio_row(results, WHOLE, 'torch_script', base=r['peer'])
    lines.append(f'| {r["peer"]} | {_fmt(r["steps"], ".0f")} | '
                 f'{_fmt(r["process_seconds"], ".2f")} | {each} | '
                 f'{_fmt(r["test_accuracy"], ".4f")} | '
                 f'{_fmt(ratio and ratio["process_ratio"], ".3f")} |')
  return '\n'.join(lines)


PHASE_NAMES = (('start_and_imports', 'start and imports'), ('before_fit', 'data and init'),
               ('fit', 'fit'), ('after_fit', 'eval, saves, summaries'), ('exit', 'exit'))
JAXLAB_PARTS = (('setup', 'set-up'), ('place', 'of which placing the data'),
                ('compile', 'compiling'), ('loop_train', 'training steps'),
                ('eval', 'evaluating'), ('checkpoint', 'saving'),
                ('finish', 'summaries, plots, closing'))


def phases_table(results, workload='seed_mlp'):
  """Each peer's whole process in phases (benchmarks.run.phase_seconds), medians."""
  rows = [r for r in results['rows'] if r['workload'] == workload
          and r.get('phase_fit_seconds') is not None]
  if not rows:
    return ''
  lines = ['| peer | ' + ' | '.join(f'{label} s' for _, label in PHASE_NAMES) +
           ' | process s |', '| --- |' + ' ---: |' * (len(PHASE_NAMES) + 1)]
  for r in rows:
    lines.append(f'| {r["peer"]} | ' + ' | '.join(
        _fmt(r[f'phase_{name}_seconds'], '.2f') for name, _ in PHASE_NAMES) +
                 f' | {_fmt(r["process_seconds"], ".2f")} |')
  jaxlab = next((r for r in rows if r['peer'] == 'jaxlab'), None)
  if jaxlab and jaxlab.get('jaxlab_setup_seconds') is not None:
    lines += ['', "jaxlab's own clock over the same run (its `timings`, medians):", '',
              '| ' + ' | '.join(label for _, label in JAXLAB_PARTS) + ' |',
              '|' + ' ---: |' * len(JAXLAB_PARTS),
              '| ' + ' | '.join(_fmt(jaxlab.get(f'jaxlab_{name}_seconds'), '.2f')
                                for name, _ in JAXLAB_PARTS) + ' |']
  return '\n'.join(lines)


def repeats_table(results):
  """Every repeat's fit s / steady us per step / process s, to show the spread."""
  lines = ['| workload | peer | fit s | steady us/step | process s | load average before |',
           '| --- | --- | --- | --- | --- | --- |']
  for run in results['runs']:
    if run['workload'] == WHOLE:
      continue
    reps = run['repeats']
    join = lambda values, spec: ', '.join(_fmt(v, spec) for v in values)
    lines.append(
        f'| {run["workload"]} | {run["peer"]} | '
        f'{join([r["result"].get("fit_seconds") for r in reps], ".2f")} | '
        f'{join([r["result"].get("steady_us_per_step") for r in reps], ".0f")} | '
        f'{join([r["process_seconds"] for r in reps], ".1f")} | '
        f'{join([r.get("load_average") for r in reps], ".2f")} |')
  return '\n'.join(lines)


def tables(results):
  """What the runner prints at the end of a run."""
  peaks = ', '.join(f'{dtype} {value:.1f} GFLOP/s'
                    for dtype, value in results['gemm_peaks_gflops'].items())
  parts = [f'GEMM peak measured in this run (XLA): {peaks}', '', training_table(results), '',
           ratio_table(results)]
  large = large_table(results)
  if large:
    parts += ['', large]
  for table in (phases_table(results), whole_process_table(results)):
    if table:
      parts += ['', table]
  return '\n'.join(parts)


# --- The targets of the earlier benchmark issue, on the common basis ------------------


def _fastest_peer(results, workload, key):
  rows = [r for r in results['rows'] if r['workload'] == workload and r['peer'] in PEER_NAMES
          and r[key] is not None]
  return min(rows, key=lambda r: r[key]) if rows else None


def _met(value, bound, below=True):
  if value is None:
    return 'not measured'
  return 'yes' if (value <= bound if below else value >= bound) else 'no'


def _time_target(results, workload, peer, bound):
  """'measured' and 'met?' cells for jaxlab's fit and steady ratios to `peer` <= bound."""
  if peer == 'fastest':
    cells = []
    for key, label in (('fit_seconds', 'fit'), ('steady_us_per_step', 'steady')):
      fastest = _fastest_peer(results, workload, key)
      ratio = fastest and _ratio_row(results, workload, fastest['peer'])
      value = ratio and ratio[f'{label}_ratio']
      cells.append((f'{label}: {_fmt(value, ".3f")} of {fastest["peer"] if fastest else "-"}',
                    f'{label}: {_met(value, bound)}'))
  else:
    ratio = _ratio_row(results, workload, peer)
    cells = [(f'{label}: {_fmt(ratio and ratio[f"{label}_ratio"], ".3f")}',
              f'{label}: {_met(ratio and ratio[f"{label}_ratio"], bound)}')
             for label in ('fit', 'steady')]
  return ' · '.join(c[0] for c in cells), ' · '.join(c[1] for c in cells)


def _peak_target(results, workload, bound):
  row = _row(results, workload, 'jaxlab')
  value = row and row['fraction_of_peak']
  if value is None:
    return '-', 'not measured'
  return (f'{100 * value:.0f}% ({row["steady_gflops"]:.1f} GFLOP/s, steady)',
          _met(value, bound, below=False))


def _process_target(results):
  fastest = _fastest_peer(results, 'seed_mlp', 'process_seconds')
  ratio = fastest and _ratio_row(results, 'seed_mlp', fastest['peer'])
  value = ratio and ratio['process_ratio']
  return f'{_fmt(value, ".3f")} of {fastest["peer"] if fastest else "-"}', _met(value, 0.5)


def _whole_target(results, base):
  ratio = _ratio_row(results, WHOLE, 'torch_script', base=base)
  value = ratio and ratio['process_ratio']
  return _fmt(value, '.3f'), _met(value, 0.5)


def streaming_table(results):
  """mnist_cnn, jaxlab with the training set on the device vs streamed by Grain."""
  device, stream = _row(results, 'mnist_cnn', 'jaxlab'), _row(results, 'mnist_cnn', 'jaxlab_stream')
  if not (device and stream):
    return None
  lines = ['| placement | fit s | steady us/step | steady examples/s | test acc |',
           '| --- | ---: | ---: | ---: | ---: |']
  for name, row in (('device (resident)', device), ('stream (Grain)', stream)):
    lines.append(f'| {name} | {_fmt(row["fit_seconds"], ".2f")} | '
                 f'{_fmt(row["steady_us_per_step"], ".0f")} | '
                 f'{_fmt(row["steady_examples_per_second"], ",.0f")} | '
                 f'{_fmt(row["test_accuracy"], ".4f")} |')
  return '\n'.join(lines)


def _stream_target(results):
  device, stream = _row(results, 'mnist_cnn', 'jaxlab'), _row(results, 'mnist_cnn', 'jaxlab_stream')
  value = device and stream and _ratio(device['steady_us_per_step'], stream['steady_us_per_step'])
  return f'{_fmt(value, ".3f")}x the device-resident steps/s', _met(value, 0.9, below=False)


def _tfds_start_target(results):
  start = results.get('extras', {}).get('tfds_start', {}).get('compilation_cache_on')
  value = start and start['warm_over_npz']
  return f'{_fmt(value, ".2f")}x (compilation cache on)', _met(value, 1.2)


def _ratio(numerator, denominator):
  return numerator / denominator if numerator and denominator else None


def host_pipeline_table(results):
  host = results.get('extras', {}).get('host_pipeline')
  if not host:
    return None
  jpeg, text = host.get('jpeg', {}), host.get('text', {})
  records = host.get('tfds_records', {})
  lines = ['| pipeline | measured |', '| --- | ---: |']
  lines.append(f'| JPEG {jpeg.get("image_shape")} decode + Inception crop to '
               f'{jpeg.get("output")} + flip, one process | '
               f'{_fmt(jpeg.get("train_examples_per_s_1_process"), ",.0f")} examples/s |')
  lines.append(f'| the same, {jpeg.get("workers")} worker processes | '
               f'{_fmt(jpeg.get("train_examples_per_s_workers"), ",.0f")} examples/s '
               f'({_fmt(jpeg.get("train_examples_per_s_per_core"), ",.0f")} per core) |')
  lines.append(f'| JPEG eval path (resize + center crop), one process | '
               f'{_fmt(jpeg.get("eval_examples_per_s_1_process"), ",.0f")} examples/s |')
  if 'skipped' in text:
    lines.append(f'| text tokenize + pack | skipped: {text["skipped"]} |')
  else:
    lines.append(f'| text: byte tokenize + pack into {text.get("seq_len")}-token rows, one core | '
                 f'{_fmt(text.get("tokens_per_s"), ",.0f")} tokens/s |')
  if records:
    lines.append(f'| TFDS PNG records decoded, one core | '
                 f'{_fmt(records.get("decode_us_per_record_serial"), ".0f")} us/record |')
    lines.append(f'| TFDS PNG records decoded, {records.get("workers")} workers | '
                 f'{_fmt(records.get("decode_us_per_record_parallel"), ".0f")} us/record |')
  return '\n'.join(lines)


def tfds_start_table(results):
  start = results.get('extras', {}).get('tfds_start')
  if not start:
    return None
  sizes = start['sizes']
  lines = [f'{sizes["num_train"]:,} training and {sizes["num_test"]:,} test images, '
           f'{sizes["epochs"]} epochs, median of {sizes["repeats"]} runs each, start to exit:',
           '', '| compilation cache | TFDS, first run (s) | TFDS, decoded cache warm (s) | '
           '.npz (s) | warm / npz | first / npz |', '| --- | ---: | ---: | ---: | ---: | ---: |']
  for cache in ('on', 'off'):
    row = start.get(f'compilation_cache_{cache}')
    if row:
      lines.append(f'| {cache} | {_fmt(row["tfds_cold_cache_s"], ".2f")} | '
                   f'{_fmt(row["tfds_warm_cache_s"], ".2f")} | {_fmt(row["npz_s"], ".2f")} | '
                   f'{_fmt(row["warm_over_npz"], ".2f")} | {_fmt(row["cold_over_npz"], ".2f")} |')
  return '\n'.join(lines)


def before_after_table(results, before):
  """jaxlab's own rows in an earlier stored run against this one."""
  if not before:
    return None
  lines = ['| workload | fit s before | fit s now | steady us/step before | steady us/step now | '
           'test acc before | test acc now |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
  for workload in ('seed_mlp', 'mnist_cnn', 'mlp_large_batch'):
    old, new = _row(before, workload, 'jaxlab'), _row(results, workload, 'jaxlab')
    if old and new:
      lines.append(f'| {workload} | {_fmt(old["fit_seconds"], ".2f")} | '
                   f'{_fmt(new["fit_seconds"], ".2f")} | {_fmt(old["steady_us_per_step"], ".0f")} | '
                   f'{_fmt(new["steady_us_per_step"], ".0f")} | '
                   f'{_fmt(old["test_accuracy"], ".4f")} | {_fmt(new["test_accuracy"], ".4f")} |')
  return '\n'.join(lines)


def targets_table(results):
  bf16 = _row(results, 'mnist_cnn', 'jaxlab_bf16')
  rows = [
      ('`seed_mlp` training time <= 1/3 of the fastest peer\'s',
       *_time_target(results, 'seed_mlp', 'fastest', 1 / 3)),
      ('`seed_mlp` training time <= 1/7 of Keras\'s',
       *_time_target(results, 'seed_mlp', 'keras', 1 / 7)),
      ('`seed_mlp` whole process (benchmark processes) <= 1/2 of the fastest peer\'s',
       *_process_target(results)),
      ('`jaxlab train` of the seed MLP <= 1/2 of the PyTorch script, first run',
       *_whole_target(results, 'jaxlab_cli')),
      ('`jaxlab train` of the seed MLP <= 1/2 of the PyTorch script, compile cache warm',
       *_whole_target(results, 'jaxlab_cli_warm_cache')),
      ('`seed_mlp` steady state >= 60% of the GEMM peak', *_peak_target(results, 'seed_mlp', 0.6)),
      ('`mnist_cnn` float32 training time <= Keras\'s',
       *_time_target(results, 'mnist_cnn', 'keras', 1.0)),
      ('`mnist_cnn` stretch: 1.25x faster than Keras (ratio <= 0.8)',
       *_time_target(results, 'mnist_cnn', 'keras', 0.8)),
      ('`mnist_cnn` bf16 measured and reported',
       (f'fit {_fmt(bf16["fit_seconds"], ".2f")} s, steady '
        f'{_fmt(bf16["steady_us_per_step"], ".0f")} us/step') if bf16 else 'not measured',
       'reported' if bf16 else 'not measured'),
      ('`mlp_large_batch` >= 70% of the GEMM peak',
       *_peak_target(results, 'mlp_large_batch', 0.7)),
      ('`mnist_cnn` streamed (Grain) at >= 0.9x the device-resident steps/s',
       *_stream_target(results)),
      ('`jaxlab train` on a prepared TFDS set, second run, <= 1.2x the same images from .npz',
       *_tfds_start_target(results)),
      (f'`resnet18_cifar` >= {LARGE_SPEEDUP_TARGET}x PyTorch\'s training throughput',
       *_speedup_target(results, 'resnet18_cifar')),
      (f'`lm_small` >= {LARGE_SPEEDUP_TARGET}x PyTorch\'s training throughput',
       *_speedup_target(results, 'lm_small')),
  ]
  lines = ['| target | measured (jaxlab / peer) | met? |', '| --- | --- | --- |']
  lines += [f'| {name} | {measured} | {met} |' for name, measured, met in rows]
  return '\n'.join(lines)


# --- The page --------------------------------------------------------------------------


def _context(results):
  env = results['environment']
  machine, git, versions = env['machine'], env['git'], env['versions']
  loads = [rep.get('load_average') for run in results['runs'] for rep in run['repeats']
           if rep.get('load_average') is not None]
  load = (f'{min(loads):.2f} to {max(loads):.2f}' if loads else 'not recorded')
  threads = ', '.join(f'{k}={v}' for k, v in env['thread_settings'].items()) or 'none set'
  commit = git.get('commit') or 'unknown'
  dirty = ' (with uncommitted changes)' if git.get('dirty') else ''
  return '\n'.join([
      f'- **Date:** {env["date"]}; **commit:** `{commit}`{dirty}',
      f'- **Machine:** {machine["cpu_model"]}, {machine["logical_cpus"]} logical CPUs '
      f'({machine["usable_cpus"]} usable), {machine["memory_gib"]} GiB; GPUs: '
      f'{", ".join(env["gpus"]) or "none"}; {machine["platform"]}',
      f'- **Load average** (1 min) before each measured process: {load} '
      f'(near 0 on an otherwise idle machine)',
      f'- **Versions:** Python {machine["python"]}, '
      + ', '.join(f'{name} {version}' for name, version in versions.items()),
      f'- **Thread settings** in the environment of the peers: {threads}; each peer\'s own '
      f'counts are in its raw results (`num_threads`, `intra_op_threads`, `usable_cpus`)',
      f'- **jaxlab\'s XLA options** (its runs only): `{results["jaxlab_xla_flags"] or "none"}`',
      f'- **Suite:** `{results["command"]}`, {results["repeats"]} repeat(s) per peer, medians; '
      f'{results["suite_seconds"] / 60:.1f} minutes in all'
      + ''.join(f'; with the rows of `{command}` (MFU against the float32 GEMM peak measured '
                f'in that run, {peak:.1f} GFLOP/s)' for command, peak in results.get('added_runs', ())),
  ])


def _floors_notes(results):
  floors = results.get('floors') or {}
  step = floors.get('seed_mlp_bare_step_us') or {}
  jaxlab = _row(results, 'seed_mlp', 'jaxlab')
  large = _row(results, 'mlp_large_batch', 'jaxlab')
  peak = results['gemm_peak_gflops']
  notes = []
  fastest = _fastest_peer(results, 'seed_mlp', 'steady_us_per_step')
  if step and jaxlab and fastest:
    floor_gflops = jaxlab['flops_per_step'] / (step['adam'] * 1e-6) / 1e9
    notes.append(
        f'- **`seed_mlp` (batch 32).** The same training step written by hand '
        f'(`benchmarks/floors.py`: no metrics, float32 data already on the device, one '
        f'`lax.scan` over {floors.get("seed_mlp_bare_steps", 0):,} steps) takes '
        f'{step["adam"]:.0f} us with Adam and '
        f'{step["sgd"]:.0f} us with plain SGD on this backend. With Adam that is '
        f'{floor_gflops:.1f} GFLOP/s, {100 * floor_gflops / peak:.0f}% of the GEMM peak: at '
        'this batch size no framework reaches the 60% target on this backend. jaxlab\'s '
        f'steady step is {_fmt(jaxlab["steady_us_per_step"], ".0f")} us, '
        f'{_fmt(jaxlab["steady_us_per_step"] and jaxlab["steady_us_per_step"] / step["adam"], ".2f")}'
        'x the floor; what remains above it is jaxlab\'s own work per step (the metrics it '
        'logs: accuracy, gradient norm, learning rate; the uint8-to-float conversion and the '
        'batch gather). Against the fastest peer\'s steady step '
        f'({fastest["peer"]}, {fastest["steady_us_per_step"]:.0f} us) the Adam floor is a '
        f'ratio of {step["adam"] / fastest["steady_us_per_step"]:.2f}: the least any '
        'framework could reach here on the steady basis.')
  matmul = floors.get('mlp_large_batch_forward_matmul_gflops')
  if matmul and large:
    notes.append(
        f'- **`mlp_large_batch`.** Its forward matmul alone (4096x784 by 784x128) runs at '
        f'{matmul:.1f} GFLOP/s here, {100 * matmul / peak:.0f}% of the square-GEMM peak; '
        f'the whole step reaches {_fmt(large["steady_gflops"], ".1f")} GFLOP/s. The rest of '
        'the step (the weight-gradient matmul that reduces over the 4096-row batch, gathering '
        'and converting the batch, the element-wise work) takes the difference.')
  notes += [_kernels_note(results, workload, measured)
            for workload, measured in (floors.get('kernels') or {}).items()
            if _row(results, workload, 'jaxlab') and _row(results, workload, 'torch')]
  return '\n'.join(notes)


KERNELS_DONE_ALONE = {
    'resnet18_cifar': 'Its 3x3 convolutions alone (one per stage, 32x32x64 to 4x4x512, batch '
                      '128, forward and both gradients: PyTorch\'s `F.conv2d` on NCHW tensors '
                      'as its peer runs it, XLA through jaxlab\'s convolution)',
    'lm_small': 'Its matmuls alone (every weight matmul of a step at 16 x 256 tokens and '
                'attention\'s two batched products, each with its two gradient products)',
}


def _kernels_note(results, workload, measured):
  """Why a larger workload's speed target is (or is not) within reach of its kernels."""
  jaxlab, torch_row = _row(results, workload, 'jaxlab'), _row(results, workload, 'torch')
  xla, torch = measured['gflops']['xla'], measured['gflops']['torch']
  needed = torch_row['steady_gflops'] and LARGE_SPEEDUP_TARGET * torch_row['steady_gflops']
  return (f'- **`{workload}`.** {KERNELS_DONE_ALONE[workload]} run at {xla:.1f} GFLOP/s in XLA '
          f'and {torch:.1f} GFLOP/s in PyTorch on this machine (`benchmarks/kernels.py`), so '
          f'PyTorch\'s kernels are {torch / xla:.2f}x XLA\'s. The whole steps reach '
          f'{_fmt(jaxlab["steady_gflops"], ".1f")} GFLOP/s (jaxlab, '
          f'{_fmt(jaxlab["steady_gflops"] and 100 * jaxlab["steady_gflops"] / xla, ".0f")}% of its '
          f'kernels\' rate alone) and {_fmt(torch_row["steady_gflops"], ".1f")} GFLOP/s (PyTorch, '
          f'{_fmt(torch_row["steady_gflops"] and 100 * torch_row["steady_gflops"] / torch, ".0f")}%). '
          f'{LARGE_SPEEDUP_TARGET}x PyTorch\'s step would be {_fmt(needed, ".1f")} GFLOP/s, '
          f'{_fmt(needed and needed / xla, ".2f")}x the rate XLA\'s kernels reach with nothing '
          'else in the step.')


PAGE = """# Benchmark results

Generated by `python -m benchmarks.report {source}` from the JSON that
`{command}` wrote; every figure on this page is read from that file, which also keeps
each repeat's raw values.{short_note}

{context}

## How every peer is timed

- **The same work.** The same synthetic MNIST-shaped data file and the same initial
  weights (INIT.npz) for every peer; every peer drops the last partial batch, so all take
  the same number of steps (the `steps` column). Each reports its loss on the same training
  examples before the first update ("initial loss"); the ratio table says whether it
  matches jaxlab's.
- **fit s:** from the start of the fit to the end of its last step, with everything a
  first run pays included for everyone: placing the data on the device (jaxlab, PyTorch),
  tracing and compiling (jaxlab, the Flax loop, Keras's tf.function), and the per-step
  host-to-device copies of the loops that make them (the Flax loop, Keras).
- **steady us/step:** epochs 2..N only, for everyone, so no one's compilation is in it.
  **warm-up s** is what the first epoch cost beyond a steady one (compilation, tracing,
  placing the data). GFLOP/s and % of the GEMM peak are computed from the steady rate and
  the analytic FLOPs of a step (`benchmarks/flops.py`).
- **process s:** the peer's whole process, start to exit, timed by the runner: imports,
  reading the data file, the fit, the test evaluation and (jaxlab) the final checkpoint.
- **Peers run as users run them:** Keras exactly as the quickstart writes it
  (`model.fit`), PyTorch eager with index batching, a Flax-examples loop (one jitted step
  per batch), each with the user's environment; jaxlab with its own XLA options and its
  persistent compilation cache off, so it compiles in every run as the others do.
- A speed ratio (jaxlab's time over the peer's: below 1 is jaxlab faster) counts only
  where the test accuracies agree and both ran on the same kind of device.

GEMM peak measured in this run (XLA): {peaks}.

## Training

{training}

{ratios}

## Larger workloads

ResNet-18 (CIFAR stem, batch 128, SGD momentum) on CIFAR-shaped synthetic images, and a
~10M-parameter decoder (6 x 320, RoPE, RMSNorm, SwiGLU; 256-byte rows of Python's
documentation, batch 16, AdamW), jaxlab against PyTorch written as its users write them
(`benchmarks/peers/torch_models.py`: torchvision's BasicBlock ResNet; a nanoGPT-style
model with `F.scaled_dot_product_attention(is_causal=True)`). The ResNets start from the
same weights; the decoders draw their own from the same distributions, so their initial
losses differ by the draw (the ratios table above says whether they agree within 1%).
Throughput is the steady rate (epochs 2..N), "vs torch" the peer's throughput over
PyTorch's, MFU the steady FLOP rate (`benchmarks/flops.py`) over the measured GEMM peak.{large_note}

{large}

## Whole process

`jaxlab train --config=experiments/mnist_mlp.py --config.data.name=synthetic` against
`benchmarks/peers/torch_script.py`, the PyTorch script a user writes for the same job
(a `DataLoader` over the same synthetic images, an evaluation after every epoch, the
weights saved at the end), each timed from start to exit. jaxlab also writes its metrics,
TensorBoard events, a checkpoint per epoch and two plots. "first run": an empty
compilation cache; "warm cache": the cache the first run left.

{whole}

### Where a process spends its time

The `seed_mlp` rows of the training table, each process cut at four clock readings:
the peer's imports done, its fit's start and end (`benchmarks.peers.common.phase_clock`)
and its result written; the runner reads the process's start and exit. "data and
init": reading the data file, building the model and its initial state and (the peers)
the initial-loss check; "eval, saves, summaries": the test evaluation and, for jaxlab,
the final checkpoint, its metrics and events, and closing. jaxlab's fit starts at
placing the training set and includes its initial-loss check (after compiling).

{phases}

## Input pipelines

The same `mnist_cnn` run with its training set on the device (gathered inside the
compiled loop) and streamed by Grain (`--config.data.placement=stream`: read on the
host, prefetched onto the device in the background, same example order):

{streaming}

Host pipeline throughput (`benchmarks/host_pipeline.py`):

{host_pipeline}

A whole `jaxlab train` of the seed MLP on a prepared TFDS data set against the same
images from an .npz file (`benchmarks/tfds_start.py`):

{tfds_start}

jaxlab's own rows before this change ({before_source}) and now:

{before_after}

## Serving

{serving}

## Scaling

{scaling}

## Checkpoint storage

{checkpoint_storage}

## Detection

{detection}

## Speech recognition

{speech}

## Translation and summarization

{seq2seq}

## Targets on this basis

{targets}

## What limits the misses

{floors}

## Every repeat

{repeats}

## GPU

{gpu}
"""


def _gpu_note(results):
  if any(r['device'] == 'gpu' for r in results['rows']):
    return ('The rows above whose device is `gpu` ran on the GPU; a ratio is only given '
            'between two runs on the same kind of device.')
  return ('This run had no GPU. `bash benchmarks/gpu.sh` on a GPU machine runs jaxlab, the '
          'Flax loop and, where `torch.cuda.is_available()`, the PyTorch peer on the GPU '
          '(never PyTorch on the CPU against jaxlab on the GPU), and measures the float32 and '
          'bfloat16 GEMM peaks there.')


def serving_section(serve):
  """The "Serving" section from `benchmarks.serve_load`'s JSON (None: not measured)."""
  if not serve:
    return ('Not measured: `python -m benchmarks.serve_load` writes '
            f'{SERVE_JSON}, which this page then includes.')
  lines = [f'`jaxlab serve` under load (`{serve["command"]}`, {serve["context"]["date"]}, '
           f'load average {_fmt(serve["context"]["load_average"], ".1f")} when it finished): '
           'concurrent clients on 127.0.0.1, one PNG per request, with dynamic batching and '
           'with `--max_batch=1`. Per request (means, ms): the server decoding the upload, '
           'waiting for its batch, the model call of its batch, the rest of the server '
           '(parsing, routing, the answer), and HTTP (the client\'s latency less the server\'s '
           'handling: the loopback and both HTTP stacks); and the server process\'s CPU time per '
           'request (all its threads), which other load on the machine inflates less than '
           'wall times.', '',
           '| workload | mode | clients | requests | requests/s | p50 ms | p99 ms | '
           'examples/batch | model ms/batch | decode | queue | model | server rest | HTTP | '
           'server CPU ms/request |',
           '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | '
           '---: | ---: | ---: |']
  for r in serve['rows']:
    t = r['per_request_ms']
    lines.append(
        f'| {r["workload"]} | {r["mode"]} (max_batch {r["max_batch"]}) | {r["clients"]} | '
        f'{r["requests"]} | {r["throughput_rps"]:,.0f} | {r["latency_ms"]["p50"]:.1f} | '
        f'{r["latency_ms"]["p99"]:.1f} | {_fmt(r["examples_per_batch"], ".1f")} | '
        f'{_fmt(r["model_ms_per_batch"], ".2f")} | {t["decode"]:.2f} | {t["queue"]:.2f} | '
        f'{t["model"]:.2f} | {t["server_other"]:.2f} | {t["http"]:.2f} | '
        f'{r["server_cpu_ms_per_request"]:.2f} |')
  target = serve.get('target')
  if target:
    lines += ['', f'Target: {target["workload"]} at {target["clients"]} clients, batching '
              f'>= {target["speedup"]}x the unbatched throughput and p99 < '
              f'{target["p99_ms"]:.0f} ms. Measured: {target["measured_speedup"]:.2f}x, p99 '
              f'{target["measured_p99_ms"]:.1f} ms: {"met" if target["met"] else "NOT met"}.']
  return '\n'.join(lines)


def _attention_share(row, same_width):
  """The part of `row`'s FLOPs per token that grows with the sequence length: a least-
  squares line through (length, FLOPs per token) of its width's rows."""
  points = [(r['seq_len'], r['flops_per_step'] / (r['batch'] * r['seq_len'])) for r in same_width]
  if len(points) < 2:
    return None
  mean_x = sum(x for x, _ in points) / len(points)
  mean_y = sum(y for _, y in points) / len(points)
  slope = (sum((x - mean_x) * (y - mean_y) for x, y in points) /
           sum((x - mean_x) ** 2 for x, _ in points))
  return slope * row['seq_len'] / (row['flops_per_step'] / (row['batch'] * row['seq_len']))


def _scaling_batch(rows, plot):
  """The Scaling section's table of steps/s and GFLOP/s against the global batch."""
  peak = next((r['peak_gflops'] for r in rows if r['peak_gflops']), None)
  lines = ['', '### Global batch', '', f'GEMM peak (jaxlab\'s meter): {_fmt(peak, ".1f")} '
           'GFLOP/s.', '', '| model | batch | steps/block | steps/s | examples/s | '
           'model GFLOP/s | % of peak | compile s |', '| --- |' + ' ---: |' * 7]
  for r in rows:
    lines.append(f'| {r["experiment"]} | {r["batch"]} | {r["steps_per_loop"]} | '
                 f'{_fmt(r["steps_per_second"], ",.1f")} | '
                 f'{_fmt(r["examples_per_second"], ",.0f")} | {_fmt(r["gflops"], ".1f")} | '
                 f'{_fmt(peak and 100 * r["gflops"] / peak, ".0f")} | '
                 f'{_fmt(r["compile_seconds"], ".2f")} |')
  return lines + ['', plot]


def _scaling_sequence(rows, plot):
  """The Scaling section's table of the LM's tokens/s, FLOPs and memory against the
  sequence length."""
  lines = ['', '### Language model: sequence length', '', 'A constant number of tokens '
           'per batch (rows = tokens / length), 2 layers. Model FLOPs per token grow '
           'linearly with the length (the attention products); "attention share" is that '
           'growing part of a step\'s FLOPs, from a straight line through each width\'s '
           'FLOPs per token: past one half, the quadratic term has taken over.', '',
           '| width | length | batch | tokens/s | model GFLOP/s | MFLOP/token | '
           'attention share | step peak MB | peak RSS MB |', '| ---: |' + ' ---: |' * 8]
  for r in rows:
    tokens = r['batch'] * r['seq_len']
    share = _attention_share(r, [p for p in rows if p['width'] == r['width']])
    lines.append(f'| {r["width"]} | {r["seq_len"]} | {r["batch"]} | '
                 f'{_fmt(r["examples_per_second"] * r["seq_len"], ",.0f")} | '
                 f'{_fmt(r["gflops"], ".1f")} | '
                 f'{_fmt(r["flops_per_step"] / tokens / 1e6, ".2f")} | '
                 f'{_fmt(share and 100 * share, ".0f")}{"%" if share is not None else ""} | '
                 f'{_fmt((r["step_peak_bytes"] or 0) / 2**20, ".1f")} | '
                 f'{_fmt(r["peak_rss_mb"], ".0f")} |')
  return lines + ['', plot]


def _scaling_dataset(rows, plot):
  """The Scaling section's table of a streamed set's steps/s and memory against its size."""
  lines = ['', '### Streamed training set size', '', 'Memory-mapped .npy rows (8x8 images) '
           'streamed by Grain (`--config.data.placement=stream`) at a constant batch. '
           'Resident memory at the end, split: private pages (the process\'s own) and file '
           'pages mapped from the page cache (the libraries, and the rows read so far with '
           'their neighbours: the kernel maps a fault\'s surrounding pages too), which the '
           'kernel shares and reclaims.', '',
           '| examples | batch | steps/s | peak RSS MB | private MB | file-mapped MB |',
           '| ---: |' + ' ---: |' * 5]
  for r in rows:
    lines.append(f'| {r["examples"]:,} | {r["batch"]} | {_fmt(r["steps_per_second"], ",.1f")} | '
                 f'{_fmt(r["peak_rss_mb"], ".0f")} | {_fmt(r.get("private_rss_mb"), ".0f")} | '
                 f'{_fmt(r.get("file_rss_mb"), ".0f")} |')
  return lines + ['', plot]


def _scaling_depth(rows, plot):
  """The Scaling section's table of the LM's compile time against its depth."""
  lines = ['', '### Language model: depth', '', 'Compile time of the training block '
           '(one step per block), blocks scanned (`model.scan_layers=True`: one block in the '
           'program whatever the depth) or unrolled.', '',
           '| layers | scanned compile s | unrolled compile s | scanned steps/s | '
           'unrolled steps/s |', '| ---: | ---: | ---: | ---: | ---: |']
  for layers in sorted({r['layers'] for r in rows}):
    scanned = next((r for r in rows if r['layers'] == layers and r['scanned']), {})
    unrolled = next((r for r in rows if r['layers'] == layers and not r['scanned']), {})
    lines.append(f'| {layers} | {_fmt(scanned.get("compile_seconds"), ".2f")} | '
                 f'{_fmt(unrolled.get("compile_seconds"), ".2f")} | '
                 f'{_fmt(scanned.get("steps_per_second"), ",.1f")} | '
                 f'{_fmt(unrolled.get("steps_per_second"), ",.1f")} |')
  return lines + ['', plot]


def scaling_section(scaling):
  """The "Scaling" section from `benchmarks.scaling`'s JSON (None: not measured)."""
  if not scaling:
    return (f'Not measured: `python -m benchmarks.scaling --out=benchmarks/{SCALING_JSON}` '
            'writes it and its plots, which this page then includes.')
  rows = scaling['rows']
  sweep = lambda name: [r for r in rows if r['sweep'] == name]
  env = scaling['environment']
  dirty = ' with changes not yet committed' if env['git'].get('dirty') else ''
  lines = [f'`{scaling["command"]}` ({env["date"]}, commit `{env["git"].get("commit", "?")}`'
           f'{dirty}, {env["machine"]["logical_cpus"]} logical CPUs, '
           f'{scaling["seconds"] / 60:.1f} minutes, load average '
           f'{_fmt(scaling["load_average_1min"], ".1f")} when it finished). Each point is a '
           'process of its own training with jaxlab\'s session (the experiment\'s config at the '
           'point\'s size, the persistent compilation cache off); steps/s is the median over the '
           'timed blocks after the first; peak RSS is the process\'s; "step peak MB" is XLA\'s '
           'estimate for the compiled training block.' +
           (' **Short mode**: tiny sizes that check the wiring; not measurements.'
            if scaling['short'] else '')]
  plot = lambda name: (f'![{name}](scaling_{name}.png)' if f'scaling_{name}.png'
                       in scaling.get('plots', ()) else '')
  if sweep('batch'):
    lines += _scaling_batch(sweep('batch'), plot('batch'))
  if sweep('sequence'):
    lines += _scaling_sequence(sweep('sequence'), plot('sequence'))
  if sweep('dataset'):
    lines += _scaling_dataset(sweep('dataset'), plot('dataset'))
  if sweep('depth'):
    lines += _scaling_depth(sweep('depth'), plot('depth'))
  return '\n'.join(lines)


def checkpoint_storage_section(measured):
  """The "Checkpoint storage" section from `benchmarks.checkpoint_storage`'s JSON."""
  if not measured:
    return ('Not measured: `python -m benchmarks.checkpoint_storage` writes '
            f'{CHECKPOINT_STORAGE_JSON}, which this page then includes.')
  lines = [f'`checkpoint_seconds` (the time training waited on its saves, the last one\'s '
           'completion and, for s3:// and az://, its upload included) of one digits_cnn run '
           f'with dense layers {tuple(measured["dense_features"])}, {measured["num_steps"]} '
           f'steps, a save every {measured["save_every"]} (`python -m '
           f'benchmarks.checkpoint_storage`, {measured["date"]}, load average '
           f'{measured["load_average_1min"]:.1f} when it finished). The buckets are the test '
           'emulators on 127.0.0.1 sharing the same cores, so a figure is the client\'s cost, '
           'not a real network\'s. Median of the repeats.', '',
           '| storage | checkpoint MB | saves | checkpoint s | vs local disk | repeats s |',
           '| --- | ---: | ---: | ---: | ---: | --- |']
  for r in measured['rows']:
    lines.append(f'| {r["storage"]} | {r["checkpoint_mb"]:.1f} | {r["saves"]} | '
                 f'{r["checkpoint_seconds"]:.2f} | {r["vs_local"]:.1f}x | '
                 f'{", ".join(f"{x:.2f}" for x in r["repeats"])} |')
  return '\n'.join(lines)


def _average_precision(value):
  # pycocotools reports -1 for an area range with no ground-truth box in the test set.
  return 'no box of this size in the test set' if value < 0 else f'{value:.3f}'


def detection_section(measured):
  """The "Detection" section from `benchmarks.detection`'s JSON."""
  if not measured:
    return (f'Not measured: `python -m benchmarks.detection` writes {DETECTION_JSON}, which '
            'this page then includes.')
  minutes = measured['train_command_seconds'] / 60 if measured['train_command_seconds'] else None
  return '\n'.join([
      f'`{measured["experiment"]}` (FCOS on a ResNet-18 of width 32, 128 x 128 inputs) trained '
      f'with `jaxlab train` on {measured["cpus"]} CPU cores (`python -m benchmarks.detection`), '
      'evaluated by pycocotools on the 500 held-out images of the offline set, boxes in each '
      'image\'s pixels.', '',
      '| figure | value |', '| --- | ---: |',
      f'| whole `jaxlab train` command, minutes | {_fmt(minutes, ".1f")} |',
      f'| steps | {measured["step"]} |',
      *(f'| {name} | {_average_precision(measured[name])} |'
        for name in ('mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl')),
      f'| mAP > 0.5 in under 15 minutes | {_yes(measured["meets_map_bound"])} |',
      f'| training, images/s | {measured["train_images_per_second"]:.1f} |',
      f'| inference (eval step, batch {measured["eval_batch"]}), images/s | '
      f'{measured["inference_images_per_second"]:.1f} |',
      f'| eval step at batch {measured["eval_batch"]}, ms | {1000 * measured["eval_step_seconds"]:.1f} |',
      f'| its post-processing alone (top-k, NMS), ms | {1000 * measured["decoding_seconds"]:.1f} |',
      f'| post-processing share of the eval step (bound 10%) | '
      f'{100 * measured["postprocessing_share"]:.1f}% |',
      *(['', measured['note']] if measured.get('note') else [])])


def speech_section(measured):
  """The "Speech recognition" section from `benchmarks.speech_recognition`'s JSON."""
  if not measured:
    return (f'Not measured: `python -m benchmarks.speech_recognition` writes {SPEECH_JSON}, '
            'which this page then includes.')
  baseline = measured['baseline_most_frequent_transcript']
  load = ', '.join(f'{x:.1f}' for x in measured['load_average'])
  return '\n'.join([
      f'`{measured["experiment"]}` (CTC over characters) trained with `jaxlab train` on '
      f'{measured["cpus"]} CPU cores (`python -m benchmarks.speech_recognition`; load average '
      f'{load} at the end), scored by jiwer on the {measured["test_utterances"]} test utterances '
      f'({measured["test_split"]}; {measured["reference_words"]} words).', '',
      '| decoder | WER | CER | substitutions | deletions | insertions |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      f'| prefix beam search, beam {measured["beam_size"]} | {100 * measured["wer"]:.1f}% | '
      f'{100 * measured["cer"]:.1f}% | {measured["substitutions"]} | {measured["deletions"]} | '
      f'{measured["insertions"]} |',
      f'| greedy | {100 * measured["greedy_wer"]:.1f}% | {100 * measured["greedy_cer"]:.1f}% '
      '| | | |',
      f'| baseline: the most frequent training transcript | {100 * baseline["wer"]:.1f}% | '
      f'{100 * baseline["cer"]:.1f}% | {baseline["substitutions"]} | {baseline["deletions"]} | '
      f'{baseline["insertions"]} |', '',
      '| figure | value |', '| --- | ---: |',
      f'| whole `jaxlab train` command, minutes | '
      f'{_fmt(measured["train_command_seconds"] and measured["train_command_seconds"] / 60, ".1f")} |',
      f'| steps | {measured["step"]} |',
      f'| training, utterances/s | {measured["train_utterances_per_second"]:.1f} |',
      f'| inference at batch {measured["eval_batch"]}, greedy, utterances/s | '
      f'{measured["greedy_utterances_per_second"]:.1f} |',
      f'| inference at batch {measured["eval_batch"]}, beam {measured["beam_size"]}, '
      f'utterances/s | {measured["beam_utterances_per_second"]:.1f} |',
      f'| greedy WER < 25% and beam better than greedy, in under 15 minutes | '
      f'{_yes(measured["meets_wer_bound"])} |',
      *(['', measured['note']] if measured.get('note') else [])])


def _load_at_end(run):
  """The 1-minute load average when a seq2seq run's training ended (older JSON: at the end)."""
  if 'load_average_before_and_after' in run:
    return run['load_average_before_and_after'][1]
  return run.get('load_average_at_end', float('nan'))


def seq2seq_section(measured):
  """The "Translation and summarization" section from `benchmarks.seq2seq`'s JSON."""
  if not measured:
    return (f'Not measured: `python -m benchmarks.seq2seq` writes {SEQ2SEQ_JSON}, which this '
            'page then includes.')
  runs = [(name, run) for name, run in measured.items() if isinstance(run, dict) and 'eval' in run]
  lines = [f'The offline experiments trained with `jaxlab train` on {measured["cpus"]} CPU cores '
           '(`python -m benchmarks.seq2seq`), scored on their held-out pairs by sacrebleu (BLEU, '
           'chrF; default tokenization) and rouge-score (ROUGE), beside two trivial answers.', '',
           '| experiment | output | BLEU | chrF | ROUGE-1 | ROUGE-2 | ROUGE-L | bound | met | '
           'whole command, minutes | load average at the end |',
           '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |']
  for name, run in runs:
    rows = [('the model', run['eval']),
            ('copy the source', run['baselines']['copy_source']),
            (f'the most frequent target ("{run["baselines"]["most_frequent_output"]["output"]}")',
             run['baselines']['most_frequent_output'])]
    for i, (what, scores) in enumerate(rows):
      lines.append(
          f'| {name if i == 0 else ""} | {what} | {scores["bleu"]:.1f} | {scores["chrf"]:.1f} | '
          f'{scores["rouge1"]:.1f} | {scores["rouge2"]:.1f} | {scores["rougeL"]:.1f} | '
          + (f'{run["bound"]} | {_yes(run["meets_bound"])} | '
             f'{_fmt(run["train_command_seconds"] and run["train_command_seconds"] / 60, ".1f")} | '
             f'{_load_at_end(run):.1f} |' if i == 0 else '| | | |'))
  for name, run in runs:
    decoding = run.get('decoding')
    if not decoding:
      continue
    lines += ['', f'Decoding speed of the `{name}` model, a batch of {decoding["batch"]} held-out '
              'sources, output tokens/s:', '',
              '| beam | with the key/value cache | recomputing the prefix each step |',
              '| ---: | ---: | ---: |']
    for beam in (1, 4):
      lines.append(f'| {beam} | {decoding[f"beam{beam}_cache"]["tokens_per_second"]:,.0f} | '
                   f'{decoding[f"beam{beam}_no_cache"]["tokens_per_second"]:,.0f} |')
  if measured.get('note'):
    lines += ['', measured['note']]
  return '\n'.join(lines)


def page(results, source, before=None, before_source=None, serve=None, checkpoint_storage=None,
         scaling=None, detection=None, speech=None, seq2seq=None):
  peaks = ', '.join(f'{dtype} {value:.1f} GFLOP/s'
                    for dtype, value in results['gemm_peaks_gflops'].items())
  short_note = ('\n\n**Short mode** (`--short`): tiny sizes that check that everything '
                'runs; these are not measurements.' if results['short'] else '')
  return PAGE.format(
      source=source, command=results['command'], short_note=short_note,
      context=_context(results), peaks=peaks, training=training_table(results),
      ratios=ratio_table(results), large=large_table(results) or 'Not measured in this run.',
      large_note=('\n**These rows come from a short-mode run** (2 steps per epoch, the steady rate '
                  'over 2 steps): indicative, not a measurement at size.'
                  if results.get('added_short') else ''),
      whole=whole_process_table(results) or 'Not measured in this run.',
      phases=phases_table(results) or 'Not measured in this run.',
      targets=targets_table(results), floors=_floors_notes(results) or '-',
      repeats=repeats_table(results), gpu=_gpu_note(results),
      streaming=streaming_table(results) or 'Not measured in this run.',
      host_pipeline=host_pipeline_table(results) or 'Not measured in this run.',
      tfds_start=tfds_start_table(results) or 'Not measured in this run.',
      before_after=before_after_table(results, before) or 'No earlier run given.',
      before_source=before_source or '-', serving=serving_section(serve),
      scaling=scaling_section(scaling),
      checkpoint_storage=checkpoint_storage_section(checkpoint_storage),
      detection=detection_section(detection), speech=speech_section(speech),
      seq2seq=seq2seq_section(seq2seq))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('json', help='The --out file of `python -m benchmarks.run`.')
  parser.add_argument('--before', default='', help='An earlier --out file: jaxlab\'s rows '
                      'then and now, side by side.')
  parser.add_argument('--serve', default=None, help='The JSON of `python -m '
                      'benchmarks.serve_load` for the "Serving" section (default: '
                      f'{SERVE_JSON} beside the first JSON, when it exists).')
  parser.add_argument('--add', action='append', default=[],
                      help='Another --out file whose rows join this one\'s (e.g. '
                      '--only=resnet18_cifar,lm_small measured on its own); repeatable.')
  args = parser.parse_args(argv)
  with open(args.json) as f:
    results = json.load(f)
  before = None
  if args.before:
    with open(args.before) as f:
      before = json.load(f)
  missing = [key for key in ('runs', 'environment', 'floors') if key not in results]
  if missing:
    print(f'benchmarks.report: error: {args.json} has no {", ".join(missing)}: it was written '
          'by an older runner. Measure again with `python -m benchmarks.run '
          f'--out={args.json}`.', file=sys.stderr)
    return 2
  added = []
  for path in args.add:
    with open(path) as f:
      added.append(json.load(f))
  if added:
    results = merge(results, added)
  def beside(name):  # another benchmark's JSON next to the suite's, None if not measured
    path = os.path.join(os.path.dirname(args.json), name)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  serve = beside(SERVE_JSON)
  if args.serve:
    with open(args.serve) as f:
      serve = json.load(f)
  checkpoint_storage, scaling = beside(CHECKPOINT_STORAGE_JSON), beside(SCALING_JSON)
  detection, speech, seq2seq = beside(DETECTION_JSON), beside(SPEECH_JSON), beside(SEQ2SEQ_JSON)
  source = ' '.join([args.json, *(f'--add={path}' for path in args.add),
                     *([f'--before={args.before}'] if args.before else []),
                     *([f'--serve={args.serve}'] if args.serve else [])])
  sys.stdout.write(page(results, source, before, args.before or None, serve, checkpoint_storage,
                        scaling, detection, speech, seq2seq))
  return 0


if __name__ == '__main__':
  sys.exit(main())
