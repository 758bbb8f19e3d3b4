"""jaxlab.storage on local folders and on gs:// through a local GCS emulator.

The gs:// tests use the `gcs_emulator` / `gcs_workdir` fixtures of
tests/storage_fixtures.py and skip when gcp-storage-emulator or gcsfs is missing.
"""

import json
import logging
import os
import posixpath
import struct

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxlab import storage
from jaxlab.storage import clouds
from jaxlab.workdir import line_writer, tensorboard

try:
  from tests import cloud_emulators, storage_emulators
except ImportError:
  import cloud_emulators
  import storage_emulators


def _records(path):
  return [json.loads(line) for line in storage.read_lines(path)]


def _write_records(path, records, **kwargs):
  writer = line_writer.LineWriter(path, **kwargs)
  for record in records:
    writer.write(json.dumps(record))
  return writer


def _scalar_events(data):
  """(tag, step, value) of every scalar in a TFRecord event file."""
  from tensorboard.compat.proto import event_pb2  # pylint: disable=g-import-not-at-top
  found, offset = [], 0
  while offset < len(data):
    (length,) = struct.unpack('<Q', data[offset:offset + 8])
    event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
    offset += 12 + length + 4  # length, its crc, payload, payload crc
    found += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
  return found


# --- Paths, no emulator needed ---------------------------------------------------------


@pytest.mark.parametrize('path, remote', [
    ('gs://bucket/run', True), ('s3://bucket/run', True), ('/tmp/run', False), ('run', False)])
def test_is_remote(path, remote):
  assert storage.is_remote(path) == remote


def test_local_line_writer_appends_and_resumes(tmp_path):
  path = str(tmp_path / 'metrics.jsonl')
  writer = _write_records(path, [{'step': 1}])
  assert _records(path) == [{'step': 1}]  # local writes are visible at once
  writer.close()
  _write_records(path, [{'step': 2}]).close()
  assert _records(path) == [{'step': 1}, {'step': 2}]


def test_validate_local_workdir_passes(tmp_path):
  storage.validate_workdir(str(tmp_path / 'run'))


@pytest.mark.parametrize('workdir, words', [
    ('hf://user/run', 'not a supported storage'),
    ('gs:///run', 'names no bucket'),
    ('s3:///run', 'names no bucket'),
    ('abfs://runs@myaccount.dfs.core.windows.net/a', 'AZURE_STORAGE_ACCOUNT_NAME=myaccount'),
])
def test_validate_rejects_unsupported_workdirs(workdir, words):
  with pytest.raises(storage.StorageError, match=words):
    storage.validate_workdir(workdir)


def test_abfs_is_read_as_az_and_both_are_staged():
  assert storage.absolute('abfs://container/run') == 'az://container/run'
  assert storage.is_staged('abfs://container/run') and storage.is_staged('s3://b/run')
  assert not storage.is_staged('gs://b/run') and not storage.is_staged('/tmp/run')


@pytest.mark.parametrize('workdir, extra', [('s3://b/run', 's3'), ('az://c/run', 'azure')])
def test_validate_without_the_cloud_package_names_the_extra(monkeypatch, workdir, extra):
  from jaxlab.storage import clouds as cloud_checks  # pylint: disable=g-import-not-at-top
  find_spec = cloud_checks.importlib.util.find_spec
  monkeypatch.setattr(cloud_checks.importlib.util, 'find_spec',
                      lambda name: None if name in ('s3fs', 'adlfs') else find_spec(name))
  with pytest.raises(storage.StorageError, match=rf"pip install 'jaxlab\[{extra}\]'"):
    storage.validate_workdir(workdir)


def test_validate_without_gcsfs_says_how_to_install(monkeypatch):
  monkeypatch.setattr(clouds, 'has_module', lambda name: name != 'gcsfs')
  with pytest.raises(storage.StorageError, match=r'pip install .*gcsfs'):
    storage.validate_workdir('gs://bucket/run')


