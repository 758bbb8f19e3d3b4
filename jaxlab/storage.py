"""File access for workdirs that may be local folders or gs:// buckets.

Everything goes through `etils.epath`, the layer Orbax itself uses, so checkpoints,
config.json, metrics.jsonl, TensorBoard events and plots all take one route to the
bucket (gcsfs for gs://). Callers never special-case remote paths.

Object stores cannot append, so two writers here differ by destination:
- `LineWriter` appends to a local file, but for a remote one keeps every line in
  memory and rewrites the whole object on `flush()`. An upload replaces an object
  atomically, so a reader sees the old or the new file, never half of one. Reopening
  an existing remote file loads its lines first, so a resumed run keeps its history.
  Cost: each flush uploads the whole file; fine for one record per log step
  (thousands of lines), not for per-example logs.
- `tensorboard_writer` writes events to a local staging folder and copies the changed
  event files to the workdir on `flush()` and `close()`.

`validate_workdir` checks a remote workdir up front (package, credentials, bucket,
write permission) and raises `StorageError` with one paragraph saying what to do.

s3:// is refused: Orbax 0.12.8 turns 's3://b/x' into 's3:/b/x', fails the save and
leaves a local 's3:' folder behind (see docs/cloud_storage.md).
"""

import importlib.util
from importlib import metadata
import os
import posixpath
import shutil
import tempfile
import threading
import time

from etils import epath

SUPPORTED_SCHEMES = ('gs',)
PROBE_TIMEOUT_S = 60.0
_DOCS = 'docs/cloud_storage.md'


def configure():
  """One backend for gs:// whether or not TensorFlow is installed: with TensorFlow,
  epath would use tf.io.gfile, which ignores STORAGE_EMULATOR_HOST and so cannot be
  tested against an emulator. Must run before the first gs:// path is built (epath
  caches the choice): the command line's start-up calls it, and so does every
  function here that takes a path. EPATH_USE_TF=true in the environment opts back in."""
  os.environ.setdefault('EPATH_USE_TF', 'false')


def _path(path):
  configure()
  return epath.Path(path)


class StorageError(ValueError):
  """The workdir cannot be used; the message says why and what to do."""


def scheme(path):
  """'gs' for 'gs://b/x', '' for a local path."""
  text = os.fspath(path)
  return text.split('://', 1)[0] if '://' in text else ''


def is_remote(path):
  return bool(scheme(path))


def absolute(path):
  """Local paths made absolute (Orbax refuses relative ones); remote ones unchanged."""
  configure()  # every entry point makes its workdir absolute before Orbax sees it
  return os.fspath(path) if is_remote(path) else os.path.abspath(os.fspath(path))


def make_dirs(path):
  """Creates a local folder; a no-op for buckets, which have no folders."""
  if not is_remote(path):
    _path(path).mkdir(parents=True, exist_ok=True)


def exists(path):
  return _path(path).exists()


def write_text(path, text):
  _path(path).write_text(text)


def write_bytes(path, data):
  _path(path).write_bytes(data)


def read_text(path):
  return _path(path).read_text()


def read_lines(path):
  """The non-blank lines of a text file, [] if it does not exist."""
  if not exists(path):
    return []
  return [line for line in read_text(path).splitlines() if line.strip()]


def move_tree(source, target):
  """Moves a folder: a rename locally; in a bucket, every object is copied through this
  host (no server-side copy, which not every store or emulator has) before any is
  deleted, so an interrupted move loses nothing."""
  source, target = os.fspath(source), os.fspath(target)
  if not is_remote(source):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.rename(source, target)
    return
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  # epath's own filesystem object, so that its listing cache (which Orbax reads) sees it.
  filesystem = backend.fsspec_backend.fs(source)
  source_path, target_path = (path.split('://', 1)[1].rstrip('/') for path in (source, target))
  for path in filesystem.find(source_path):
    filesystem.pipe_file(f'{target_path}/{path[len(source_path) + 1:]}', filesystem.cat_file(path))
  filesystem.rm(source_path, recursive=True)


def copy_file(local_path, destination):
  """Saves a file made locally (a PNG, an event file) to `destination`, local or remote."""
  with open(local_path, 'rb') as source, _path(destination).open('wb') as target:
    shutil.copyfileobj(source, target)


class LineWriter:
  """Appends lines to a text file, local or in a bucket (see the module docstring).

  Local: every `write` reaches the file at once. Remote: lines are uploaded on
  `flush()`, on `close()`, and by a `write` when `flush_secs` have passed since the
  last upload, so a crash loses at most that window.
  """

  def __init__(self, path, flush_secs=60.0):
    self._path = os.fspath(path)
    self._remote = is_remote(path)
    self._flush_secs = flush_secs
    if self._remote:
      self._lines = read_lines(path)
      self._uploaded = len(self._lines)
      self._last_upload = time.monotonic()
    else:
      self._file = open(path, 'a', encoding='utf-8')

  def write(self, line):
    if not self._remote:
      self._file.write(line + '\n')
      self._file.flush()
      return
    self._lines.append(line)
    if time.monotonic() - self._last_upload >= self._flush_secs:
      self.flush()

  def flush(self):
    if not self._remote:
      self._file.flush()
      return
    if len(self._lines) != self._uploaded:
      write_text(self._path, ''.join(line + '\n' for line in self._lines))
      self._uploaded = len(self._lines)
    self._last_upload = time.monotonic()

  def close(self):
    if self._remote:
      self.flush()
    else:
      self._file.close()


