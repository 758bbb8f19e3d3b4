"""Where metrics go: <workdir>/metrics.jsonl and TensorBoard event files.

Both receive the same record under the same names; the console line of a train record
(jaxlab.progress) and the plots (jaxlab.plots) show it too. A train record's metrics are
means over the steps since the previous record, but train/learning_rate, which is the
logged step's. Only process 0 writes; the other processes get a writer that does nothing.
"""

import json
import posixpath
import threading

import numpy as np

from jaxlab import storage, workdir_files

METRICS_FILE = workdir_files.METRICS
TENSORBOARD_DIR = workdir_files.TENSORBOARD


def _plain(value):
  if isinstance(value, (np.generic, np.ndarray)):
    return value.tolist()
  return value


class MetricWriter:
  """Appends {'step': ..., 'train/loss': ...} records; scalars also go to TensorBoard."""

  def __init__(self, workdir):
    self._lines = storage.LineWriter(posixpath.join(workdir, METRICS_FILE))
    # Importing TensorBoard's writer takes a few tenths of a second: a thread does it
    # while the first block compiles and trains, which leave the interpreter free.
    self._tensorboard = _Background(storage.tensorboard_writer,
                                    posixpath.join(workdir, TENSORBOARD_DIR))

  def write(self, step, scalars, extra=None):
    record = {'step': int(step), **{k: _plain(v) for k, v in scalars.items()}, **(extra or {})}
    self._lines.write(json.dumps(record, sort_keys=True))
    tensorboard = self._tensorboard.result()
    for name, value in scalars.items():
      tensorboard.add_scalar(name, float(value), int(step))

  def flush(self):
    self._lines.flush()
    self._tensorboard.result().flush()

  def close(self):
    self.flush()
    self._lines.close()
    self._tensorboard.result().close()


def prepare():
  """Imports TensorBoard's event writer in a background thread while the run compiles,
  before the MetricWriter (and its files) may be created."""
  from jaxlab import tensorboard_events
  _Background(tensorboard_events.import_event_file_writer)


class _Background:
  """`function(*args)` computed in a daemon thread; `result()` waits for it (and raises
  what it raised)."""

  def __init__(self, function, *args):
    self._outcome = {}
    self._thread = threading.Thread(target=self._run, args=(function, args), daemon=True,
                                    name=f'jaxlab-{function.__name__}')
    self._thread.start()

  def _run(self, function, args):
    try:
      self._outcome['value'] = function(*args)
    except BaseException as error:  # pylint: disable=broad-except
      self._outcome['error'] = error

  def result(self):
    self._thread.join()
    if 'error' in self._outcome:
      raise self._outcome['error']
    return self._outcome['value']


class NullWriter:
  def write(self, step, scalars, extra=None):
    pass

  def flush(self):
    pass

  def close(self):
    pass


def read_records(workdir):
  """All records of <workdir>/metrics.jsonl, in order."""
  return [json.loads(line) for line in storage.read_lines(posixpath.join(workdir, METRICS_FILE))]
