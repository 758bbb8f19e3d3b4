"""Checkpoint digests: damaged steps are never loaded; train falls back, eval/predict stop."""

import json
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from etils import epath

from jaxlab.checkpoint import digest
from jaxlab import storage  # noqa: F401  (sets epath to gcsfs, which the emulator serves)
from tests.conftest import ROOT, restore_params, run_cli

SMOKE = ['--config=experiments/digits_cnn.py:smoke', '--config.num_steps=22',
         '--config.checkpoint_every_steps=11']


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
  """A finished run with checkpoints at steps 11 and 22 (never modified by tests)."""
  workdir = tmp_path_factory.mktemp('pristine')
  run_cli('train', *SMOKE, f'--workdir={workdir}', check=True)
  return workdir


@pytest.fixture
def copy_of(pristine, tmp_path):  # pylint: disable=redefined-outer-name
  workdir = tmp_path / 'run'
  shutil.copytree(pristine, workdir)
  return workdir


def _data_files(step_dir):
  return [p for p in step_dir.rglob('*') if p.is_file() and p.parent.name == 'd'
          and 'ocdbt.process_' in str(p)]


def flip_bytes(step_dir, every=64):
  """Inverts one byte in every `every` of every array data file of a checkpoint step, so
  every array of more than `every` bytes is hit: the parameters that eval and predict read
  as well as the optimizer state that only training reads."""
  files = _data_files(pathlib.Path(step_dir))
  assert files, f'no array data files under {step_dir}'
  for path in files:
    data = bytearray(path.read_bytes())
    for i in range(every // 2, len(data), every):
      data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(step_dir, keep=64):
  """Cuts every array data file of a step down to its first `keep` bytes."""
  files = _data_files(pathlib.Path(step_dir))
  assert files
  for path in files:
    path.write_bytes(path.read_bytes()[:keep])


def test_flipped_bytes_make_eval_exit_2_naming_the_step_and_the_intact_ones(copy_of):
  flip_bytes(copy_of / 'checkpoints/22')
  result = run_cli('eval', f'--workdir={copy_of}', '--checkpoint=22')
  assert result.returncode == 2, result.stdout + result.stderr
  assert 'step 22 is damaged' in result.stderr
  assert 'Intact checkpoints: 11' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not (copy_of / 'eval_22.json').exists()


def test_truncated_files_make_predict_exit_2_without_a_traceback(copy_of, tmp_path):
  from PIL import Image
  image = tmp_path / 'digit.png'
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
  truncate(copy_of / 'checkpoints/22')
  result = run_cli('predict', f'--workdir={copy_of}', '--checkpoint=latest', image)
  assert result.returncode == 2, result.stdout + result.stderr
  assert 'step 22 is damaged' in result.stderr and 'Traceback' not in result.stderr
  assert 'Intact checkpoints: 11' in result.stderr


def test_changed_metadata_is_detected(copy_of):
  meta_file = copy_of / 'checkpoints/22/meta/metadata'
  meta = json.loads(meta_file.read_text())
  meta['seed'] += 1  # still valid JSON, still complete: only the digest can tell
  meta_file.write_text(json.dumps(meta))
  result = run_cli('eval', f'--workdir={copy_of}', '--checkpoint=22')
  assert result.returncode == 2
  assert 'metadata differs from its saved digest' in result.stderr


@pytest.mark.slow
def test_train_sets_a_damaged_step_aside_and_resumes_bitwise_from_the_intact_one(
    pristine, copy_of):
  expected, _ = restore_params(pristine, 22)
  flip_bytes(copy_of / 'checkpoints/22')
  result = run_cli('train', *SMOKE, f'--workdir={copy_of}', check=True)
  warnings = [line for line in result.stderr.splitlines() if 'warning' in line]
  assert len(warnings) == 1 and 'step 22 is damaged' in warnings[0]
  assert 'Resuming from the checkpoint at step 11' in result.stdout
  moved = list((copy_of / 'checkpoints_damaged').iterdir())
  assert [p.name.split('-')[0] for p in moved] == ['22']  # kept, not deleted
  assert _data_files(moved[0])
  retrained, step = restore_params(copy_of, 22)
  assert step == 22
  for path, value in digest.tree_digests(expected).items():
    assert digest.tree_digests(retrained)[path] == value, path
  np.testing.assert_array_equal(retrained['head']['kernel'], expected['head']['kernel'])


def test_digest_changes_with_any_bit_and_with_the_order():
  rng = np.random.default_rng(0)
  arrays = dict(f32=rng.normal(size=(33, 7)).astype(np.float32),
                bf16=jnp.asarray(rng.normal(size=(5, 9)), jnp.bfloat16),
                u8=rng.integers(0, 255, (4, 4, 3), dtype=np.uint8),
                flags=rng.integers(0, 2, (17,)).astype(bool), step=np.int32(7))
  base = digest.tree_digests({k: jnp.asarray(v) for k, v in arrays.items()})
  assert len(set(base.values())) == len(base)
  for name, value in arrays.items():
    flat = np.array(value).reshape(-1).copy()
    for index in {0, flat.size // 2, flat.size - 1}:
      changed = flat.copy()
      if flat.dtype == bool:
        changed[index] = not changed[index]
      else:
        bits = changed.view(np.dtype(f'u{changed.dtype.itemsize}'))
        bits[index] ^= 1 << (8 * changed.dtype.itemsize - 1)  # the top bit
      tree = dict(arrays, **{name: changed.reshape(np.shape(value))})
      assert digest.tree_digests({k: jnp.asarray(v) for k, v in tree.items()})[name] != base[name]
    if flat.size > 1:
      swapped = flat.copy()
      swapped[[0, -1]] = swapped[[-1, 0]]
      if not np.array_equal(swapped, flat):
        tree = dict(arrays, **{name: swapped.reshape(np.shape(value))})
        assert digest.tree_digests({k: jnp.asarray(v) for k, v in tree.items()})[name] != \
            base[name]


def test_host_digests_equal_the_compiled_digests_for_every_dtype():
  rng = np.random.default_rng(1)
  tree = dict(f32=rng.normal(size=(33, 7)).astype(np.float32),
              bf16=jnp.asarray(rng.normal(size=(5, 9)), jnp.bfloat16),
              f16=rng.normal(size=(6,)).astype(np.float16),
              u8=rng.integers(0, 255, (4, 4, 3), dtype=np.uint8),
              i16=rng.integers(-300, 300, (11,), dtype=np.int16),
              flags=rng.integers(0, 2, (17,)).astype(bool), step=np.int32(7),
              key=jax.random.key(3), raw_key=jax.random.PRNGKey(4),
              empty=np.zeros((0, 3), np.float32))
  on_device = {k: jnp.asarray(v) for k, v in tree.items()}
  assert digest.host_digests(on_device) == digest.device_digests(on_device)
  assert digest.host_digests(tree) == digest.device_digests(on_device)
  with jax.enable_x64(True):  # 64-bit words split in two, in the same order
    wide = dict(f64=rng.normal(size=(3, 5)), i64=np.arange(-4, 9, dtype=np.int64) << 40)
    assert digest.host_digests(wide) == digest.device_digests(
        {k: jnp.asarray(v) for k, v in wide.items()})


def test_digest_is_the_same_on_one_device_and_sharded_over_four():
  probe = '\n'.join([
      'import jax, numpy as np',
      'from jax.sharding import NamedSharding, PartitionSpec as P',
      'from jaxlab.checkpoint import digest',
      'x = np.arange(4 * 6 * 5, dtype=np.float32).reshape(24, 5) / 7',
      'one = digest.device_digests({"x": jax.device_put(x, jax.devices()[0])})',
      'mesh = jax.make_mesh((4,), ("d",))',
      'sharded = {"x": jax.device_put(x, NamedSharding(mesh, P("d")))}',
      'four = digest.device_digests(sharded)',
      'assert digest.host_digests(sharded) == four',
      'assert len(jax.devices()) == 4',
      'print(one["x"], four["x"])',
  ])
  result = subprocess.run(
      [sys.executable, '-c', probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={**__import__('os').environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=4'})
  assert result.returncode == 0, result.stderr
  one, four = result.stdout.split()
  assert one == four and len(one) == 16


@pytest.mark.slow
def test_damaged_step_in_a_bucket_is_reported_and_set_aside(gcs_workdir):
  run_cli('train', *SMOKE, f'--workdir={gcs_workdir}', check=True)
  files = list((epath.Path(gcs_workdir) / 'checkpoints/22/state/ocdbt.process_0/d').iterdir())
  assert files
  for path in files:
    data = bytearray(path.read_bytes())
    for i in range(32, len(data), 64):  # as flip_bytes: every array is hit
      data[i] ^= 0xFF
    path.write_bytes(bytes(data))
  evaluation = run_cli('eval', f'--workdir={gcs_workdir}', '--checkpoint=22')
  assert evaluation.returncode == 2 and 'step 22 is damaged' in evaluation.stderr
  resumed = run_cli('train', *SMOKE, f'--workdir={gcs_workdir}', check=True)
  assert 'Resuming from the checkpoint at step 11' in resumed.stdout
  damaged = epath.Path(gcs_workdir) / 'checkpoints_damaged'
  assert [p.name.split('-')[0] for p in damaged.iterdir()] == ['22']
  assert run_cli('eval', f'--workdir={gcs_workdir}', '--checkpoint=22').returncode == 0


def test_restoring_a_checkpoint_unpickles_nothing(pristine, monkeypatch):
  import pickle
  from jaxlab.inference import trained_run as inference

  def refuse(*args, **kwargs):
    raise AssertionError('a checkpoint read tried to unpickle')

  monkeypatch.setattr(pickle, 'loads', refuse)
  monkeypatch.setattr(pickle, 'load', refuse)
  monkeypatch.setattr(pickle, 'Unpickler', refuse)
  run = inference.load(str(pristine), 'latest')
  assert run.step == 22
  assert np.isfinite(np.asarray(run.variables.params['head']['kernel'])).all()


def test_digests_in_slices_equal_the_whole_tree_digests():
  rng = np.random.default_rng(0)
  tree = {'w': jnp.asarray(rng.normal(size=(37, 5)), jnp.float32),
          'b': jnp.asarray(rng.normal(size=(9, 3)), jnp.bfloat16),
          'n': jnp.arange(11, dtype=jnp.int32), 's': jnp.float32(2.5)}
  whole = digest.tree_digests(tree)
  # 64-byte slices: several rows per slice, a partial last slice, positions offset.
  assert digest.tree_digests_in_slices(tree, chunk_bytes=64) == whole
  changed = dict(tree, w=tree['w'].at[36, 4].add(1.0))  # the last slice's last word
  assert digest.tree_digests_in_slices(changed, chunk_bytes=64)['w'] != whole['w']