def tensorboard_writer(logdir):
  """A scalar TensorBoard writer for `logdir`; remote logdirs get a synced one."""
  from jaxlab.tensorboard_events import ScalarWriter  # pylint: disable=g-import-not-at-top
  if not is_remote(logdir):
    return ScalarWriter(os.fspath(logdir))
  return SyncedScalarWriter(os.fspath(logdir))


class SyncedScalarWriter:
  """Writes events to a local staging folder; `flush`/`close` copy them to `remote_logdir`.

  TensorBoard's own writers reach gs:// only through TensorFlow's file system; staging
  keeps every write on the epath route that the rest of the workdir takes.
  """

  def __init__(self, remote_logdir):
    from jaxlab.tensorboard_events import ScalarWriter  # pylint: disable=g-import-not-at-top
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


# --- Up-front checks -------------------------------------------------------------------


def validate_workdir(workdir, timeout_s=PROBE_TIMEOUT_S):
  """Fails fast, with a StorageError that says what to do, if `workdir` is unusable.

  Local paths pass (their folder is created later). For gs:// it checks, in order:
  gcsfs is installed; the emulator settings are complete when one is configured;
  Google credentials are found; the bucket exists and a probe object can be written
  and deleted within `timeout_s`.
  """
  kind = scheme(workdir)
  if not kind:
    return
  if kind == 's3':
    raise StorageError(
        f'--workdir={workdir}: s3:// workdirs are not supported yet, because Orbax '
        f'{_orbax_version()} cannot checkpoint to s3:// paths. Use a local folder or a '
        f'gs://bucket/path workdir (see {_DOCS}).')
  if kind not in SUPPORTED_SCHEMES:
    raise StorageError(
        f'--workdir={workdir}: {kind}:// is not a supported storage. Use a local folder '
        f'or gs://bucket/path.')
  bucket, _, prefix = os.fspath(workdir)[len('gs://'):].partition('/')
  if not bucket:
    raise StorageError(f'--workdir={workdir} names no bucket; write gs://BUCKET/PATH.')
  _check_gcs_client(workdir)
  _probe_write(workdir, bucket, timeout_s)


def _orbax_version():
  try:
    return metadata.version('orbax-checkpoint')
  except metadata.PackageNotFoundError:
    return '(not installed)'


def _has_module(name):
  return importlib.util.find_spec(name) is not None


def _check_gcs_client(workdir):
  if not _has_module('gcsfs'):
    raise StorageError(
        f'--workdir={workdir} needs the gcsfs package to reach Google Cloud Storage. '
        f"Install it with `pip install 'jaxlab[gcs]'` (or `pip install gcsfs`) and rerun.")
  emulator = os.environ.get('STORAGE_EMULATOR_HOST')
  if emulator:
    if not os.environ.get('TENSORSTORE_GCS_HTTP_URL'):
      raise StorageError(
          f'STORAGE_EMULATOR_HOST={emulator} is set but TENSORSTORE_GCS_HTTP_URL is not, so '
          f'checkpoint arrays would go to the real Google endpoint and the save would hang '
          f'retrying. Set TENSORSTORE_GCS_HTTP_URL to the same emulator URL, or unset both.')
    return
  import google.auth  # pylint: disable=g-import-not-at-top
  from google.auth import exceptions  # pylint: disable=g-import-not-at-top
  try:
    google.auth.default()
  except exceptions.DefaultCredentialsError as error:
    raise StorageError(
        f'--workdir={workdir} is on Google Cloud Storage but no Google credentials were '
        f'found ({error}). On your machine run `gcloud auth application-default login`; '
        f'elsewhere set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file; on a '
        f'Cloud TPU VM or GCE, give the VM a service account with Storage Object Admin on '
        f'the bucket. See {_DOCS}.') from None


def _probe_write(workdir, bucket, timeout_s):
  """Writes and deletes one small object, in a thread so that a dead endpoint cannot hang us."""
  probe = _path(workdir) / f'.jaxlab-probe-{os.getpid()}-{time.time_ns()}'
  outcome = {}

  def attempt():
    try:
      probe.write_text('jaxlab write probe\n')
      probe.unlink()
    except BaseException as error:  # pylint: disable=broad-except
      outcome['error'] = error

  thread = threading.Thread(target=attempt, daemon=True, name='jaxlab-storage-probe')
  thread.start()
  thread.join(timeout_s)
  if thread.is_alive():
    raise StorageError(
        f'--workdir={workdir}: could not write to gs://{bucket} within {timeout_s:.0f} s; '
        f'the storage endpoint is unreachable or too slow. Check the network (and '
        f'STORAGE_EMULATOR_HOST if you use an emulator) and rerun.')
  error = outcome.get('error')
  if error is not None:
    raise _probe_error(workdir, bucket, error) from None


def _probe_error(workdir, bucket, error):
  text = f'{type(error).__name__}: {error}'
  if isinstance(error, FileNotFoundError) or 'bucket does not exist' in text.lower():
    return StorageError(
        f'--workdir={workdir}: the bucket gs://{bucket} does not exist. Create it with '
        f'`gcloud storage buckets create gs://{bucket} --location=REGION` (a region near '
        f'your accelerators), or fix the bucket name, and rerun.')
  if isinstance(error, PermissionError) or any(word in text for word in ('Forbidden', '403', '401')):
    return StorageError(
        f'--workdir={workdir}: your credentials may not write to gs://{bucket} ({text}). '
        f'Grant the account roles/storage.objectAdmin on the bucket, or log in as an '
        f'account that has it, and rerun.')
  return StorageError(
      f'--workdir={workdir}: a test write to gs://{bucket} failed ({text}). Check the '
      f'bucket, the credentials and the network, and rerun.')
