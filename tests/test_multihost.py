"""Two processes on 127.0.0.1 joined by jax.distributed, with CPU collectives."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import portpicker
import pytest

from tests.conftest import ROOT, read_metrics

pytestmark = pytest.mark.slow  # each test starts two JAX processes (5-30 s)

SMOKE = ['checkpoint_every_steps=44']


def _env(devices_per_process=1):
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                      f' --xla_force_host_platform_device_count={devices_per_process}').strip()
  return env


def _start(args, env):
  return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _finish(processes, timeout=600):
  outputs = [p.communicate(timeout=timeout) for p in processes]
  for process, (stdout, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]
  return [stdout for stdout, _ in outputs]


def _workers(workdir, tmp_path, overrides, count=2, devices=1, tag='run'):
  port = portpicker.pick_unused_port()
  processes = [_start(['-m', 'tests.multihost_worker', str(i), str(count), str(port),
                       str(workdir), str(tmp_path / f'{tag}_{i}.npz'), *overrides],
                      _env(devices)) for i in range(count)]
  return _finish(processes)


def _cli(workdir, port, process_id, *extra):
  return ['-m', 'jaxlab.main', 'train', '--config=experiments/digits_cnn.py:smoke',
          f'--workdir={workdir}', '--config.progress=False', f'--coordinator_address=127.0.0.1:{port}',
          '--num_processes=2', f'--process_id={process_id}', *extra]


@pytest.fixture(scope='module')
def together(tmp_path_factory):
  """The smoke run trained by two processes of one device each ('multi', with their
  outputs), and by one process of two devices ('single_0.npz'): shared by the tests that
  compare with it or resume it."""
  folder = tmp_path_factory.mktemp('together')
  outputs = _workers(folder / 'multi', folder, SMOKE)
  _workers(folder / 'single', folder, SMOKE, count=1, devices=2, tag='single')
  return folder, outputs


def test_two_processes_train_together_like_one(together):
  folder, outputs = together
  assert 'process 0 of 2 on 2 devices: step 88' in outputs[0]
  assert 'process 1 of 2 on 2 devices: step 88' in outputs[1]
  # Each process read only its own half of the 1437 training digits.
  assert 'process 0: training rows 0 to 719 of 1437' in outputs[0]
  assert 'process 1: training rows 719 to 1437 of 1437' in outputs[1]
  first, second = (np.load(folder / f'run_{i}.npz') for i in range(2))
  for name in first.files:
    np.testing.assert_array_equal(first[name], second[name])  # identical on both processes
  # One process with two devices: the same global batch, split the same way.
  single = np.load(folder / 'single_0.npz')
  for name in first.files:
    np.testing.assert_allclose(first[name], single[name], rtol=1e-5, atol=1e-6)
  # Only process 0 wrote the logs; both took part in the checkpoint.
  records = read_metrics(folder / 'multi')
  assert [r['step'] for r in records if 'train/loss' in r] == list(range(11, 89, 11))
  assert sorted(p.name for p in (folder / 'multi' / 'checkpoints').iterdir()) == ['44', '88']
  # The two-process checkpoint restores in one process (eval), with the same results.
  from tests.conftest import run_cli
  result = run_cli('eval', f'--workdir={folder / "multi"}', '--checkpoint=latest', check=True)
  saved = json.loads((folder / 'multi' / 'eval_88.json').read_text())
  logged = [r for r in records if 'eval/accuracy' in r][-1]
  assert saved['accuracy'] == logged['eval/accuracy'] and 'accuracy' in result.stdout


def test_two_processes_stream_disjoint_rows_and_train_like_one(tmp_path, together):
  stream = [*SMOKE, "data__placement='stream'"]
  outputs = _workers(tmp_path / 'multi', tmp_path, stream)
  assert 'process 0 of 2 on 2 devices: step 88' in outputs[0]
  # Each process read only its half of every batch of 32 from the source.
  assert 'process 0: streaming positions 0 to 16 of each batch of 32' in outputs[0]
  assert 'process 1: streaming positions 16 to 32 of each batch of 32' in outputs[1]
  first, second = (np.load(tmp_path / f'run_{i}.npz') for i in range(2))
  for name in first.files:
    np.testing.assert_array_equal(first[name], second[name])
  _workers(tmp_path / 'single', tmp_path, stream, count=1, devices=2, tag='single')
  # The same run with the data on the devices, not streamed.
  single, device = np.load(tmp_path / 'single_0.npz'), np.load(together[0] / 'single_0.npz')
  for name in first.files:
    np.testing.assert_allclose(first[name], single[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single[name], device[name], rtol=1e-5, atol=1e-6)


def test_two_processes_resume_from_their_checkpoint(tmp_path, together):
  workdir = tmp_path / 'w'
  shutil.copytree(together[0] / 'multi', workdir)  # the two processes' run, ended at step 88
  port = portpicker.pick_unused_port()
  outputs = _finish([_start(_cli(workdir, port, i, '--config.num_epochs=3'), _env())
                     for i in range(2)])
  assert all('Resuming from the checkpoint at step 88' in out for out in outputs[:1])
  assert 'Done: step 132' in outputs[0]
  assert '132' in {p.name for p in (workdir / 'checkpoints').iterdir()}


def test_sigterm_on_one_host_stops_both_at_the_same_step(tmp_path):
  workdir = tmp_path / 'w'
  port = portpicker.pick_unused_port()
  args = ['--config.num_epochs=200', '--config.checkpoint_every_steps=0',
          '--config.eval_every_steps=0']
  processes = [_start(_cli(workdir, port, i, *args), _env()) for i in range(2)]
  deadline = time.time() + 300
  while not (workdir / 'metrics.jsonl').exists() or len(read_metrics(workdir)) < 2:
    assert time.time() < deadline and all(p.poll() is None for p in processes)
    time.sleep(0.05)
  processes[1].send_signal(signal.SIGTERM)  # only the second host is preempted
  outputs = _finish(processes)
  steps = []
  for out in outputs:
    line = [l for l in out.splitlines() if l.startswith('Stopped by')]
    assert len(line) == 1, out
    steps.append(int(line[0].split('at step ')[1].split(':')[0]))
  assert steps[0] == steps[1] < 200 * 44
  saved = [p.name for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()]
  assert saved == [str(steps[0])]
  # Rerunning both processes resumes from that step.
  port = portpicker.pick_unused_port()
  finish = [f'--config.num_steps={steps[0] + 11}', '--config.checkpoint_every_steps=0',
            '--config.eval_every_steps=0']
  outputs = _finish([_start(_cli(workdir, port, i, *finish), _env()) for i in range(2)])
  assert f'Resuming from the checkpoint at step {steps[0]}' in outputs[0]
  assert str(steps[0] + 11) in {p.name for p in (workdir / 'checkpoints').iterdir()}


def test_missing_peer_is_a_clear_error_not_a_hang(tmp_path):
  port = portpicker.pick_unused_port()
  started = time.time()
  process = _start(_cli(tmp_path / 'w', port, 0, '--distributed_timeout=5'), _env())
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 2
  assert 'Could not join the multi-process run' in stderr and '--coordinator_address' in stderr
  assert time.time() - started < 60
