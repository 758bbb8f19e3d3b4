"""One jaxlab run as one MLflow run, through `mlflow.MlflowClient` (the explicit client:
no process-wide active run, safe to drive from the tracking thread).

The server is MLflow's own choice: $MLFLOW_TRACKING_URI (else MLflow's local default).
The run's id is kept in <workdir>/tracking.json, so a resumed run (same workdir, same
server) appends to the same MLflow run. Every method runs on the tracking thread
(jaxlab.tracking.sender); none is called before `open()` succeeded.
"""

import os
import time

from jaxlab.tracking import run_file

NAME = 'mlflow'
# MLflow's client retries a request 7 times over about 4 minutes by default; a training
# run prefers to note the loss and go on (the sender pauses between failed requests).
# Only defaults: a value set in the environment wins.
_QUICK_FAILURE = dict(MLFLOW_HTTP_REQUEST_MAX_RETRIES='2', MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR='1',
                      MLFLOW_HTTP_REQUEST_TIMEOUT='20')
_STATUS = dict(finished='FINISHED', stopped='FINISHED', preempted='KILLED', failed='FAILED')
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter's value


def is_installed():
  import importlib.util
  return importlib.util.find_spec('mlflow') is not None


def import_client():
  import mlflow  # pylint: disable=unused-import


class MlflowRun:
  name = 'MLflow'

  def __init__(self, workdir, experiment, run_name):
    self._workdir, self._experiment, self._run_name = workdir, experiment, run_name
    self._client = self.run_id = None
    self._logged_params = {}  # a resumed run's parameters, which MLflow will not change

  def open(self):
    if self.run_id:
      return
    for key, value in _QUICK_FAILURE.items():
      os.environ.setdefault(key, value)
    import mlflow
    self._client = mlflow.MlflowClient()
    uri = mlflow.get_tracking_uri()
    stored = run_file.read(self._workdir, NAME, uri)
    run = stored and self._existing_run(stored['run_id'])
    if run:
      self._client.update_run(run.info.run_id, status='RUNNING')
      self._logged_params = dict(run.data.params)
    else:
      run = self._client.create_run(self._experiment_id(), run_name=self._run_name,
                                    tags={'jaxlab.workdir': self._workdir})
      run_file.write(self._workdir, NAME, uri, run.info.run_id)
    self.run_id = run.info.run_id

  def _existing_run(self, run_id):
    from mlflow.exceptions import MlflowException
    try:
      run = self._client.get_run(run_id)
    except MlflowException as error:
      if error.error_code == 'RESOURCE_DOES_NOT_EXIST':
        return None  # deleted on the server: a new run
      raise
    return run if run.info.lifecycle_stage == 'active' else None

  def _experiment_id(self):
    """tracking.experiment, else $MLFLOW_EXPERIMENT_NAME / _ID, else MLflow's Default ('0')."""
    name = self._experiment or os.environ.get('MLFLOW_EXPERIMENT_NAME')
    if not name:
      return os.environ.get('MLFLOW_EXPERIMENT_ID', '0')
    from mlflow.exceptions import MlflowException
    found = self._client.get_experiment_by_name(name)
    if found:
      return found.experiment_id
    try:
      return self._client.create_experiment(name)
    except MlflowException:  # another process (a sweep's worker) created it first
      return self._client.get_experiment_by_name(name).experiment_id

  def log_params(self, params):
    """A resumed run keeps its first values (MLflow refuses to change a parameter); a
    changed one is named in the tag jaxlab.params_changed_on_resume."""
    from mlflow.entities import Param, RunTag
    values = {k: str(v)[:MAX_PARAM_LENGTH] for k, v in params.items()}
    new = [Param(k, v) for k, v in values.items() if k not in self._logged_params]
    changed = sorted(k for k, v in values.items() if self._logged_params.get(k, v) != v)
    tags = [RunTag('jaxlab.params_changed_on_resume', ', '.join(changed))] if changed else []
    self._client.log_batch(self.run_id, params=new, tags=tags)

  def log_metrics(self, records):
    from mlflow.entities import Metric
    metrics = [Metric(name, float(value), int(when * 1000), int(step))
               for step, scalars, when in records for name, value in scalars.items()]
    self._client.log_batch(self.run_id, metrics=metrics)

  def log_text(self, name, text):
    self._client.log_text(self.run_id, text, name)

  def finish(self, status):
    self._client.set_terminated(self.run_id, status=_STATUS[status],
                                end_time=int(time.time() * 1000))