def test_validate_without_credentials_says_how_to_log_in(monkeypatch, tmp_path):
  pytest.importorskip('google.auth')
  monkeypatch.setattr(clouds, 'has_module', lambda name: True)
  # A credentials file that does not exist fails at once, without a network probe.
  with storage_emulators.patched_env({
      'STORAGE_EMULATOR_HOST': None,
      'GOOGLE_APPLICATION_CREDENTIALS': str(tmp_path / 'missing.json')}):
    with pytest.raises(storage.StorageError, match='gcloud auth application-default login'):
      storage.validate_workdir('gs://bucket/run')


def test_validate_half_configured_emulator_is_refused(monkeypatch):
  monkeypatch.setattr(clouds, 'has_module', lambda name: True)
  with storage_emulators.patched_env({
      'STORAGE_EMULATOR_HOST': 'http://127.0.0.1:1', 'TENSORSTORE_GCS_HTTP_URL': None}):
    with pytest.raises(storage.StorageError, match='TENSORSTORE_GCS_HTTP_URL'):
      storage.validate_workdir('gs://bucket/run')


def test_storage_error_is_a_value_error():
  assert issubclass(storage.StorageError, ValueError)


# --- gs:// against the emulator --------------------------------------------------------


def test_text_round_trip(gcs_workdir):
  path = posixpath.join(gcs_workdir, 'config.json')
  assert not storage.exists(path)
  storage.make_dirs(gcs_workdir)  # a no-op for buckets, must not fail
  storage.write_text(path, '{"lr": 0.1}\n')
  assert storage.exists(path)
  assert storage.read_text(path) == '{"lr": 0.1}\n'
  storage.write_text(path, '{"lr": 0.2}\n')  # overwrite
  assert storage.read_text(path) == '{"lr": 0.2}\n'


def test_remote_line_writer_round_trips_across_flushes(gcs_emulator, gcs_workdir):
  path = posixpath.join(gcs_workdir, 'metrics.jsonl')
  writer = _write_records(path, [{'step': 1}, {'step': 2}])
  writer.flush()
  assert _records(path) == [{'step': 1}, {'step': 2}]
  writer.write(json.dumps({'step': 3}))
  assert len(_records(path)) == 2  # buffered until the next flush
  writer.flush()
  writer.write(json.dumps({'step': 4, 'eval/accuracy': 0.5}))
  writer.close()
  expected = [{'step': 1}, {'step': 2}, {'step': 3}, {'step': 4, 'eval/accuracy': 0.5}]
  assert _records(path) == expected
  # Seen by an independent HTTP client as one JSON-lines object.
  name = path[len(f'gs://{gcs_emulator.bucket}/'):]
  assert [json.loads(line) for line in gcs_emulator.read_object(name).splitlines()] == expected


def test_remote_line_writer_resumes_without_losing_history(gcs_workdir):
  path = posixpath.join(gcs_workdir, 'metrics.jsonl')
  _write_records(path, [{'step': 1}]).close()
  _write_records(path, [{'step': 2}]).close()
  assert _records(path) == [{'step': 1}, {'step': 2}]


def test_remote_line_writer_uploads_after_flush_secs(gcs_workdir):
  path = posixpath.join(gcs_workdir, 'metrics.jsonl')
  writer = _write_records(path, [{'step': 1}], flush_secs=0.0)
  assert _records(path) == [{'step': 1}]  # uploaded by write itself, no flush call
  writer.close()


def test_tensorboard_events_land_in_bucket(gcs_emulator, gcs_workdir):
  logdir = posixpath.join(gcs_workdir, 'tensorboard')
  writer = tensorboard.tensorboard_writer(logdir)
  staging = writer._staging  # pylint: disable=protected-access
  for step in range(3):
    writer.add_scalar('train/loss', 1.0 / (step + 1), step)
  writer.flush()
  prefix = logdir[len(f'gs://{gcs_emulator.bucket}/'):]
  (event_file,) = gcs_emulator.list_objects(prefix)
  assert posixpath.basename(event_file).startswith('events.out.tfevents.')
  writer.add_scalar('train/loss', 0.125, 3)
  writer.close()
  scalars = _scalar_events(gcs_emulator.read_object(event_file))
  assert [(tag, step) for tag, step, _ in scalars] == [('train/loss', s) for s in range(4)]
  np.testing.assert_allclose([v for *_, v in scalars], [1.0, 0.5, 1 / 3, 0.125], rtol=1e-6)
  assert not os.path.exists(staging)  # the local staging folder is gone


