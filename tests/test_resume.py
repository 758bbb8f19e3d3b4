"""Exact resume: interrupted runs end bitwise equal to uninterrupted ones on CPU."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxlab.train import loop
from tests.conftest import ROOT, load_config, read_metrics, restore_params, run_cli

pytestmark = pytest.mark.slow  # each test trains two or three runs (15-20 s)

TRAIN_ARGS = ['--config=experiments/digits_cnn.py:smoke', '--config.num_epochs=8',
              '--config.checkpoint_every_steps=11', '--config.eval_every_steps=88',
              '--config.progress=False']


def assert_same_params(workdir_a, workdir_b):
  params_a, step_a = restore_params(workdir_a)
  params_b, step_b = restore_params(workdir_b)
  assert step_a == step_b
  leaves_a, leaves_b = jax.tree.leaves(params_a), jax.tree.leaves(params_b)
  assert len(leaves_a) == len(leaves_b) > 0
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(a, b)  # bitwise


def test_half_then_restart_equals_straight(tmp_path):
  # A constant schedule, so that stopping at num_steps=22 is the same as being interrupted.
  straight = load_config('digits_cnn', num_steps=44, optimizer__schedule='constant')
  loop.run(straight, str(tmp_path / 'straight'))
  first_half = load_config('digits_cnn', num_steps=22, optimizer__schedule='constant')
  loop.run(first_half, str(tmp_path / 'resumed'))
  second_half = load_config('digits_cnn', num_steps=44, optimizer__schedule='constant')
  summary = loop.run(second_half, str(tmp_path / 'resumed'))
  assert summary['step'] == 44
  assert_same_params(tmp_path / 'straight', tmp_path / 'resumed')
  straight_losses = [r['train/loss'] for r in read_metrics(tmp_path / 'straight')
                     if 'train/loss' in r]
  resumed_losses = [r['train/loss'] for r in read_metrics(tmp_path / 'resumed')
                    if 'train/loss' in r]
  assert straight_losses == resumed_losses


def _start_training(workdir, extra=()):
  return subprocess.Popen([sys.executable, '-m', 'jaxlab.main', 'train', *TRAIN_ARGS, *extra,
                           f'--workdir={workdir}'], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(workdir, process, timeout=300):
  """Waits until at least one finished checkpoint exists."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    directory = workdir / 'checkpoints'
    if directory.exists() and any(p.name.isdigit() for p in directory.iterdir()):
      return
    assert process.poll() is None, process.communicate()
    time.sleep(0.05)
  raise AssertionError('no checkpoint appeared')


def test_kill_9_then_rerun_equals_straight_run(tmp_path):
  run_cli('train', *TRAIN_ARGS, f'--workdir={tmp_path / "straight"}', check=True)
  killed = tmp_path / 'killed'
  process = _start_training(killed)
  _wait_for_checkpoint(killed, process)
  time.sleep(0.3)  # somewhere between checkpoints, possibly in the middle of a save
  process.kill()  # SIGKILL: no handler runs
  process.wait()
  assert process.returncode == -signal.SIGKILL
  rerun = run_cli('train', *TRAIN_ARGS, f'--workdir={killed}', check=True)
  assert 'Resuming from the checkpoint at step' in rerun.stdout
  assert_same_params(tmp_path / 'straight', killed)


def test_sigterm_saves_then_exits_0_and_rerun_completes(tmp_path):
  workdir = tmp_path / 'preempted'
  args = [a for a in TRAIN_ARGS if 'checkpoint_every' not in a] + \
      ['--config.checkpoint_every_steps=0', '--config.num_epochs=40']
  process = subprocess.Popen([sys.executable, '-m', 'jaxlab.main', 'train', *args,
                              f'--workdir={workdir}'], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not (workdir / 'metrics.jsonl').exists() or not (workdir / 'metrics.jsonl').read_text():
    assert time.time() < deadline and process.poll() is None, process.communicate()
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  stdout, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr
  stopped = [line for line in stdout.splitlines() if line.startswith('Stopped by SIGTERM')]
  assert len(stopped) == 1 and 'rerun the same command' in stopped[0]
  step = int(stopped[0].split('at step ')[1].split(':')[0])
  steps = [int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()]
  assert steps == [step] and 0 < step < 40 * 44
  _assert_run_outputs(workdir, step)
  os.environ.pop('JAXLAB_UNUSED', None)
  rerun = run_cli('train', *args, f'--workdir={workdir}', check=True)
  assert f'Resuming from the checkpoint at step {step}' in rerun.stdout
  assert restore_params(workdir)[1] == 40 * 44


def _assert_run_outputs(workdir, step):
  """What a run leaves once its process has exited: everything written, nothing still
  pending in a background thread (the checkpoint whole, the last record in metrics.jsonl
  and the TensorBoard events, the plots drawn)."""
  restored, restored_step = restore_params(workdir)
  assert restored_step == step and restored
  records = read_metrics(workdir)
  assert max(r['step'] for r in records) == step
  events = list((workdir / 'tensorboard').rglob('events.out.tfevents.*'))
  assert events and all(path.stat().st_size > 0 for path in events)
  for name in ('config.json', 'dataset_info.json', 'training_curves.png'):
    assert (workdir / name).stat().st_size > 0, name

