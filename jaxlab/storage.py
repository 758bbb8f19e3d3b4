"""File access for workdirs that may be local folders or buckets: gs://, s3://, az://.

Everything goes through `etils.epath`, the layer Orbax itself uses, so checkpoints,
config.json, metrics.jsonl, TensorBoard events and plots all take one route to the
bucket (fsspec: gcsfs for gs://, s3fs for s3://, adlfs for az://; abfs:// is read as
az://). Callers never special-case remote paths, except the checkpointer, which stages
s3:// and az:// checkpoints locally (`is_staged`, jaxlab/checkpoint_staging.py).

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
write permission) and raises `StorageError` with one paragraph saying what to do; the
S3 and Azure halves live in jaxlab/cloud_checks.py.
"""

import importlib.util
import os
import posixpath
import shutil
import tempfile
import threading
import time

from etils import epath

SUPPORTED_SCHEMES = ('gs', 's3', 'az')
# Orbax cannot write these natively (it rewrites 's3://b/x' as 's3:/b/x'); their
# checkpoints are saved locally and uploaded (docs/cloud_storage.md).
STAGED_SCHEMES = ('s3', 'az')
_ALIASES = {'abfs': 'az'}  # adlfs serves both; epath knows only az://
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
  return epath.Path(normalize(path))


class StorageError(ValueError):
  """The workdir cannot be used; the message says why and what to do."""


def scheme(path):
  """'gs' for 'gs://b/x', '' for a local path."""
  text = os.fspath(path)
  return text.split('://', 1)[0] if '://' in text else ''


def is_remote(path):
  return bool(scheme(path))


def is_staged(path):
  """True where checkpoints go through a local staging folder (s3://, az://)."""
  return scheme(normalize(path)) in STAGED_SCHEMES


def normalize(path):
  """abfs://c/x as az://c/x; everything else unchanged."""
  text = os.fspath(path)
  kind = scheme(text)
  return f'{_ALIASES[kind]}://{text[len(kind) + 3:]}' if kind in _ALIASES else text


def absolute(path):
  """Local paths made absolute (Orbax refuses relative ones); remote ones normalized."""
  configure()  # every entry point makes its workdir absolute before Orbax sees it
  return normalize(path) if is_remote(path) else os.path.abspath(os.fspath(path))


def filesystem(path):
  """epath's own fsspec filesystem for a remote path, so that its listing cache (which
  Orbax reads) sees what we write."""
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  configure()
  return backend.fsspec_backend.fs(normalize(path))


def bucket_path(path):
  """'bucket/x/y' for 'gs://bucket/x/y': the form fsspec filesystems list and return."""
  return normalize(path).split('://', 1)[1].rstrip('/')


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
  store = filesystem(source)
  source_path, target_path = bucket_path(source), bucket_path(target)
  for path in store.find(source_path):
    store.pipe_file(f'{target_path}/{path[len(source_path) + 1:]}', store.cat_file(path))
  store.rm(source_path, recursive=True)


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

  Local paths pass (their folder is created later). For a bucket it checks, in order:
  the client package is installed; credentials are found (for gs://, also that the
  emulator settings are complete when one is configured); the bucket exists and a
  probe object can be written and deleted within `timeout_s`.
  """
  kind = scheme(normalize(workdir))
  if not kind:
    return
  if kind not in SUPPORTED_SCHEMES:
    raise StorageError(
        f'--workdir={workdir}: {kind}:// is not a supported storage. Use a local folder, '
        f'gs://bucket/path, s3://bucket/path or az://container/path (see {_DOCS}).')
  bucket = bucket_path(workdir).partition('/')[0]
  if not bucket:
    raise StorageError(f'--workdir={workdir} names no bucket; write {kind}://BUCKET/PATH.')
  if kind == 'gs':
    _check_gcs_client(workdir)
    _probe_write(workdir, timeout_s, _probe_error, _UNREACHABLE_HINTS['gs'])
    return
  from jaxlab import cloud_checks  # pylint: disable=g-import-not-at-top
  check = cloud_checks.CHECKS[kind]
  check.client(workdir, timeout_s)
  _probe_write(workdir, timeout_s, check.probe_error, check.unreachable_hint)


_UNREACHABLE_HINTS = dict(gs='STORAGE_EMULATOR_HOST if you use an emulator')


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


def _probe_write(workdir, timeout_s, explain, unreachable_hint):
  """Writes and deletes one small object, in a thread so that a dead endpoint cannot hang
  us; `explain(workdir, bucket, error)` turns a failure into a StorageError."""
  kind, bucket = scheme(normalize(workdir)), bucket_path(workdir).partition('/')[0]
  probe = _path(workdir) / f'.jaxlab-probe-{os.getpid()}-{time.time_ns()}'

  def write_and_delete():
    probe.write_text('jaxlab write probe\n')
    probe.unlink()

  try:
    within(timeout_s, write_and_delete)
  except TimeoutError:
    raise StorageError(
        f'--workdir={workdir}: could not write to {kind}://{bucket} within {timeout_s:.0f} s; '
        f'the storage endpoint is unreachable or too slow. Check the network (and '
        f'{unreachable_hint}) and rerun.') from None
  except Exception as error:  # pylint: disable=broad-except
    raise explain(workdir, bucket, error) from None


def within(timeout_s, function):
  """function()'s result, or TimeoutError if it takes longer than `timeout_s`: run in a
  daemon thread, so that a dead endpoint (or a credential lookup waiting on an instance
  metadata server) cannot hang the caller."""
  outcome = {}

  def attempt():
    try:
      outcome['value'] = function()
    except BaseException as error:  # pylint: disable=broad-except
      outcome['error'] = error

  thread = threading.Thread(target=attempt, daemon=True, name='jaxlab-storage-call')
  thread.start()
  thread.join(timeout_s)
  if thread.is_alive():
    raise TimeoutError(f'no answer within {timeout_s:.0f} s')
  if 'error' in outcome:
    raise outcome['error']
  return outcome.get('value')


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
