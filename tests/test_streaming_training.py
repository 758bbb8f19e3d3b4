"""Training on the streaming placement: the same run as the device-resident one, exact
resume after kill -9, two processes, and bad records skipped or stopping the run."""

import signal

import jax
import numpy as np
import pytest

from jaxlab import data as data_lib
from jaxlab.data import sources
from jaxlab.errors import UserError
from jaxlab.train import loop
from tests.conftest import load_config, read_metrics, restore_params, run_cli
from tests.test_resume import TRAIN_ARGS, _start_training, _wait_for_checkpoint, assert_same_params


def _losses(workdir):
  return [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]


def test_stream_and_device_give_the_same_loss_curve(tmp_path):
  summaries = {}
  for placement in ('device', 'stream'):
    config = load_config('digits_cnn', data__placement=placement, num_steps=44,
                         log_every_steps=4)
    summaries[placement] = loop.run(config, str(tmp_path / placement))
  assert summaries['device']['placement'] == 'device'
  assert summaries['stream']['placement'] == 'stream'
  np.testing.assert_allclose(_losses(tmp_path / 'stream'), _losses(tmp_path / 'device'),
                             rtol=1e-6)
  for a, b in zip(jax.tree.leaves(summaries['stream']['state'].params),
                  jax.tree.leaves(summaries['device']['state'].params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  assert summaries['stream']['eval']['accuracy'] == summaries['device']['eval']['accuracy']


@pytest.mark.slow  # three training runs through the CLI (20 s)
def test_kill_9_then_rerun_equals_straight_run_when_streaming(tmp_path):
  stream = ['--config.data.placement=stream']
  run_cli('train', *TRAIN_ARGS, *stream, f'--workdir={tmp_path / "straight"}', check=True)
  killed = tmp_path / 'killed'
  process = _start_training(killed, extra=stream)
  _wait_for_checkpoint(killed, process)
  process.kill()
  process.wait()
  assert process.returncode == -signal.SIGKILL
  rerun = run_cli('train', *TRAIN_ARGS, *stream, f'--workdir={killed}', check=True)
  assert 'Resuming from the checkpoint at step' in rerun.stdout
  assert_same_params(tmp_path / 'straight', killed)
  # The stream's position was saved beside the state, at the checkpoint's step.
  import orbax.checkpoint as ocp
  step = max(int(p.name) for p in (killed / 'checkpoints').iterdir() if p.name.isdigit())
  position = ocp.JsonCheckpointHandler().restore(killed / 'checkpoints' / str(step) / 'data')
  assert position['placement'] == 'stream' and position['stream']['step'] == step == \
      position['step']


class _BrokenDigits:
  """The digits training set, with records whose index is in `broken` undecodable."""

  def __init__(self, source, broken):
    self.source, self.broken = source, set(broken)

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    if index in self.broken:
      raise sources.BadRecord('digits train (broken on purpose)', index, 'cannot decode')
    return self.source[index]

  def __repr__(self):
    return 'digits train (broken on purpose)'


def _with_broken_records(monkeypatch, broken):
  load = data_lib.load

  def broken_load(data_config, workdir=None):
    splits = load(data_config, workdir)
    return data_lib.Splits(splits.info, _BrokenDigits(splits.train, broken), splits.test)

  monkeypatch.setattr(data_lib, 'load', broken_load)


def test_bad_records_are_skipped_counted_and_warned_once_each(tmp_path, monkeypatch, capfd):
  _with_broken_records(monkeypatch, broken={3, 500})
  config = load_config('digits_cnn', data__placement='stream', num_steps=88)
  summary = loop.run(config, str(tmp_path))
  assert summary['status'] == 'finished' and summary['step'] == 88
  warnings = [line for line in capfd.readouterr().err.splitlines() if 'skipped bad record' in line]
  # Each of the 2 records is met once per epoch (88 steps of 32 = 2 epochs of 1437).
  assert len(warnings) == 4
  assert all('digits train (broken on purpose)' in line for line in warnings)
  counted = [r['train/bad_records'] for r in read_metrics(tmp_path) if 'train/bad_records' in r]
  assert counted[-1] == 4
  assert np.isfinite(_losses(tmp_path)).all()


def test_bad_record_stops_the_run_keeping_the_work_done(tmp_path, monkeypatch):
  from jaxlab.data import order
  config = load_config('digits_cnn', data__placement='stream', data__skip_bad_records=False,
                       num_steps=44, steps_per_loop=11, checkpoint_every_steps=0)
  # A record first drawn in step 30 (block 22..33): blocks up to step 22 train.
  record = int(order.batch_rows(config.seed, 30, 1437 // 32, 32, 1437)[5])
  _with_broken_records(monkeypatch, broken={record})
  with pytest.raises(UserError, match=f'bad record {record} of digits train') as raised:
    loop.run(config, str(tmp_path))
  assert 'skip_bad_records=True' in str(raised.value)
  _, step = restore_params(tmp_path)
  assert step == 22  # the work before the bad block was saved


def test_many_bad_records_are_skipped_with_a_bounded_number_of_warning_lines(tmp_path,
                                                                            monkeypatch, capfd):
  _with_broken_records(monkeypatch, broken=range(100, 110))  # 0.7% of 1437: under the budget
  config = load_config('digits_cnn', data__placement='stream', num_steps=88)
  summary = loop.run(config, str(tmp_path))
  assert summary['status'] == 'finished' and summary['step'] == 88
  lines = [line for line in capfd.readouterr().err.splitlines() if 'jaxlab: warning: skipped' in line]
  named = [line for line in lines if 'skipped bad record' in line]
  counted = [line for line in lines if 'more bad records' in line]
  # Each of the 10 records is met once per epoch (2 epochs): 20 skipped, 5 named, the rest
  # counted in at most one line per block of steps (8 blocks) plus one at the end.
  assert len(named) == 5 and len(lines) == len(named) + len(counted) <= 5 + 8 + 1
  assert counted and counted[-1].endswith('(total 20)')
  counts = [r['train/bad_records'] for r in read_metrics(tmp_path) if 'train/bad_records' in r]
  assert counts[-1] == 20


def test_too_many_bad_records_stop_the_run_keeping_the_work_done(tmp_path, monkeypatch):
  _with_broken_records(monkeypatch, broken=range(1437))  # every record
  config = load_config('digits_cnn', data__placement='stream', num_steps=88, steps_per_loop=11,
                       checkpoint_every_steps=0)
  with pytest.raises(UserError) as raised:
    loop.run(config, str(tmp_path))
  # Blocks of 11 steps x 32: the budget is first judged at 1056 >= 1000 records read, before
  # steps 22-32 train; steps 0-21 (all masked) are saved.
  message = str(raised.value)
  assert message.startswith('Stopped at step 22: 1056 of the 1056 records read since the run '
                            'started were bad (100.0%), more than '
                            '--config.data.max_bad_records_fraction=0.01 allows.')
  assert message.count('of digits train (broken on purpose): cannot decode') == 3
  assert 'raise --config.data.max_bad_records_fraction' in message
  _, step = restore_params(tmp_path)
  assert step == 22


def test_a_bad_record_on_the_device_path_says_to_stream(tmp_path, monkeypatch):
  _with_broken_records(monkeypatch, broken={7})
  config = load_config('digits_cnn', data__placement='device', num_steps=11)
  with pytest.raises(UserError, match='placement=stream'):
    loop.run(config, str(tmp_path))
