"""Performance options stay correct: mixed precision, gradient accumulation,
rematerialisation, the compilation cache; and the benchmark suite's short mode."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import run as bench_run
from jaxlab.train import loop
from tests.conftest import ROOT, load_config, read_metrics


def _losses(workdir):
  return [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]


def _mlp(**overrides):
  return load_config('mnist_mlp', data__name='synthetic', num_steps=32, log_every_steps=8,
                     eval_every_steps=0, checkpoint_every_steps=0, **overrides)


def test_gradient_accumulation_equals_the_full_batch(tmp_path):
  loop.run(_mlp(), str(tmp_path / 'full'))
  loop.run(_mlp(grad_accum_steps=4), str(tmp_path / 'accumulated'))
  np.testing.assert_allclose(_losses(tmp_path / 'accumulated'), _losses(tmp_path / 'full'),
                             rtol=1e-5)


@pytest.mark.slow  # two CNN trainings (about 10 s)
@pytest.mark.parametrize('policy', ['full', 'dots'])
def test_rematerialisation_gives_the_same_training(tmp_path, policy):
  config = load_config('mnist_cnn', data__name='synthetic', num_steps=16, log_every_steps=8,
                       eval_every_steps=0, checkpoint_every_steps=0)
  loop.run(config, str(tmp_path / 'none'))
  config.remat = policy
  loop.run(config, str(tmp_path / policy))
  np.testing.assert_allclose(_losses(tmp_path / policy), _losses(tmp_path / 'none'), rtol=1e-5)


def test_bfloat16_compute_keeps_float32_weights_and_learns(tmp_path):
  summary = loop.run(_mlp(compute_dtype='bfloat16'), str(tmp_path / 'bf16'))
  dtypes = {leaf.dtype for leaf in jax.tree.leaves(summary['state'].params)}
  assert dtypes == {np.dtype('float32')}
  loop.run(_mlp(), str(tmp_path / 'f32'))
  bf16, f32 = _losses(tmp_path / 'bf16'), _losses(tmp_path / 'f32')
  assert bf16[-1] < 0.5 * bf16[0]
  np.testing.assert_allclose(bf16, f32, rtol=0.05)  # close, not equal: bf16 rounds


# Runs the CLI, counting JAX's compilation-cache events (jax.monitoring) into a JSON file.
COUNT_CACHE_EVENTS = """
import atexit, collections, json, os, sys
import jax.monitoring
events = collections.Counter()
jax.monitoring.register_event_listener(lambda event, **_: events.update([event]))
atexit.register(lambda: open(os.environ['EVENTS_OUT'], 'w').write(json.dumps(events)))
sys.argv = ['jaxlab', *sys.argv[1:]]
from jaxlab import main
main.run()
"""
HITS, MISSES = '/jax/compilation_cache/cache_hits', '/jax/compilation_cache/cache_misses'


def _train_counting_cache_events(tmp_path, name, cache):
  events = tmp_path / f'{name}.json'
  env = dict(os.environ, JAXLAB_COMPILATION_CACHE=str(cache), EVENTS_OUT=str(events))
  result = subprocess.run([sys.executable, '-c', COUNT_CACHE_EVENTS, 'train',
                           '--config=experiments/digits_cnn.py:smoke', '--config.num_steps=22',
                           f'--workdir={tmp_path / name}'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  return json.loads(events.read_text())


@pytest.mark.slow  # two CLI runs (about 18 s)
def test_compilation_cache_is_written_then_read_by_the_next_run(tmp_path):
  cache = tmp_path / 'cache'
  first = _train_counting_cache_events(tmp_path, 'first', cache)
  entries = set(os.listdir(cache))
  assert first.get(HITS, 0) == 0 and first[MISSES] >= len(entries) > 0
  second = _train_counting_cache_events(tmp_path, 'second', cache)
  # Every program the first run stored is loaded from the cache, not compiled again.
  # (Programs that compiled faster than the cache's threshold are not stored, and may
  # or may not be on a second run, so misses are not counted here.)
  assert second.get(HITS, 0) == len(entries)
  assert entries <= set(os.listdir(cache))


@pytest.mark.slow  # seed_mlp's JAX peers and the whole-process rows, short (~35 s)
def test_benchmark_suite_short_mode(tmp_path):
  # Each peer (PyTorch and Keras too) is checked alone in tests/test_bench_peers.py; here
  # the suite's wiring: rows, same steps, ratios, the raw repeats and the report.
  out = tmp_path / 'bench.json'
  result = subprocess.run([sys.executable, '-m', 'jaxlab.main', 'bench', '--short',
                           '--only=seed_mlp,whole_process', '--peers=jaxlab,flax_loop',
                           f'--out={out}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  rows = {(row['workload'], row['peer']): row for row in report['rows']}
  assert {('seed_mlp', 'jaxlab'), ('seed_mlp', 'flax_loop'),
          ('whole_process', 'jaxlab_cli'), ('whole_process', 'jaxlab_cli_warm_cache')} <= set(rows)
  assert report['gemm_peak_gflops'] > 0
  for row in report['rows']:
    assert row['flops_per_step'] > 0 and row['test_accuracy'] > 0.3
  # The same steps for every peer of a workload.
  assert len({row['steps'] for row in report['rows'] if row['workload'] == 'seed_mlp'}) == 1
  assert rows[('seed_mlp', 'jaxlab')]['fit_seconds'] > 0
  assert rows[('seed_mlp', 'jaxlab')]['steady_us_per_step'] > 0
  for ratio in report['ratios']:
    assert ratio['accuracy_agrees'], ratio
    assert ratio['same_start'] in (True, None), ratio
  # Every repeat's raw result, and where and with what it ran.
  run = next(r for r in report['runs'] if (r['workload'], r['peer']) == ('seed_mlp', 'jaxlab'))
  assert run['repeats'][0]['result']['epoch_seconds']
  assert report['environment']['versions']['jax'] and report['environment']['machine']['logical_cpus']
  assert report['floors']['seed_mlp_bare_step_us']['adam'] > 0
  assert '| workload | peer |' in result.stdout
  page = subprocess.run([sys.executable, '-m', 'benchmarks.report', str(out)], cwd=ROOT,
                        capture_output=True, text=True, timeout=60, check=True).stdout
  for heading in ('## Training', '## Whole process', '## Input pipelines', '## Targets on this basis',
                  '## Every repeat', 'Short mode', '### Where a process spends its time'):
    assert heading in page
  # Each seed_mlp process in phases, which add up to it (medians, so roughly).
  for peer in ('jaxlab', 'flax_loop'):
    row = rows[('seed_mlp', peer)]
    phases = [row[f'phase_{name}_seconds'] for name in bench_run.PHASES]
    assert all(seconds > 0 for seconds in phases), (peer, phases)
    assert sum(phases) == pytest.approx(row['process_seconds'], rel=0.05, abs=0.2)
    assert f'| {peer} | ' + ' | '.join(f'{s:.2f}' for s in phases) in page
  assert rows[('seed_mlp', 'jaxlab')]['jaxlab_compile_seconds'] > 0
