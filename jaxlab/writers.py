"""Where metrics go: <workdir>/metrics.jsonl and TensorBoard event files.

Only process 0 writes; the other processes get a writer that does nothing.
"""

import json
import posixpath

import numpy as np

from jaxlab import storage

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'


def _plain(value):
  if isinstance(value, (np.generic, np.ndarray)):
    return value.tolist()
  return value


class MetricWriter:
  """Appends {'step': ..., 'train/loss': ...} records; scalars also go to TensorBoard."""

  def __init__(self, workdir):
    self._lines = storage.LineWriter(posixpath.join(workdir, METRICS_FILE))
    self._tensorboard = storage.tensorboard_writer(posixpath.join(workdir, TENSORBOARD_DIR))

  def write(self, step, scalars, extra=None):
    record = {'step': int(step), **{k: _plain(v) for k, v in scalars.items()}, **(extra or {})}
    self._lines.write(json.dumps(record, sort_keys=True))
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, float(value), int(step))

  def flush(self):
    self._lines.flush()
    self._tensorboard.flush()

  def close(self):
    self.flush()
    self._lines.close()
    self._tensorboard.close()


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
