"""Scalar TensorBoard event files, written with the `tensorboard` package's own
EventFileWriter (about 0.3 s to import, against seconds for tensorboardX, which
imports torch when it is installed). A remote logdir gets events written to a local
staging folder, whose changed files are copied to the workdir on `flush()` and `close()`.
"""

import os
import posixpath
import shutil
import sys
import tempfile
import time
import types

from jaxlab.storage.paths import copy_file, is_remote


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


def tensorboard_writer(logdir):
  """A scalar TensorBoard writer for `logdir`; remote logdirs get a synced one."""
  if not is_remote(logdir):
    return ScalarWriter(os.fspath(logdir))
  return SyncedScalarWriter(os.fspath(logdir))


class SyncedScalarWriter:
  """Writes events to a local staging folder; `flush`/`close` copy them to `remote_logdir`.

  TensorBoard's own writers reach gs:// only through TensorFlow's file system; staging
  keeps every write on the epath route that the rest of the workdir takes.
  """

  def __init__(self, remote_logdir):
    self.remote_logdir = remote_logdir
    self._staging = tempfile.mkdtemp(prefix='jaxlab-tensorboard-')
    self._synced = {}  # relative path -> size at the last copy
    self._writer = ScalarWriter(self._staging)

  def add_scalar(self, tag, value, step):
    self._writer.add_scalar(tag, value, step)

  def flush(self):
    self._writer.flush()
    self._sync()

  def close(self):
    if self._staging is None:
      return
    self._writer.close()
    try:
      self._sync()
    finally:
      shutil.rmtree(self._staging, ignore_errors=True)
      self._staging = None

  def _sync(self):
    for folder, _, names in os.walk(self._staging):
      for name in names:
        local = os.path.join(folder, name)
        relative = os.path.relpath(local, self._staging).replace(os.sep, '/')
        size = os.path.getsize(local)
        if self._synced.get(relative) != size:
          copy_file(local, posixpath.join(self.remote_logdir, relative))
          self._synced[relative] = size
