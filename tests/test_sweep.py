"""`jaxlab sweep` (Optuna over config fields) and the compute cost of runs and dry runs."""

import contextlib
import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from jaxlab.perf import device_prices
from jaxlab.commands import train as train_command
from jaxlab.sweep import report, runner, space
from jaxlab.perf import mfu
from tests.conftest import ROOT, load_config, read_metrics, run_cli

optuna = pytest.importorskip('optuna')
from optuna.trial import TrialState  # pylint: disable=g-import-not-at-top

# Few steps: what is tested is the study around the runs, not their accuracy.
SHORT = ('--config.num_steps=22', '--config.steps_per_loop=11', '--config.eval_every_steps=11',
         '--config.checkpoint_every_steps=11', '--config.log_every_steps=11',
         '--config.plots=False')


def _storage(workdir):
  """The study's --storage URL: a database outside the sweep's workdir, as one that
  workers on several machines share would be."""
  return f'sqlite:///{workdir.parent}/{workdir.name}_shared_study.db'


def _sweep_args(workdir):
  return ('sweep', '--config=experiments/digits_cnn.py:smoke',
          '--sweep=experiments/sweeps/digits_cnn.py:smoke', '--trials=2', '--workers=2',
          f'--workdir={workdir}', f'--storage={_storage(workdir)}',
          '--config.cost.price_per_device_hour=2.0', *SHORT)


def _study(workdir):
  runner.quiet()
  summaries = optuna.get_all_study_summaries(_storage(workdir))
  assert len(summaries) == 1  # the rerun continued the study, not a second one
  return optuna.load_study(study_name=summaries[0].study_name, storage=_storage(workdir))


