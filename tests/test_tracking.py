"""config.tracking: a run logged to a real `mlflow server` (SQLite backend, on 127.0.0.1),
resumed into the same MLflow run, and a server killed mid-run; the sending thread's
failure policy against stand-in backends."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time

import portpicker
import pytest

from jaxlab import tracking
from jaxlab.tracking import sender
from jaxlab.train import loop
from tests.conftest import ROOT, load_config, read_metrics

mlflow = pytest.importorskip('mlflow')

SHORT = dict(num_steps=22, steps_per_loop=11, log_every_steps=11, eval_every_steps=11,
             checkpoint_every_steps=11, plots=False)


class Server:
  """`mlflow server` in its own process group (it starts uvicorn as a child)."""

  def __init__(self, directory, database):
    self.database = database
    self.port = portpicker.pick_unused_port()
    self.uri = f'http://127.0.0.1:{self.port}'
    self.log = open(directory / 'server.log', 'w')  # pylint: disable=consider-using-with
    self.process = subprocess.Popen(
        [sys.executable, '-m', 'mlflow', 'server', '--backend-store-uri', f'sqlite:///{database}',
         '--artifacts-destination', str(directory / 'artifacts'), '--host', '127.0.0.1',
         '--port', str(self.port), '--workers', '1'],
        cwd=directory, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION='false'))
    self._wait_until_ready(directory)

  def _wait_until_ready(self, directory, timeout_s=180):
    import urllib.request
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        raise RuntimeError(f'mlflow server exited: {(directory / "server.log").read_text()}')
      try:
        with urllib.request.urlopen(f'{self.uri}/health', timeout=2) as response:
          if response.status == 200:
            return
      except OSError:
        time.sleep(0.3)
    raise RuntimeError(f'mlflow server not ready after {timeout_s} s')

  def client(self):
    return mlflow.MlflowClient(tracking_uri=self.uri)

  def kill(self):
    if self.process.poll() is None:
      os.killpg(self.process.pid, signal.SIGKILL)
      self.process.wait()
    self.log.close()


@pytest.fixture(scope='module')
def server(tmp_path_factory):
  directory = tmp_path_factory.mktemp('mlflow')
  started = Server(directory, directory / 'mlflow.db')
  yield started
  started.kill()


def _train(server_, workdir, experiment, **overrides):
  config = load_config('digits_cnn', **{**SHORT, **overrides})
  config.tracking.backend = 'mlflow'
  config.tracking.experiment = experiment
  os.environ['MLFLOW_TRACKING_URI'] = server_.uri
  try:
    loop.run(config, str(workdir))
  finally:
    del os.environ['MLFLOW_TRACKING_URI']
  return config


def _snapshot(server_, workdir):
  """What the server holds for the workdir's run, and the workdir's own records."""
  client = server_.client()
  run_id = json.loads((workdir / 'tracking.json').read_text())['run_id']
  run = client.get_run(run_id)
  history = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key),
                                                      key=lambda m: m.step)]
             for key in run.data.metrics}
  downloaded = pathlib.Path(client.download_artifacts(run_id, '', tempfile.mkdtemp()))
  artifacts = {p.name: p.read_text() for p in downloaded.iterdir()}
  return dict(run=run, history=history, artifacts=artifacts, records=read_metrics(workdir),
              config_json=(workdir / 'config.json').read_text())


def _history_of(records):
  """{metric: [(step, value)]} of metrics.jsonl's scalars."""
  history = {}
  for record in records:
    for key, value in record.items():
      if key != 'step' and isinstance(value, (int, float)):
        history.setdefault(key, []).append((record['step'], float(value)))
  return history


