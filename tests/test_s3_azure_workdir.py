"""s3:// and az:// workdirs against moto (S3) and Azurite (Azure Blob) on 127.0.0.1:
train, kill -9 during a checkpoint upload, resume, evaluate; the up-front check's
three failures. Each emulator starts once for the module."""

import json
import os
import posixpath
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxlab import storage
from jaxlab.checkpoint import staging as checkpoint_staging
from jaxlab.workdir import lock as workdir_lock
from jaxlab.errors import UserError
from tests import cloud_emulators
from tests.conftest import ROOT, run_cli

SCHEMES = ('s3', 'az')
_START = dict(s3=cloud_emulators.s3_emulator, az=cloud_emulators.azure_emulator)


@pytest.fixture(scope='module', params=SCHEMES)
def emulator(request):
  try:
    with _START[request.param]() as running:
      yield running
  except cloud_emulators.EmulatorUnavailable as reason:
    pytest.skip(f'{request.param} emulator unavailable: {reason}')


def _names(workdir, folder):
  fs = storage.filesystem(workdir)
  fs.invalidate_cache()
  root = f'{storage.bucket_path(workdir)}/{folder}'
  return sorted(path[len(root) + 1:] for path in fs.find(root))


def _committed_steps(workdir):
  return sorted(int(name.split('/')[0]) for name in _names(workdir, 'checkpoints')
                if name.endswith('/' + checkpoint_staging.COMMIT_MARKER))


@pytest.mark.slow  # three CLI runs per scheme (about 15 s each scheme)
def test_train_killed_during_upload_resumes_and_evaluates(emulator, tmp_path):
  workdir = emulator.fresh_url()
  args = ['--config=experiments/digits_cnn.py:smoke', f'--workdir={workdir}',
          '--config.num_steps=22', '--config.checkpoint_every_steps=11']
  killed = subprocess.run([sys.executable, 'tests/kill_during_upload.py', '22', 'train', *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TMPDIR=str(tmp_path)))  # its staging folder
  assert killed.returncode == -9, killed.stderr
  # Step 22's files are in the bucket, its marker is not: only step 11 counts.
  assert _committed_steps(workdir) == [11]
  assert any(name.startswith('22/') for name in _names(workdir, 'checkpoints'))

  resumed = run_cli('train', *args, check=True)
  assert 'Resuming from the checkpoint at step 11' in resumed.stdout
  assert 'took over the lock' in resumed.stdout  # the killed run's, same host, dead pid
  assert 'Done: step 22' in resumed.stdout
  assert _committed_steps(workdir) == [11, 22]
  listed = dict(json.loads(storage.read_text(posixpath.join(
      workdir, 'checkpoints', '22', checkpoint_staging.COMMIT_MARKER))))['files']
  assert sorted(name for name in _names(workdir, 'checkpoints') if name.startswith('22/')) == \
      sorted(['22/' + name for name in listed] + ['22/' + checkpoint_staging.COMMIT_MARKER])
  records = [json.loads(line) for line in storage.read_lines(posixpath.join(workdir,
                                                                           'metrics.jsonl'))]
  assert [r['step'] for r in records if 'train/loss' in r][-1] == 22
  assert json.loads(storage.read_text(posixpath.join(workdir, 'config.json')))['num_steps'] == 22
  assert any(name.startswith('events.out.tfevents') for name in _names(workdir, 'tensorboard'))
  assert storage.exists(posixpath.join(workdir, 'training_curves.png'))
  assert not storage.exists(posixpath.join(workdir, 'jaxlab.lock'))  # released at the end

  evaluation = run_cli('eval', f'--workdir={workdir}', '--checkpoint=latest', check=True)
  assert 'accuracy' in evaluation.stdout
  assert json.loads(storage.read_text(posixpath.join(workdir, 'eval_22.json')))['step'] == 22


