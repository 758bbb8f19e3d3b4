"""The training run's side of tracking: `start(config, workdir)` on the chief process
gives a Tracker that takes the same records as metrics.jsonl, and `finish` at the end.

What a tracked run logs: the resolved config flattened into parameters
('optimizer.learning_rate'), config.json as an artifact, every train and eval record's
scalars as metrics at its step, and the last evaluation as eval_<step>.json. Nothing here
waits on the network: jaxlab.tracking.sender does the sending.
"""

import json
import posixpath
import time

import ml_collections
import numpy as np

from jaxlab.runtime import background
from jaxlab.workdir import files as workdir_files
from jaxlab.errors import UserError
from jaxlab.tracking import mlflow_run, sender

BACKENDS = ('mlflow',)


def check_installed(config):
  """Refuses a backend whose client is missing, before anything is compiled."""
  if config.tracking.backend == 'mlflow' and not mlflow_run.is_installed():
    raise UserError('--config.tracking.backend=mlflow needs the MLflow client: pip install '
                    '\'jaxlab[mlflow]\' (or mlflow-skinny), or set --config.tracking.backend=\'\' '
                    'to train without tracking.')


_PREPARED = []  # the client import started by prepare(), if any


def prepare(config):
  """Imports the tracking client (seconds) in a background thread while the run compiles;
  the tracking thread's own import then finds it done or waits for it. A failed import
  shows when the tracking thread imports again."""
  if config.tracking.backend == 'mlflow' and not _PREPARED:
    _PREPARED.append(background.Background(mlflow_run.import_client))


def start(config, workdir):
  """A Tracker for `config.tracking` (a NullTracker when it is off)."""
  settings = config.tracking
  if not settings.backend:
    return NullTracker()
  check_installed(config)
  run_name = settings.run_name or posixpath.basename(workdir.rstrip('/'))
  backend = mlflow_run.MlflowRun(workdir, settings.experiment, run_name)
  tracker = Tracker(sender.Sender(backend, max_pending=settings.max_pending),
                    close_timeout_s=settings.close_timeout_s)
  tracker.sender.submit('params', flat_params(config))
  tracker.sender.submit('text', (workdir_files.CONFIG,
                                 config.to_json_best_effort(indent=2, sort_keys=True) + '\n'))
  return tracker


def flat_params(config, prefix=''):
  """{'optimizer.learning_rate': 0.001, ...}: every leaf of the config, tuples as text."""
  params = {}
  for name, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      params.update(flat_params(value, f'{prefix}{name}.'))
    else:
      params[f'{prefix}{name}'] = value if isinstance(value, (int, float, str)) else str(value)
  return params


class Tracker:
  def __init__(self, sender_, close_timeout_s):
    self.sender, self._close_timeout_s = sender_, close_timeout_s
    self._finished = False

  def wrap(self, writer):
    return TrackedWriter(writer, self)

  def write(self, step, scalars, extra=None):
    del extra  # arrays (a confusion matrix) are not metrics; the final eval JSON has them
    self.sender.submit('metrics', (int(step), {k: float(v) for k, v in scalars.items()},
                                   time.time()))

  def finish(self, status, final_eval=None):
    """Logs the last evaluation, marks the run `status` (finished, stopped, preempted or
    failed) and waits at most tracking.close_timeout_s for the records to go out."""
    if self._finished:
      return
    self._finished = True
    if final_eval:
      self.sender.submit('text', (workdir_files.eval_result(final_eval['step']),
                                  json.dumps(final_eval, indent=2, default=_plain) + '\n'))
    self.sender.submit('finish', status)
    self.sender.close(self._close_timeout_s)


def _plain(value):
  if isinstance(value, (np.generic, np.ndarray)):
    return value.tolist()
  raise TypeError(f'{type(value).__name__} is not JSON serializable')


class TrackedWriter:
  """A MetricWriter whose records also go to the tracker."""

  def __init__(self, writer, tracker):
    self._writer, self._tracker = writer, tracker

  def write(self, step, scalars, extra=None):
    self._writer.write(step, scalars, extra)
    self._tracker.write(step, scalars, extra)

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


class NullTracker:
  """Tracking off (and on every process but the chief)."""

  def wrap(self, writer):
    return writer

  def write(self, step, scalars, extra=None):
    pass

  def finish(self, status, final_eval=None):
    pass
