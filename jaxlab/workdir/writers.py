"""Where metrics go: <workdir>/metrics.jsonl and TensorBoard event files.

Both receive the same record under the same names; the console line of a train record
(jaxlab.train.progress) and the plots (jaxlab.workdir.plots) show it too. A train record's metrics are
means over the steps since the previous record, but train/learning_rate, which is the
logged step's. Only process 0 writes; the other processes get a writer that does nothing.
"""

import json
import posixpath

import numpy as np

from jaxlab import storage
from jaxlab.runtime import background
from jaxlab.workdir import files as workdir_files
from jaxlab.workdir import line_writer
from jaxlab.workdir import tensorboard as tensorboard_events
from jaxlab.runtime import messages

METRICS_FILE = workdir_files.METRICS
TENSORBOARD_DIR = workdir_files.TENSORBOARD


def _plain(value):
  if isinstance(value, (np.generic, np.ndarray)):
    return value.tolist()
  return value


class MetricWriter:
  """Appends {'step': ..., 'train/loss': ...} records; scalars also go to TensorBoard."""

  def __init__(self, workdir):
    self._lines = line_writer.LineWriter(posixpath.join(workdir, METRICS_FILE))
    # Importing TensorBoard's writer takes a few tenths of a second: a thread does it
    # while the first block compiles and trains, which leave the interpreter free.
    self._starting = background.Background(_tensorboard_writer,
                                           posixpath.join(workdir, TENSORBOARD_DIR))
    self._tensorboard_writer = None

  def write(self, step, scalars, extra=None):
    record = {'step': int(step), **{k: _plain(v) for k, v in scalars.items()}, **(extra or {})}
    self._lines.write(json.dumps(record, sort_keys=True))
    tensorboard = self._tensorboard()
    for name, value in scalars.items():
      tensorboard.add_scalar(name, float(value), int(step))

  def flush(self):
    self._lines.flush()
    self._tensorboard().flush()

  def close(self):
    self.flush()
    self._lines.close()
    self._tensorboard().close()

  def _tensorboard(self):
    """The TensorBoard writer once its import is done. If that failed, events are
    skipped with one warning: metrics.jsonl still holds every record."""
    if self._tensorboard_writer is None:
      try:
        self._tensorboard_writer = self._starting.result()
      except Exception as error:  # pylint: disable=broad-except
        messages.warn(f'jaxlab: warning: TensorBoard events not written: {background.one_line(error)}')
        self._tensorboard_writer = _NoTensorBoard()
    return self._tensorboard_writer


_PREPARED = []  # the import started by prepare(), if any


def prepare():
  """Imports TensorBoard's event writer in a background thread while the run compiles,
  before the MetricWriter (and its files) may be created."""
  if not _PREPARED:
    _PREPARED.append(background.Background(tensorboard_events.import_event_file_writer))


def _tensorboard_writer(logdir):
  for prepared in _PREPARED:  # joined, so two threads never import TensorBoard at once
    prepared.result()
  return tensorboard_events.tensorboard_writer(logdir)


class _NoTensorBoard:
  def add_scalar(self, tag, value, step):
    pass

  def flush(self):
    pass

  def close(self):
    pass


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


def read_scalars(workdir):
  """The records of <workdir>/metrics.jsonl without their arrays (a 1000-class confusion
  matrix is a million numbers per eval record): one record's arrays in memory at a time."""
  return [{k: v for k, v in json.loads(line).items() if not isinstance(v, (list, dict))}
          for line in storage.read_lines(posixpath.join(workdir, METRICS_FILE))]
