"""One training run per workdir: a second run is refused; a dead holder's lock is not."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from jaxlab.workdir import lock as workdir_lock
from jaxlab.errors import UserError
from tests.conftest import ROOT, run_cli


def _dead_pid():
  process = subprocess.Popen([sys.executable, '-c', 'pass'])
  process.wait()
  return process.pid


def test_a_second_hold_on_a_held_local_workdir_names_the_holder(tmp_path):
  with workdir_lock.hold(str(tmp_path)):
    with pytest.raises(UserError) as raised:
      with workdir_lock.hold(str(tmp_path)):
        pass
    assert f'process {os.getpid()} on host {socket.gethostname()}' in str(raised.value)
  with workdir_lock.hold(str(tmp_path)):  # released at the end of the first block
    pass


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time\n'
       'from jaxlab.workdir import lock as workdir_lock\n'
       f'with workdir_lock.hold({str(tmp_path)!r}):\n'
       '  print("held", flush=True); time.sleep(60)\n'],
      cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(UserError):
      with workdir_lock.hold(str(tmp_path)):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
  finally:
    holder.kill()
  assert json.loads((tmp_path / workdir_lock.LOCK_FILE_NAME).read_text())['pid'] == holder.pid
  with workdir_lock.hold(str(tmp_path)):
    pass


@pytest.mark.slow
def test_two_trains_started_together_one_exits_2(tmp_path):
  args = [sys.executable, '-m', 'jaxlab.main', 'train', '--config=experiments/digits_cnn.py:smoke',
          f'--workdir={tmp_path}']
  first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
  time.sleep(0.5)
  second = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
  outcomes = sorted([(p.wait(timeout=300), p.communicate(), p.pid) for p in (first, second)],
                    key=lambda outcome: outcome[0])
  (ok_code, _, winner), (refused_code, (_, refused_err), _) = outcomes
  assert (ok_code, refused_code) == (0, 2), refused_err
  assert f'in use by another `jaxlab train`: process {winner}' in refused_err
  assert 'Traceback' not in refused_err


def test_a_held_bucket_workdir_is_refused_and_released(gcs_emulator):
  workdir = gcs_emulator.fresh_url('lock')
  name = workdir[len(f'gs://{gcs_emulator.bucket}/'):] + '/' + workdir_lock.LOCK_FILE_NAME
  with workdir_lock.hold(workdir):
    assert json.loads(gcs_emulator.read_object(name))['pid'] == os.getpid()
    with pytest.raises(UserError) as raised:
      with workdir_lock.hold(workdir):
        pass
    assert f'process {os.getpid()}' in str(raised.value)
  assert name not in gcs_emulator.list_objects()


@pytest.mark.parametrize('holder', [
    dict(host=socket.gethostname(), pid=None, heartbeat=None),  # same host, dead pid
    dict(host='another-host', pid=1, heartbeat=-workdir_lock.STALE_AFTER_S - 5),  # silent
])
def test_a_stale_bucket_lock_is_taken_over(gcs_emulator, holder, capsys):
  workdir = gcs_emulator.fresh_url('stale')
  record = dict(holder, pid=holder['pid'] or _dead_pid(), started='earlier',
                heartbeat=time.time() + (holder['heartbeat'] or 0))
  lock = workdir_lock._BucketLock(workdir)  # pylint: disable=protected-access
  lock.fs.pipe_file(f'{lock.bucket}/{lock.key}', json.dumps(record).encode())
  with workdir_lock.hold(workdir):
    taken = json.loads(lock.fs.cat_file(f'{lock.bucket}/{lock.key}'))
    assert taken['pid'] == os.getpid()
  assert 'took over the lock' in capsys.readouterr().out


def test_a_live_bucket_lock_of_another_host_is_respected(gcs_emulator):
  workdir = gcs_emulator.fresh_url('live')
  lock = workdir_lock._BucketLock(workdir)  # pylint: disable=protected-access
  record = dict(host='another-host', pid=4242, started='just now', heartbeat=time.time())
  lock.fs.pipe_file(f'{lock.bucket}/{lock.key}', json.dumps(record).encode())
  with pytest.raises(UserError) as raised:
    with workdir_lock.hold(workdir):
      pass
  assert 'process 4242 on host another-host' in str(raised.value)
  assert json.loads(lock.fs.cat_file(f'{lock.bucket}/{lock.key}'))['pid'] == 4242


def test_train_on_a_held_workdir_exits_2_before_touching_it(tmp_path):
  with workdir_lock.hold(str(tmp_path)):
    result = run_cli('train', '--config=experiments/digits_cnn.py:smoke', f'--workdir={tmp_path}')
  assert result.returncode == 2
  assert f'process {os.getpid()}' in result.stderr and 'Traceback' not in result.stderr
  assert not (tmp_path / 'config.json').exists() and not (tmp_path / 'checkpoints').exists()
