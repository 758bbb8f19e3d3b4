"""Scalar TensorBoard event files, written with the `tensorboard` package's own
EventFileWriter (about 0.3 s to import, against seconds for tensorboardX, which
imports torch when it is installed)."""

import sys
import time
import types


def _without_tensorflow():
  # TensorBoard imports TensorFlow for file access when it is installed (seconds), unless
  # `tensorboard.compat.notf` exists: the switch of TensorBoard's own no-TensorFlow build.
  # Local files need no TensorFlow; remote logdirs are synced by jaxlab.storage.
  sys.modules.setdefault('tensorboard.compat.notf', types.ModuleType('tensorboard.compat.notf'))


def import_event_file_writer():
  """TensorBoard's writer, imported without boto3: its file layer imports boto3 for s3://
  paths when installed (0.2 s of a 5 s run), and ours only writes local files."""
  _without_tensorflow()
  blocked = 'boto3' not in sys.modules and 'tensorboard.compat.tensorflow_stub' not in sys.modules
  if blocked:
    sys.modules['boto3'] = None  # an ImportError inside TensorBoard: S3 support off
  try:
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
  finally:
    if blocked:
      del sys.modules['boto3']
  return EventFileWriter


class ScalarWriter:
  """add_scalar / flush / close on a local log directory."""

  def __init__(self, logdir):
    self.logdir = logdir
    self._writer = import_event_file_writer()(logdir)

  def add_scalar(self, tag, value, step):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag,
                                                                   simple_value=float(value))])
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                           summary=summary))

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()