def test_copy_file_saves_local_png(gcs_workdir, tmp_path):
  local = tmp_path / 'curves.png'
  local.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(range(256)))
  remote = posixpath.join(gcs_workdir, 'curves.png')
  storage.copy_file(str(local), remote)
  assert storage.exists(remote)
  from etils import epath  # pylint: disable=g-import-not-at-top
  assert epath.Path(remote).read_bytes() == local.read_bytes()


def test_orbax_async_checkpoints_round_trip(gcs_workdir):
  storage.validate_workdir(gcs_workdir)  # a half-set emulator would hang the save instead
  directory = posixpath.join(gcs_workdir, 'checkpoints')
  options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=True)
  # Many leaves: OCDBT then updates its manifest several times per save, which needs the
  # generation headers (a two-leaf tree passes even without them).
  tree = {'w': jnp.arange(6.0).reshape(2, 3), 'b': {'c': jnp.ones(4, jnp.int32)},
          'rng': jax.random.key_data(jax.random.key(0)),
          'layers': [jnp.full((16, 16), i, jnp.float32) for i in range(24)]}
  with ocp.CheckpointManager(directory, options=options) as manager:
    for step in (1, 2, 3):
      state = jax.tree.map(lambda x, s=step: x + s, tree)
      manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({'step': step})))
    manager.wait_until_finished()
    assert manager.latest_step() == 3
    assert manager.all_steps() == [2, 3]  # max_to_keep pruned step 1 in the bucket

  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
  with ocp.CheckpointManager(directory, options=options) as reopened:  # as after a restart
    assert reopened.all_steps() == [2, 3]
    restored = reopened.restore(3, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
  expected = jax.tree.map(lambda x: x + 3, tree)
  jax.tree.map(np.testing.assert_array_equal, restored.state, expected)
  assert restored.state['b']['c'].dtype == jnp.int32
  assert restored.state['rng'].dtype == jnp.uint32
  assert restored.meta == {'step': 3}
  assert not os.path.exists('gs:')  # no stray local folder from a mangled path


def test_validate_existing_bucket_passes_and_leaves_nothing(gcs_emulator, gcs_workdir):
  storage.validate_workdir(gcs_workdir)
  prefix = gcs_workdir[len(f'gs://{gcs_emulator.bucket}/'):]
  assert gcs_emulator.list_objects(prefix) == []  # the probe object was deleted


def test_validate_missing_bucket_is_a_clear_error(gcs_emulator):  # pylint: disable=unused-argument
  with pytest.raises(storage.StorageError,
                     match=r'gs://no-such-bucket does not exist.*gcloud storage buckets create'):
    storage.validate_workdir('gs://no-such-bucket/run1', timeout_s=20)


def test_validate_unreachable_endpoint_times_out(gcs_emulator):  # pylint: disable=unused-argument
  # The abandoned probe thread keeps retrying after the test and would log its final
  # failure (a traceback) when pytest exits: quiet gcsfs for the rest of the session.
  logging.getLogger('gcsfs').setLevel(logging.CRITICAL)
  with cloud_emulators.refused_endpoint() as dead, storage_emulators.patched_env(
      {'STORAGE_EMULATOR_HOST': dead, 'TENSORSTORE_GCS_HTTP_URL': dead}):
    with pytest.raises(storage.StorageError, match='unreachable'):
      storage.validate_workdir(gcs_emulator.url('run'), timeout_s=1)


def test_emulator_restores_environment():
  if storage_emulators.missing_gcs_packages():
    pytest.skip(storage_emulators.missing_gcs_packages())
  names = list(storage_emulators.emulator_env('x'))
  before = {name: os.environ.get(name) for name in names}
  with storage_emulators.gcs_emulator(bucket='other-bucket') as emulator:
    assert os.environ['STORAGE_EMULATOR_HOST'] == emulator.endpoint
    storage.write_text(emulator.url('a.txt'), 'a')
    assert emulator.list_objects() == ['a.txt']
  assert {name: os.environ.get(name) for name in names} == before
