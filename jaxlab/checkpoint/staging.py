"""Checkpoints of s3:// and az:// workdirs: Orbax saves to a local staging folder and a
background thread uploads each finished step through fsspec (s3fs, adlfs).

Why staged: Orbax 0.12.8 rewrites 's3://b/x' as 's3:/b/x' (and az:// likewise) and
refuses the path, and TensorStore has no Azure driver (docs/cloud_storage.md).

Atomic as Orbax's own saves are: a step counts in the bucket only once its commit
marker (COMMIT_MARKER, listing the step's files and sizes) is there, and the marker is
uploaded after every other file of the step. Restores ignore steps without one and
download only the step they read. A step Orbax drops (the `keep` and best policies)
loses its marker first, then its files, and only after a newer step is committed. So a
kill at any moment leaves every committed step intact and loses at most the step
being uploaded. One upload is in flight at a time: a save first waits for the previous
step's upload, as Orbax's waits for the previous save.

The staging folder ($TMPDIR/jaxlab-checkpoints-*, removed by `close`) holds what
Orbax keeps for a local workdir (the kept steps), and for each other committed step its
_CHECKPOINT_METADATA alone, so that Orbax lists and ranks every step in the bucket
without downloading it.

Single-process runs only: in a multi-process run each host would stage only its own
shards, which Orbax's local finalization cannot merge.
"""

import atexit
import json
import os
import queue
import shutil
import tempfile
import threading
import time

from jaxlab import storage
from jaxlab.errors import UserError

COMMIT_MARKER = 'jaxlab_commit.json'
_STEP_METADATA = '_CHECKPOINT_METADATA'  # Orbax's per-step file: its metrics and times


class UploadFailed(RuntimeError):
  """A step could not be uploaded; the bucket still holds the previous committed steps."""