def _wait_until_gone(group, timeout=60):
  """Until every process of the killed group has exited and been reaped: a killed trial
  still holds its workdir's lock until then, and the rerun would find it in use."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      os.killpg(group, 0)
    except ProcessLookupError:
      return
    time.sleep(0.1)


@pytest.fixture(scope='module')
def killed_then_rerun(tmp_path_factory):
  """A 2-trial, 2-worker digits sweep killed (kill -9, every process) once a trial has
  saved a checkpoint, then rerun with the same command to the end."""
  workdir = tmp_path_factory.mktemp('sweep')
  log = workdir.parent / f'{workdir.name}_first_sweep.log'
  with open(log, 'w') as output:
    process = subprocess.Popen([sys.executable, '-m', 'jaxlab.main', *_sweep_args(workdir)],
                               cwd=ROOT, start_new_session=True, stdout=output,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while (not list(workdir.glob('trials/*/checkpoints/11')) and process.poll() is None
           and time.monotonic() < deadline):
      time.sleep(0.2)
    ended = process.poll()
    with contextlib.suppress(ProcessLookupError):  # none left if the sweep ended
      os.killpg(process.pid, signal.SIGKILL)  # the sweep and its workers: the group it leads
    process.wait()
    _wait_until_gone(process.pid)
  assert ended is None, f'the sweep ended (exit {ended}) before a trial saved a checkpoint:\n' + \
      log.read_text()[-3000:]
  rerun = run_cli(*_sweep_args(workdir), check=True)
  return workdir, rerun.stdout


@pytest.mark.slow  # shares a sweep of two trials, in subprocesses
def test_rerun_after_a_kill_retries_the_killed_trials_and_finishes_the_study(killed_then_rerun):
  workdir, output = killed_then_rerun
  study = _study(workdir)
  assert not (workdir / 'study.db').exists()  # the study went to --storage
  finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
  killed = [t for t in study.trials if t.state == TrialState.FAIL]
  assert len(finished) == 2 and killed and 'Queued again' in output
  retried = {t.system_attrs.get('failed_trial') for t in study.trials} - {None}
  assert {t.number for t in killed} <= retried
  # The first trial is the experiment's own settings (the sweep file's first_trials).
  assert study.trials[0].params['optimizer.learning_rate'] == 2e-3
  # A retried trial trains in the killed one's workdir, resuming its checkpoint.
  retry = next(t for t in study.trials if t.system_attrs.get('failed_trial') is not None)
  assert retry.user_attrs['workdir'].endswith(f'trials/{retry.system_attrs["failed_trial"]:04d}')


@pytest.mark.slow  # shares a sweep of two trials, in subprocesses
def test_sweep_writes_the_table_plots_and_best_config(killed_then_rerun):
  workdir, output = killed_then_rerun
  study = _study(workdir)
  rows = json.loads((workdir / report.RESULTS_JSON).read_text())['trials']
  assert [r['trial'] for r in rows] == [t.number for t in study.trials]
  assert (workdir / report.RESULTS_CSV).read_text().count('\n') == len(rows) + 1
  assert (workdir / report.HISTORY_PNG).stat().st_size > 0
  complete = [r for r in rows if r['state'] == 'complete']
  best = max(complete, key=lambda r: r['value'])
  assert study.best_trial.number == best['trial'] and f'Best: trial {best["trial"]}' in output
  # Each trial's cost at the overridden price: device-hours x $2.
  assert best['cost_usd'] == pytest.approx(2.0 * best['device_hours'])


def _best_config(workdir):
  from ml_collections import config_flags
  path = workdir / report.BEST_CONFIG
  return config_flags.config_flags._LoadConfigModule('best', str(path)).get_config()  # pylint: disable=protected-access


@pytest.mark.slow  # shares a sweep of two trials, in subprocesses
def test_best_config_file_is_the_best_trial(killed_then_rerun):
  workdir, _ = killed_then_rerun
  study = _study(workdir)
  trained = json.loads((pathlib.Path(study.best_trial.user_attrs['workdir']) /
                        'config.json').read_text())
  written = json.loads(_best_config(workdir).to_json_best_effort())
  written['progress'] = trained['progress']  # the sweep's trials only turn the bar off
  assert written == trained  # the sweep's command-line overrides and the trial's values


@pytest.mark.slow  # trains one trial
def test_median_pruner_stops_a_trial_below_the_median_at_an_evaluation(tmp_path):
  config = load_config('digits_cnn', num_steps=22, steps_per_loop=11, eval_every_steps=11,
                       checkpoint_every_steps=11, log_every_steps=11, plots=False)
  rate = space.loguniform(1e-7, 1e-2)
  sweep = space.Sweep({'optimizer.learning_rate': rate}, startup_trials=1)
  runner.quiet()
  study = runner.create_study(sweep, 'pruning', f'sqlite:///{tmp_path}/study.db')
  # A finished trial that was at 95% at step 11; the next one learns nothing at lr 1e-7.
  study.add_trial(optuna.create_trial(
      value=0.97, intermediate_values={11: 0.95}, params={'optimizer.learning_rate': 3e-3},
      distributions={'optimizer.learning_rate': optuna.distributions.FloatDistribution(
          rate.low, rate.high, log=True)}))
  study.enqueue_trial({'optimizer.learning_rate': 1e-7})
  with contextlib.redirect_stdout(io.StringIO()):
    study.optimize(lambda trial: runner.run_trial(trial, config, sweep, str(tmp_path)),
                   n_trials=1)
  bad = study.trials[1]
  assert bad.state == TrialState.PRUNED
  assert list(bad.intermediate_values) == [11]  # stopped at its first evaluation
  workdir = pathlib.Path(bad.user_attrs['workdir'])
  assert max(r['step'] for r in read_metrics(workdir)) == 11  # and trained no further
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['11']  # saved there
  log = (workdir / 'train.log').read_text()
  assert 'Model FLOPs per run' in log and 'examples/s' in log and 'device-hours' in log


def test_sweep_file_with_an_unknown_key_is_a_user_error(tmp_path):
  sweep_file = tmp_path / 'bad.py'
  sweep_file.write_text('from jaxlab.sweep.space import Sweep, uniform\n'
                        'def get_sweep(arg=None):\n'
                        '  return Sweep({"optimizer.learning_rat": uniform(1e-4, 1e-2)})\n')
  result = run_cli('sweep', '--config=experiments/digits_cnn.py:smoke', f'--sweep={sweep_file}',
                   f'--workdir={tmp_path}/w')
  assert result.returncode == 2 and 'optimizer.learning_rate' in result.stderr


def _scored_study(values):
  """An in-memory study of complete trials over two parameters, scoring `values`."""
  runner.quiet()
  study = optuna.create_study(direction='maximize')
  distributions = {'a': optuna.distributions.FloatDistribution(0.0, 1.0),
                   'b': optuna.distributions.FloatDistribution(0.0, 1.0)}
  for i, value in enumerate(values):
    study.add_trial(optuna.create_trial(value=value, params={'a': i / 10, 'b': 1 - i / 10},
                                        distributions=distributions))
  return study


def test_trials_that_all_score_the_same_draw_no_importances(tmp_path):
  (tmp_path / report.IMPORTANCES_PNG).write_bytes(b'an earlier sweep\'s plot')
  lines = report.write_plots(_scored_study([0.5, 0.5, 0.5]), 'eval/accuracy', str(tmp_path))
  assert not (tmp_path / report.IMPORTANCES_PNG).exists()
  assert (tmp_path / report.HISTORY_PNG).stat().st_size > 0
  said = [line for line in lines if report.IMPORTANCES_PNG in line]
  assert said == [f'No {report.IMPORTANCES_PNG}: the objective did not vary: all 3 complete '
                  'trial(s) scored eval/accuracy 0.5, so no parameter can be shown to matter '
                  'more than another.']


def test_trials_that_score_differently_draw_importances(tmp_path):
  lines = report.write_plots(_scored_study([0.5, 0.7, 0.6]), 'eval/accuracy', str(tmp_path))
  assert (tmp_path / report.IMPORTANCES_PNG).stat().st_size > 0
  assert f'Wrote {tmp_path / report.IMPORTANCES_PNG}' in lines


def test_worker_shares_add_up_to_the_remaining_trials():
  assert runner.shares(5, 2) == [3, 2] and runner.shares(1, 3) == [1, 0, 0]


# --- compute cost -------------------------------------------------------------------


@pytest.mark.parametrize('kind, dollars', [
    ('TPU v4', 3.22), ('TPU v5 lite', 1.20), ('TPU v5p', 4.20), ('TPU v6 lite', 2.70),
    ('NVIDIA A100-SXM4-40GB', 2.75), ('NVIDIA H100 80GB HBM3', 6.88), ('NVIDIA H200', 7.91),
    ('cpu', 0.389)])
def test_price_table_knows_each_device_type(kind, dollars):
  assert device_prices.table_price(kind).per_device_hour == dollars


def test_unknown_device_has_no_price_and_says_how_to_set_one():
  price = device_prices.table_price('Mystery chip')
  assert price.per_device_hour is None and 'price_per_device_hour' in price.source


def test_run_summary_cost_arithmetic():
  meter = mfu.Meter(2e9, 'test', mfu.device_peaks.Peak(1e11, 'peak'), batch_size=32,
                    price=device_prices.Price(4.0, 'test'), devices=8)
  summary = meter.summary(100, 10.0, wall_seconds=36.0)
  assert summary['model_flops'] == 2e11 and summary['examples_per_second'] == 320
  assert summary['device_hours'] == pytest.approx(8 * 36 / 3600)  # the wall time is billed
  assert summary['cost_usd'] == pytest.approx(4.0 * 8 * 36 / 3600)


@pytest.mark.slow  # shares a sweep of two trials, in subprocesses
def test_best_config_dry_runs_with_a_cost_estimate_at_the_overridden_price(killed_then_rerun):
  config = _best_config(killed_then_rerun[0])  # the sweep's --config.cost override came along
  config.cost.assumed_mfu = 0.5
  output = io.StringIO()
  with contextlib.redirect_stdout(output):
    result = train_command.dry_run_report(config)
  estimate = result['estimate']
  assert result['num_steps'] == 22
  assert estimate['estimated_seconds'] == pytest.approx(
      result['flops_per_run'] / (result['peak_flops_per_second'] * 0.5))
  assert estimate['cost_usd'] == pytest.approx(2.0 * estimate['device_hours'])
  assert estimate['price_source'] == 'config.cost.price_per_device_hour'
  assert 'an estimate' in output.getvalue() and 'x $2 =' in output.getvalue()


ASK_UNTIL_THE_QUEUE_IS_EMPTY = """
import json, os, sys, time
import optuna
from jaxlab.sweep import runner
url, queued, start = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runner.quiet()
study = optuna.load_study(study_name='race', storage=runner.storage(url))
open(f'{start}.{os.getpid()}.ready', 'w').close()
while not os.path.exists(start):
  time.sleep(0.001)
