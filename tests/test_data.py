"""Data sets and the on-device pipeline."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import data as data_lib
from jaxlab.data import augment, order, pipeline, sources
from jaxlab.errors import UserError
from tests.conftest import load_config, run_cli


def _all(source):
  return sources.read_rows(source, 0, len(source))


def test_digits_split_is_fixed_and_stratified():
  first = data_lib.load(load_config('digits_cnn').data)
  second = data_lib.load(load_config('digits_cnn').data)
  train, test = _all(first.train), _all(first.test)
  assert len(train['label']) == 1437 and len(test['label']) == 360
  np.testing.assert_array_equal(test['image'], _all(second.test)['image'])
  train_share = np.bincount(train['label']) / len(train['label'])
  test_share = np.bincount(test['label']) / len(test['label'])
  np.testing.assert_allclose(train_share, test_share, atol=0.01)
  assert train['image'].dtype == np.uint8 and train['image'].max() == 16


def test_digits_split_is_kept_in_the_cache_and_remade_when_damaged(tmp_path):
  from jaxlab.data import digits
  config = load_config('digits_cnn', data__cache_dir=str(tmp_path)).data
  expected = digits.split()  # scikit-learn's, made here
  for _ in range(2):  # written, then read back
    splits = data_lib.load(config)
    np.testing.assert_array_equal(_all(splits.train)['image'], expected['train_x'])
    np.testing.assert_array_equal(_all(splits.test)['label'], expected['test_y'])
  [cached] = (tmp_path / 'digits').iterdir()
  cached.write_bytes(cached.read_bytes()[:100])  # truncated
  np.testing.assert_array_equal(_all(data_lib.load(config).test)['image'], expected['test_x'])
  assert [p.name for p in (tmp_path / 'digits').iterdir()] == [cached.name]


@pytest.mark.parametrize('like,shape', [('mnist', (28, 28, 1)), ('cifar10', (32, 32, 3)),
                                        ('digits', (8, 8, 1))])
def test_synthetic_takes_the_experiments_shapes(like, shape):
  config = load_config('mnist_mlp', data__name='synthetic', data__synthetic_like=like,
                       data__num_train=64, data__num_test=32)
  splits = data_lib.load(config.data)
  train, test = _all(splits.train), _all(splits.test)
  assert train['image'].shape == (64, *shape) and test['image'].shape == (32, *shape)
  assert set(np.unique(train['label'])) <= set(range(10))
  assert splits.info.spec()['image'] == (shape, np.dtype(np.uint8))


def test_tfds_path_through_mock_data():
  import tensorflow_datasets as tfds
  config = load_config('mnist_mlp')
  with tfds.testing.mock_data(num_examples=40):
    splits = data_lib.load(config.data)
    train = _all(splits.train)
  assert train['image'].shape[1:] == (28, 28, 1)
  assert train['image'].dtype == np.uint8 and train['label'].dtype == np.int32
  assert splits.info.num_classes == 10 and splits.info.class_names[3] == '3'


def test_tfds_experiment_trains_on_mock_data(tmp_path):
  import tensorflow_datasets as tfds
  from jaxlab.train import loop
  config = load_config('cifar10_cnn', data__num_train=None, data__num_test=None,
                       num_steps=8, eval_every_steps=0, checkpoint_every_steps=0)
  with tfds.testing.mock_data(num_examples=64):
    summary = loop.run(config, str(tmp_path))
  assert summary['step'] == 8
  assert summary['eval']['confusion_matrix'] and 0 <= summary['eval']['accuracy'] <= 1


def test_unprepared_tfds_data_set_fails_fast_with_instructions(tmp_path):
  started = time.time()
  result = run_cli('train', '--config=experiments/mnist_mlp.py:smoke', f'--workdir={tmp_path}/w',
                   f'--config.data.data_dir={tmp_path}/empty')
  assert result.returncode == 2
  assert 'tfds build mnist' in result.stderr and 'data_dir' in result.stderr
  assert 'Traceback' not in result.stderr
  assert time.time() - started < 60  # no download retries
  with pytest.raises(UserError, match='not prepared'):
    data_lib.load(load_config('mnist_mlp', data__data_dir=str(tmp_path / 'empty')).data)


def test_unknown_data_set_names_the_known_ones():
  with pytest.raises(UserError, match='digits'):
    data_lib.load(load_config('digits_cnn', data__name='imagenet').data)


def test_block_indices_walk_each_epoch_permutation_in_order():
  seed, n, batch = 3, 50, 8
  steps_per_epoch = pipeline.steps_per_epoch(n, batch)  # 6, the remainder is dropped
  perms = {e: order.epoch_permutation(seed, e, n) for e in range(4)}
  for first_step, length in ((0, 6), (4, 5), (5, 13), (11, 1)):
    count = pipeline.epochs_spanned(length, steps_per_epoch)
    first_epoch = first_step // steps_per_epoch
    stacked = jnp.stack([perms[first_epoch + k] for k in range(count)])
    indices = np.asarray(pipeline.block_indices(stacked, jnp.int32(first_step), length,
                                                steps_per_epoch, batch))
    for offset in range(length):
      step = first_step + offset
      np.testing.assert_array_equal(indices[offset],
                                    order.batch_rows(seed, step, steps_per_epoch, batch, n))


def test_epoch_permutations_depend_on_seed_and_epoch_only():
  a = order.epoch_permutation(0, 2, 100)
  assert np.array_equal(a, order.epoch_permutation(0, 2, 100))
  assert sorted(a) == list(range(100))
  assert not np.array_equal(a, order.epoch_permutation(0, 3, 100))
  assert not np.array_equal(a, order.epoch_permutation(1, 2, 100))


def test_augmentations_keep_shape_and_content():
  images = jnp.arange(2 * 6 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 6, 1)
  flipped = augment.random_flip(images, jax.random.PRNGKey(0))
  for original, out in zip(images, flipped):
    assert jnp.array_equal(out, original) or jnp.array_equal(out, original[:, ::-1])
  cropped = augment.random_crop(images, jax.random.PRNGKey(1), padding=2)
  assert cropped.shape == images.shape
  # every cropped pixel is either padding (0) or a pixel of the original image
  assert set(np.unique(cropped)) <= set(np.unique(images)) | {0.0}


def test_local_rows_and_placement_cover_the_padded_array():
  from jax.sharding import NamedSharding, PartitionSpec as P
  mesh = jax.make_mesh((1,), ('data',), axis_types=(jax.sharding.AxisType.Auto,))
  sharding = NamedSharding(mesh, P('data'))
  assert pipeline.local_row_range(sharding, 10) == (0, 10)
  local = np.arange(7 * 2).reshape(7, 2)
  placed = np.asarray(pipeline.place_rows(local, 0, 8, sharding))
  np.testing.assert_array_equal(placed[:7], local)
  np.testing.assert_array_equal(placed[7], [0, 0])  # padding
