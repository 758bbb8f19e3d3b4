"""One training run per workdir: a lock taken at start and released at exit.

The lock names its holder (host, pid, start time), so a second `jaxlab train` on a
live workdir can say who has it. A lock left by a killed run never blocks a rerun:
- local workdirs use `flock` on <workdir>/jaxlab.lock; the kernel releases it when the
  holder dies, even by kill -9, so the file left behind is harmless;
- bucket workdirs (gs://, s3://, az://) create the lock object only if it does not
  exist (a precondition on its generation or ETag, atomic in the bucket:
  jaxlab.workdir.lock_objects). The holder refreshes it every HEARTBEAT_S; a lock whose holder
  is gone (same host, dead pid) or that has not been refreshed for STALE_AFTER_S is
  taken over, again under a precondition, so two runs racing for a stale lock cannot
  both win.
In a multi-process run only process 0 holds the lock; the outcome is shared with all.
"""

import contextlib
import datetime
import json
import os
import posixpath
import socket
import threading
import time

from jaxlab import storage
from jaxlab.runtime import processes
from jaxlab.workdir import files as workdir_files
from jaxlab.errors import UserError
from jaxlab.parallel import multihost
from jaxlab.runtime import messages

LOCK_FILE_NAME = workdir_files.LOCK
HEARTBEAT_S = 30.0
STALE_AFTER_S = 120.0


def _holder_record():
  return dict(host=socket.gethostname(), pid=os.getpid(),
              started=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
              heartbeat=time.time())


def _describe(holder):
  if not holder:
    return 'another process'
  return (f'process {holder.get("pid")} on host {holder.get("host")}, started '
          f'{holder.get("started")}')


def _busy_error(workdir, holder, extra=''):
  return UserError(
      f'The workdir {workdir} is in use by another `jaxlab train`: {_describe(holder)}{extra}. '
      'Two runs on one workdir would overwrite each other\'s checkpoints and metrics. Wait for '
      f'it to finish or stop it (`kill {holder.get("pid") if holder else "PID"}` on that host: it '
      'saves a checkpoint and exits), or pass another --workdir.')


class _LocalLock:
  """flock on a file in the workdir: released by the kernel when the holder dies."""

  def __init__(self, workdir):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE_NAME)
    self._file = None

  def acquire(self):
    import fcntl  # pylint: disable=g-import-not-at-top
    os.makedirs(self.workdir, exist_ok=True)
    handle = open(self.path, 'a+', encoding='utf-8')  # pylint: disable=consider-using-with
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = _parse(handle.read())
      handle.close()
      raise _busy_error(self.workdir, holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(_holder_record()) + '\n')
    handle.flush()
    self._file = handle

  def release(self):
    if self._file is not None:
      self._file.close()  # closing drops the flock; the file stays, unlocked
      self._file = None


class _BucketLock:
  """A create-only object in a bucket workdir, refreshed by a heartbeat thread."""

  def __init__(self, workdir):
    from jaxlab.workdir import lock_objects  # pylint: disable=g-import-not-at-top
    self.workdir = workdir
    self.store = lock_objects.for_url(posixpath.join(workdir, LOCK_FILE_NAME))
    self.fs, self.bucket, self.key = self.store.fs, self.store.bucket, self.store.key
    self._version = None
    self._stop = threading.Event()
    self._thread = None

  def acquire(self):
    for _ in range(5):  # each turn either wins, fails for good, or saw the lock change
      if self._create():
        self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                        name='jaxlab-workdir-lock')
        self._thread.start()
        return
      holder, version = self._read()
      if version is None:
        continue  # released meanwhile: try again
      reason = self._stale_reason(holder)
      if not reason:
        age = time.time() - float(holder.get('heartbeat', 0)) if holder else 0
        raise _busy_error(self.workdir, holder,
                          f' (last seen {age:.0f} s ago; a lock not refreshed for '
                          f'{STALE_AFTER_S:.0f} s is taken over)')
      if self.store.delete(version):
        messages.say(f'jaxlab: warning: took over the lock of {self.workdir} from '
              f'{_describe(holder)} ({reason}).')
    raise _busy_error(self.workdir, None, ' (the lock kept changing hands)')

  def release(self):
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    if self._version is not None:
      self.store.delete(self._version)
      self._version = None

  def _create(self):
    self._version = self.store.create(json.dumps(_holder_record()).encode())
    return self._version is not None

  def _read(self):
    content, version = self.store.read()
    if version is None:
      return None, None
    return _parse(content.decode('utf-8', errors='replace')), version

  @staticmethod
  def _stale_reason(holder):
    if not holder:
      return 'its lock object was unreadable'
    if holder.get('host') == socket.gethostname() and not processes.alive(holder.get('pid')):
      return 'that process no longer runs'
    age = time.time() - float(holder.get('heartbeat', 0))
    if age > STALE_AFTER_S:
      return f'not refreshed for {age:.0f} s'
    return ''

  def _heartbeat(self):
    from jaxlab.workdir import lock_objects  # pylint: disable=g-import-not-at-top
    while not self._stop.wait(HEARTBEAT_S):
      try:
        self._version = self.store.replace(self._version, json.dumps(_holder_record()).encode())
      except lock_objects.Changed:
        messages.say(f'jaxlab: warning: the lock of {self.workdir} was taken over by another run.')
        self._version = None
        return
      except Exception:  # pylint: disable=broad-except
        pass  # a passing network fault: the next beat retries, well within STALE_AFTER_S


def _parse(text):
  try:
    record = json.loads(text)
    return record if isinstance(record, dict) else None
  except ValueError:
    return None


def _make_lock(workdir):
  return _BucketLock(workdir) if storage.is_remote(workdir) else _LocalLock(workdir)


@contextlib.contextmanager
def hold(workdir):
  """Holds the workdir's lock for the duration of the block, or raises UserError."""
  import jax  # pylint: disable=g-import-not-at-top
  lock, error = None, None
  if jax.process_index() == 0:
    lock = _make_lock(workdir)
    try:
      lock.acquire()
    except UserError as raised:
      lock, error = None, raised
  if multihost.any_process(error is not None):
    raise error or UserError(f'Process 0 could not lock the workdir {workdir}: another '
                             '`jaxlab train` is using it (process 0 says who).')
  try:
    yield
  finally:
    if lock is not None:
      lock.release()