@pytest.fixture(scope='module')
def first_run(server, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('tracked')
  config = _train(server, workdir, 'jaxlab-tests')
  return workdir, config, _snapshot(server, workdir)


@pytest.mark.slow  # starts an mlflow server (shared by the module) and trains
def test_run_logs_flat_config_params_metrics_config_and_final_eval(first_run):
  workdir, config, logged = first_run
  run = logged['run']
  assert run.info.status == 'FINISHED' and run.info.run_name == workdir.name
  assert run.data.params == {k: str(v) for k, v in tracking.tracker.flat_params(config).items()}
  assert run.data.params['optimizer.learning_rate'] == str(config.optimizer.learning_rate)
  assert logged['history'] == _history_of(logged['records'])  # every scalar, at its step
  assert {'train/loss', 'eval/accuracy'} <= set(logged['history'])
  assert logged['artifacts']['config.json'] == logged['config_json']
  final = json.loads(logged['artifacts']['eval_22.json'])
  last_eval = [r for r in logged['records'] if 'eval/accuracy' in r][-1]
  assert final['step'] == 22 and final['accuracy'] == last_eval['eval/accuracy']
  assert final['confusion_matrix'] == last_eval['eval/confusion_matrix']


@pytest.mark.slow  # trains on from the first run
def test_resumed_run_appends_to_the_same_mlflow_run(server, first_run):
  workdir, _, before = first_run
  _train(server, workdir, 'jaxlab-tests', num_steps=44)
  after = _snapshot(server, workdir)
  assert after['run'].info.run_id == before['run'].info.run_id
  assert after['history'] == _history_of(after['records'])
  assert [step for step, _ in after['history']['train/loss']] == [11, 22, 33, 44]
  assert after['run'].info.status == 'FINISHED' and 'eval_44.json' in after['artifacts']
  # MLflow keeps a parameter's first value; the changed ones are named in a tag.
  assert after['run'].data.params['num_steps'] == '22'
  assert after['run'].data.tags['jaxlab.params_changed_on_resume'] == 'num_steps'
  experiment = after['run'].info.experiment_id
  assert len(before_and_after := server.client().search_runs([experiment])) == 1, before_and_after


@pytest.mark.slow  # a run of some seconds, in a subprocess
def test_server_killed_mid_run_costs_warnings_not_the_run(server, tmp_path):
  """The module's server, killed once it holds the run's first metric (the module's last
  test to use it; its store is read directly afterwards); the run, long enough never to
  end by itself, is stopped by SIGTERM once it has warned (a fixed length raced the kill on
  a loaded machine: all sent before the server died)."""
  doomed = server
  workdir = tmp_path / 'run'
  steps = 10**6
  command = [sys.executable, '-m', 'jaxlab.main', 'train',
             '--config=experiments/digits_cnn.py:smoke', f'--workdir={workdir}',
             f'--config.num_steps={steps}', '--config.steps_per_loop=10',
             '--config.log_every_steps=10', f'--config.eval_every_steps={steps}',
             f'--config.checkpoint_every_steps={steps}', '--config.plots=False',
             '--config.tracking.backend=mlflow', '--config.tracking.experiment=killed']
  training = subprocess.Popen(command, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              env=dict(os.environ, MLFLOW_TRACKING_URI=doomed.uri))
  output = {'stdout': [], 'stderr': []}
  readers = [threading.Thread(target=lambda k=k, s=s: output[k].extend(s))
             for k, s in (('stdout', training.stdout), ('stderr', training.stderr))]
  for reader in readers:
    reader.start()
  warning = 'jaxlab: warning: MLflow: could not send the metrics of step'
  try:
    run_id = _wait_for_first_metric(doomed, 'killed', training)
    doomed.kill()
    deadline = time.monotonic() + 300
    while (not any(warning in line for line in output['stderr']) and training.poll() is None
           and time.monotonic() < deadline):
      time.sleep(0.1)
    training.send_signal(signal.SIGTERM)  # saves a checkpoint and exits 0
    training.wait(timeout=300)
  finally:
    if training.poll() is None:
      training.kill()
    for reader in readers:
      reader.join()
  stderr = ''.join(output['stderr'])
  assert training.returncode == 0, stderr
  assert warning in stderr and 'records were not sent' in stderr
  records = read_metrics(workdir)
  saved = max(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  assert records[-1]['step'] <= saved < steps
  # What reached the store before the kill: the run's start, not its end.
  store = mlflow.MlflowClient(tracking_uri=f'sqlite:///{server.database}')
  received = store.get_metric_history(run_id, 'train/loss')
  assert 1 <= len(received) < len([r for r in records if 'train/loss' in r])
  assert store.get_run(run_id).info.status == 'RUNNING'


def _wait_for_first_metric(server_, experiment_name, training, timeout_s=300):
  client = server_.client()
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline and training.poll() is None:
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    if runs and 'train/loss' in runs[0].data.metrics:
      return runs[0].info.run_id
    time.sleep(0.1)
  raise AssertionError('the run logged no metric before it ended')


# --- the sending thread, against stand-in backends -----------------------------------


class Recorder:
  """A backend that records what it is sent; fails while `down` is set."""
  name = 'Stand-in'

  def __init__(self):
    self.calls, self.opened, self.down = [], 0, False

  def open(self):
    if self.down:
      raise ConnectionError('server down')
    self.opened += 1

  def log_params(self, params):
    self.calls.append(('params', params))

  def log_metrics(self, records):
    self.calls.append(('metrics', [step for step, _, _ in records]))

  def log_text(self, name, text):
    self.calls.append(('text', name))

  def finish(self, status):
    self.calls.append(('finish', status))


def test_records_arrive_in_order_with_metrics_gathered():
  backend, warnings = Recorder(), []
  gate = threading.Event()
  backend.log_params = lambda params: (gate.wait(), backend.calls.append(('params', params)))
  sending = sender.Sender(backend, warn=warnings.append)
  sending.submit('params', {'seed': 0})
  for step in (1, 2, 3):
    sending.submit('metrics', (step, {'train/loss': 1.0}, 0.0))
  sending.submit('text', ('config.json', '{}'))
  sending.submit('finish', 'finished')
  gate.set()  # the metrics queued while the params were sending go in one request
  sending.close(timeout_s=60)
  assert backend.calls == [('params', {'seed': 0}), ('metrics', [1, 2, 3]),
                           ('text', 'config.json'), ('finish', 'finished')]
  assert not warnings


def test_failures_warn_once_then_summarise_at_close():
  backend, warnings = Recorder(), []
  backend.down = True
  sending = sender.Sender(backend, warn=warnings.append)
  for step in range(5):
    sending.submit('metrics', (step, {'train/loss': 1.0}, 0.0))
  sending.close(timeout_s=60)
  assert len(warnings) == 2
  assert warnings[0] == ('Stand-in: the run could not be started or resumed (ConnectionError: '
                         'server down). Training goes on; metrics.jsonl keeps every record. '
                         'Further failures are reported at most every 60 s.')
  assert warnings[1].startswith('Stand-in: 5 of 5 records were not sent (ConnectionError: '
                                'server down)')


def test_a_backend_that_hangs_does_not_hold_close_past_its_timeout():
  backend, warnings = Recorder(), []
  never = threading.Event()
  backend.log_params = lambda params: never.wait()
  sending = sender.Sender(backend, warn=warnings.append)
  sending.submit('params', {})
  sending.submit('finish', 'finished')
  sending.close(timeout_s=0.2)
  assert warnings == ['Stand-in: 2 of 2 records were not sent (still sending after 0.2 s; raise '
                      '--config.tracking.close_timeout_s to wait longer). The run\'s outputs in '
                      'its workdir are complete; metrics.jsonl holds every metric.']
  never.set()


def test_a_full_queue_drops_new_records_and_says_so():
  backend, warnings = Recorder(), []
  gate = threading.Event()
  backend.log_params = lambda params: gate.wait()
  sending = sender.Sender(backend, max_pending=2, warn=warnings.append)
  sending.submit('params', {})
  while sending._queue.qsize():  # pylint: disable=protected-access
    time.sleep(0.01)  # the thread holds the params
  for step in range(5):
    sending.submit('metrics', (step, {'train/loss': 1.0}, 0.0))
  gate.set()
  sending.close(timeout_s=60)
  assert backend.calls == [('metrics', [0, 1])]
  assert '3 dropped while the queue was full: raise --config.tracking.max_pending' in warnings[0]


def test_missing_client_is_a_user_error_before_training(tmp_path, monkeypatch):
  config = load_config('digits_cnn', **SHORT)
  config.tracking.backend = 'mlflow'
  monkeypatch.setattr(tracking.tracker.mlflow_run, 'is_installed', lambda: False)
  with pytest.raises(tracking.tracker.UserError, match=r"pip install 'jaxlab\[mlflow\]'"):
    loop.run(config, str(tmp_path))
  assert not (tmp_path / 'config.json').exists()  # refused before the run was set up