class StagedCheckpoints:
  """The local folder Orbax works in (`directory`) and its mirror in the bucket."""

  def __init__(self, remote_directory, read_only=False):
    import jax  # pylint: disable=g-import-not-at-top
    if jax.process_count() > 1:
      raise UserError(
          f'{remote_directory}: s3:// and az:// workdirs are staged on local disk, which '
          f'works for a single process only, and this run has {jax.process_count()}. Use a '
          'file system every node shares (FSx for Lustre, Azure Managed Lustre, NFS) or a '
          'gs:// workdir, or train on one node.')
    self.remote = storage.normalize(remote_directory).rstrip('/')
    self._fs = storage.filesystem(self.remote)
    self._root = storage.bucket_path(self.remote)
    self._staging = tempfile.mkdtemp(prefix='jaxlab-checkpoints-')
    # Also when a run ends in an error before `close` (a kill -9 leaves it behind).
    atexit.register(shutil.rmtree, self._staging, ignore_errors=True)
    self.directory = os.path.join(self._staging, 'checkpoints')  # what Orbax sees
    os.makedirs(self.directory)
    self._complete = set()  # steps whose every file is in the staging folder
    self._committed = self._list_committed()
    if not read_only:
      self._remove_uncommitted()
    self._pull_step_metadata()
    self._queue = queue.Queue()
    self._failure = None
    self._closed = threading.Event()
    self._thread = threading.Thread(target=self._upload_loop, daemon=True,
                                    name='jaxlab-checkpoint-upload')
    self._thread.start()

  # --- reading -------------------------------------------------------------------

  def fetch(self, step):
    """Makes `step` readable by Orbax: downloads its files (as listed by its marker) if
    only its metadata is here. Raises OSError if the bucket's copy is incomplete."""
    if step in self._complete or step not in self._committed:
      return
    manifest = self._manifest(step)
    download = os.path.join(self._staging, 'download', str(step))
    shutil.rmtree(download, ignore_errors=True)
    names = sorted(manifest['files'])
    for name in names:
      os.makedirs(os.path.dirname(os.path.join(download, name)), exist_ok=True)
    self._fs.get([f'{self._root}/{step}/{name}' for name in names],
                 [os.path.join(download, name) for name in names])
    for name in names:
      size = os.path.getsize(os.path.join(download, name))
      if size != manifest['files'][name]:
        raise OSError(f'{self.remote}/{step}/{name} has {size} bytes, its marker says '
                      f'{manifest["files"][name]}')
    local = os.path.join(self.directory, str(step))
    shutil.rmtree(local, ignore_errors=True)
    os.rename(download, local)
    self._complete.add(step)

  def forget(self, step):
    """Drops the local copy of a step moved away in the bucket (a damaged one)."""
    self.wait()
    shutil.rmtree(os.path.join(self.directory, str(step)), ignore_errors=True)
    self._complete.discard(step)
    self._committed.discard(step)

  # --- writing -------------------------------------------------------------------

  def upload(self, step):
    """Queues `step` for upload once Orbax has finalized it in the staging folder."""
    self._queue.put(int(step))

  def wait(self):
    """Returns once every queued step is committed and dropped steps are gone from the
    bucket; raises UploadFailed if an upload failed."""
    self._queue.join()
    if self._failure is not None:
      failure, self._failure = self._failure, None
      raise failure
    self._prune()

  def close(self):
    """Finishes the queued uploads whose step Orbax finalized (call after Orbax's own
    close) and removes the staging folder. Failures were raised by `wait`."""
    self._closed.set()  # a step that is not there now never will be
    self._queue.join()
    self._queue.put(None)
    shutil.rmtree(self._staging, ignore_errors=True)

  # --- the bucket side -----------------------------------------------------------------

  def _list_committed(self):
    self._fs.invalidate_cache(self._root)
    try:
      markers = self._fs.glob(f'{self._root}/*/{COMMIT_MARKER}')
    except FileNotFoundError:
      return set()
    steps = (marker.rstrip('/').split('/')[-2] for marker in markers)
    return {int(step) for step in steps if step.isdigit()}

  def _remove_uncommitted(self):
    """Deletes what a killed upload left behind (steps without a marker)."""
    try:
      entries = self._fs.ls(self._root, detail=False)
    except FileNotFoundError:
      return
    for entry in entries:
      name = entry.rstrip('/').split('/')[-1]
      if name.isdigit() and int(name) not in self._committed:
        self._fs.rm(f'{self._root}/{name}', recursive=True)

  def _pull_step_metadata(self):
    steps = sorted(self._committed)
    for step in steps:
      os.makedirs(os.path.join(self.directory, str(step)))
    if steps:  # a step whose metadata is missing is left empty: its restore reports it
      self._fs.get([f'{self._root}/{step}/{_STEP_METADATA}' for step in steps],
                   [os.path.join(self.directory, str(step), _STEP_METADATA) for step in steps],
                   on_error='omit')

  def _manifest(self, step):
    return json.loads(self._fs.cat_file(f'{self._root}/{step}/{COMMIT_MARKER}'))

  def _upload_loop(self):
    while True:
      step = self._queue.get()
      try:
        if step is None:
          return
        if self._failure is None:
          self._upload(step)
          self._prune()
      except Exception as error:  # pylint: disable=broad-except
        self._failure = UploadFailed(f'Could not upload the checkpoint at step {step} to '
                                     f'{self.remote}: {type(error).__name__}: {error}')
      finally:
        self._queue.task_done()

  def _upload(self, step):
    local = os.path.join(self.directory, str(step))
    while not os.path.isdir(local):  # Orbax renames a finished step into place
      if self._closed.is_set():
        return  # its save failed: nothing to upload
      time.sleep(0.02)
    files = {}
    for folder, _, names in os.walk(local):
      for name in names:
        path = os.path.join(folder, name)
        files[os.path.relpath(path, local).replace(os.sep, '/')] = os.path.getsize(path)
    prefix = f'{self._root}/{step}'
    self._delete_remote(step)  # an older copy of this step, committed or not
    names = sorted(files)
    self._fs.put([os.path.join(local, name) for name in names],
                 [f'{prefix}/{name}' for name in names])
    marker = dict(step=step, files=files)
    self._fs.pipe_file(f'{prefix}/{COMMIT_MARKER}', json.dumps(marker, sort_keys=True).encode())
    self._committed.add(step)
    self._complete.add(step)

  def _prune(self):
    """Deletes from the bucket the committed steps Orbax has dropped locally."""
    local = {int(name) for name in os.listdir(self.directory) if name.isdigit()}
    for step in sorted(self._committed - local):
      self._delete_remote(step)
      self._committed.discard(step)

  def _delete_remote(self, step):
    prefix = f'{self._root}/{step}'
    try:
      self._fs.rm_file(f'{prefix}/{COMMIT_MARKER}')  # first: the step stops counting
    except FileNotFoundError:
      pass
    try:
      self._fs.rm(prefix, recursive=True)
    except FileNotFoundError:
      pass
    self._fs.invalidate_cache(prefix)