def _failure_env(emulator, case, dead):
  if case == 'missing bucket':
    return {}, emulator.url('run').replace(emulator.bucket, 'no-such-bucket-jaxlab')
  env = dict(emulator.env)
  if case == 'unreachable endpoint':
    env.update(cloud_emulators.s3_env(dead) if emulator.scheme == 's3'
               else cloud_emulators.azure_env(dead))
  elif emulator.scheme == 's3':  # missing credentials
    env.update(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
  else:
    env.update(AZURE_STORAGE_CONNECTION_STRING=None)
  return env, emulator.url('run')


@pytest.mark.parametrize('case, words', [
    ('missing bucket', dict(s3='aws s3 mb', az='az storage container create')),
    ('missing credentials', dict(s3='aws configure', az='AZURE_STORAGE_ACCOUNT_NAME')),
    ('unreachable endpoint', dict(s3='could not connect', az='could not connect')),
])
def test_unusable_workdir_exits_2_with_the_fix(emulator, case, words):
  account = '/' + cloud_emulators.AZURITE_ACCOUNT if emulator.scheme == 'az' else ''
  with cloud_emulators.refused_endpoint(account) as dead:
    env, workdir = _failure_env(emulator, case, dead)
    with cloud_emulators.patched_env(env):
      result = run_cli('train', '--config=experiments/digits_cnn.py:smoke',
                       f'--workdir={workdir}')
  assert result.returncode == 2, result.stderr
  assert words[emulator.scheme] in result.stderr and 'Traceback' not in result.stderr


def test_a_live_lock_of_another_host_is_respected_and_ours_is_released(emulator):
  workdir = emulator.fresh_url('lock')
  lock_path = posixpath.join(workdir, workdir_lock.LOCK_FILE_NAME)
  with workdir_lock.hold(workdir):
    assert json.loads(storage.read_text(lock_path))['pid'] == os.getpid()
    with pytest.raises(UserError, match=f'process {os.getpid()}'):
      workdir_lock._BucketLock(workdir).acquire()  # pylint: disable=protected-access
  assert not storage.exists(lock_path)
  record = dict(host='another-host', pid=4242, started='just now', heartbeat=time.time())
  storage.write_text(lock_path, json.dumps(record))
  with pytest.raises(UserError, match='process 4242 on host another-host'):
    with workdir_lock.hold(workdir):
      pass
  assert json.loads(storage.read_text(lock_path))['pid'] == 4242


def test_dropped_steps_leave_the_bucket_and_a_reader_downloads_one_step(emulator):
  directory = posixpath.join(emulator.fresh_url('orbax'), 'checkpoints')
  staged = checkpoint_staging.StagedCheckpoints(directory)
  options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=True)
  with ocp.CheckpointManager(staged.directory, options=options) as manager:
    for step in (1, 2, 3):
      staged.wait()
      manager.save(step, args=ocp.args.StandardSave({'w': np.full(4, step, np.float32)}))
      staged.upload(step)
    manager.wait_until_finished()
  staged.wait()  # uploads done, then the bucket loses what Orbax dropped
  staged.close()
  assert not os.path.exists(staged.directory)  # the staging folder is removed
  root = storage.bucket_path(directory)
  fs = storage.filesystem(directory)
  assert _committed_steps(directory.rsplit('/', 1)[0]) == [2, 3]  # step 1 pruned
  assert not fs.exists(f'{root}/1')

  reader = checkpoint_staging.StagedCheckpoints(directory, read_only=True)
  # Only the step metadata is local until a step is fetched.
  assert os.listdir(os.path.join(reader.directory, '2')) == ['_CHECKPOINT_METADATA']
  reader.fetch(3)
  with ocp.CheckpointManager(reader.directory, options=ocp.CheckpointManagerOptions(
      read_only=True)) as manager:
    assert manager.all_steps() == [2, 3]
    restored = manager.restore(3, args=ocp.args.StandardRestore(
        {'w': np.zeros(4, np.float32)}))
  np.testing.assert_array_equal(restored['w'], np.full(4, 3, np.float32))
  assert os.listdir(os.path.join(reader.directory, '2')) == ['_CHECKPOINT_METADATA']
  reader.close()
