"""File access for workdirs that may be local folders or buckets: gs://, s3://, az://.

Everything goes through `etils.epath`, the layer Orbax itself uses, so checkpoints,
config.json, metrics.jsonl, TensorBoard events and plots all take one route to the
bucket (fsspec: gcsfs for gs://, s3fs for s3://, adlfs for az://; abfs:// is read as
az://). Callers never special-case remote paths, except the checkpointer, which stages
s3:// and az:// checkpoints locally (`is_staged`, jaxlab/checkpoint/staging.py).

Object stores cannot append: the workdir's writers (jaxlab/workdir/line_writer.py,
jaxlab/workdir/tensorboard.py) rewrite or sync whole objects. `jaxlab.storage.clouds`
checks a remote workdir up front.
"""

import os
import shutil
import threading

from etils import epath

SUPPORTED_SCHEMES = ('gs', 's3', 'az')
# Orbax cannot write these natively (it rewrites 's3://b/x' as 's3:/b/x'); their
# checkpoints are saved locally and uploaded (docs/cloud_storage.md).
STAGED_SCHEMES = ('s3', 'az')
_ALIASES = {'abfs': 'az'}  # adlfs serves both; epath knows only az://


def configure():
  """One backend for gs:// whether or not TensorFlow is installed: with TensorFlow,
  epath would use tf.io.gfile, which ignores STORAGE_EMULATOR_HOST and so cannot be
  tested against an emulator. Must run before the first gs:// path is built (epath
  caches the choice): the command line's start-up calls it, and so does every
  function here that takes a path. EPATH_USE_TF=true in the environment opts back in."""
  os.environ.setdefault('EPATH_USE_TF', 'false')


def as_epath(path):
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
    as_epath(path).mkdir(parents=True, exist_ok=True)


def exists(path):
  return as_epath(path).exists()


def write_text(path, text):
  as_epath(path).write_text(text)


def write_bytes(path, data):
  as_epath(path).write_bytes(data)


def read_text(path):
  return as_epath(path).read_text()


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
  with open(local_path, 'rb') as source, as_epath(destination).open('wb') as target:
    shutil.copyfileobj(source, target)


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