numbers = []
while True:
  number = study.ask().number
  if number >= queued:  # the queue is empty: ask made a new trial
    break
  numbers.append(number)
print(json.dumps(numbers))
"""


def test_workers_sharing_a_sqlite_study_never_pop_the_same_queued_trial(tmp_path):
  # Two workers once both set the first queued trial RUNNING and trained it in one workdir:
  # pysqlite starts a transaction only at the first write, so both read it as WAITING.
  # Without the lock, 4 processes released together duplicate a trial in every try seen.
  url, queued, start = f'sqlite:///{tmp_path}/study.db', 60, tmp_path / 'start'
  runner.quiet()
  study = optuna.create_study(study_name='race', storage=runner.storage(url))
  for value in range(queued):
    study.enqueue_trial({'x': value})
  askers = [subprocess.Popen([sys.executable, '-c', ASK_UNTIL_THE_QUEUE_IS_EMPTY, url,
                              str(queued), str(start)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True) for _ in range(4)]
  deadline = time.monotonic() + 120
  while len(list(tmp_path.glob('start.*.ready'))) < len(askers) and time.monotonic() < deadline:
    time.sleep(0.05)
  start.touch()  # all of them waiting at the start line
  popped = [n for asker in askers for n in json.loads(asker.communicate(timeout=120)[0])]
  assert sorted(popped) == list(range(queued))
