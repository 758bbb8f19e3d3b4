"""TFDS random-access sources, parallel decode and the decoded cache.

A small data set is built with TFDS's own builder machinery in ArrayRecord format
(no download), one of its PNGs broken on purpose; mocked data sets cover `load`.
"""

import glob
import io
import json
import os
import pickle

import numpy as np
import pytest

from jaxlab.data import decoded_cache, sources, tfds_images, tfds_source
from tests.conftest import load_config

NUM_TRAIN, NUM_TEST, BROKEN = 600, 100, 37  # test record BROKEN holds a broken PNG


def _builder_class():
  import tensorflow_datasets as tfds

  class JaxlabTinyImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          'image': tfds.features.Image(shape=(8, 8, 1)),
          'label': tfds.features.ClassLabel(num_classes=10)}),
          disable_shuffling=True)  # record i is example i

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples(0, NUM_TRAIN, None),
              'test': self._generate_examples(1, NUM_TEST, BROKEN)}

    def _generate_examples(self, seed, count, broken):  # pylint: disable=arguments-differ
      rng = np.random.default_rng(seed)
      for i in range(count):
        image = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        yield i, {'image': io.BytesIO(b'\x89PNG not really' if i == broken else _png(image)),
                  'label': i % 10}

  return JaxlabTinyImages


def _png(image):
  from PIL import Image
  encoded = io.BytesIO()
  Image.fromarray(image).save(encoded, format='PNG')  # TFDS would import TensorFlow to encode
  return encoded.getvalue()


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('tfds'))
  _builder_class()(data_dir=path, file_format='array_record').download_and_prepare()
  return path


@pytest.fixture
def train(data_dir):
  return tfds_source.source('jaxlab_tiny_images', 'train', data_dir)


def test_source_reads_records_as_numpy_and_pickles(train):
  example = train[5]
  assert len(train) == NUM_TRAIN
  assert example['image'].shape == (8, 8, 1) and example['image'].dtype == np.uint8
  assert example['label'].dtype == np.int32 and example['label'] == 5
  again = pickle.loads(pickle.dumps(train))
  assert again._reader is None  # reopened lazily by the process that unpickles it
  np.testing.assert_array_equal(again[5]['image'], example['image'])


def test_undecoded_source_keeps_the_png_bytes(data_dir, train):
  from PIL import Image
  encoded = tfds_source.source('jaxlab_tiny_images', 'train', data_dir, decode=False)
  data = encoded[5]['image']
  assert isinstance(data, bytes) and data.startswith(b'\x89PNG')
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)))[..., None],
                                train[5]['image'])


def test_broken_record_raises_bad_record_with_its_index(data_dir):
  test = tfds_source.source('jaxlab_tiny_images', 'test', data_dir)
  with pytest.raises(sources.BadRecord) as caught:
    test[BROKEN]
  assert caught.value.index == BROKEN
  with pytest.raises(sources.BadRecord) as caught:
    test.__getitems__(range(30, 40))
  assert caught.value.index == BROKEN
  with pytest.raises(sources.BadRecord) as caught:
    decoded_cache.decode_rows(test, 0, NUM_TEST)
  assert caught.value.index == BROKEN


def test_parallel_decode_equals_serial_decode(train, monkeypatch):
  monkeypatch.setattr(decoded_cache, 'MIN_PARALLEL_ROWS', 100)
  monkeypatch.setattr(decoded_cache, 'MIN_CHUNK_ROWS', 100)
  assert len(decoded_cache._chunks(0, NUM_TRAIN, 2)) > 1
  serial = decoded_cache.decode_rows(train, 10, NUM_TRAIN, workers=1)
  parallel = decoded_cache.decode_rows(train, 10, NUM_TRAIN, workers=2)
  for key in ('image', 'label'):
    np.testing.assert_array_equal(parallel[key], serial[key])
  assert serial['image'].shape == (NUM_TRAIN - 10, 8, 8, 1)
  np.testing.assert_array_equal(serial['image'][0], train[10]['image'])


def test_cache_is_written_once_then_memory_mapped(train, tmp_path, monkeypatch):
  first = decoded_cache.cached_rows(train, cache_dir=str(tmp_path))
  entries = os.listdir(tmp_path / 'jaxlab_tiny_images')
  assert len(entries) == 1 and entries[0].startswith('1.0.0-train-0-600-of-600-')

  def no_decoding(*args, **kwargs):
    raise AssertionError('decoded again')
  monkeypatch.setattr(decoded_cache, 'decode_rows', no_decoding)
  second = decoded_cache.cached_rows(train, cache_dir=str(tmp_path))
  part = decoded_cache.cached_rows(train, 100, 200, cache_dir=str(tmp_path))  # from the whole
  assert isinstance(second['image'], np.memmap) and not second['image'].flags.writeable
  for key in ('image', 'label'):
    np.testing.assert_array_equal(second[key], first[key])
    np.testing.assert_array_equal(part[key], first[key][100:200])


def test_interrupted_write_leaves_no_entry(train, tmp_path, monkeypatch):
  real = decoded_cache.decode_rows

  def killed(*args, **kwargs):
    real(*args, **kwargs)
    raise KeyboardInterrupt
  monkeypatch.setattr(decoded_cache, 'decode_rows', killed)
  with pytest.raises(KeyboardInterrupt):
    decoded_cache.cached_rows(train, cache_dir=str(tmp_path))
  assert os.listdir(tmp_path / 'jaxlab_tiny_images') == []
  monkeypatch.setattr(decoded_cache, 'decode_rows', real)
  # A folder left by a killed process (dead pid on this machine) is cleared away.
  key = decoded_cache._key(train, 0, NUM_TRAIN, None)
  import socket
  abandoned = tmp_path / 'jaxlab_tiny_images' / f'{key}.tmp-{socket.gethostname()}-999999999-ab'
  abandoned.mkdir()
  rows = decoded_cache.cached_rows(train, cache_dir=str(tmp_path))
  assert os.listdir(tmp_path / 'jaxlab_tiny_images') == [key]
  np.testing.assert_array_equal(rows['label'], np.arange(NUM_TRAIN) % 10)


def test_a_second_writer_reads_the_first_writers_entry(train, tmp_path):
  folder = str(tmp_path / 'jaxlab_tiny_images' / decoded_cache._key(train, 0, 50, None))
  first = decoded_cache._write(train, 0, 50, None, folder, 2**30, 1)
  second = decoded_cache._write(train, 0, 50, None, folder, 2**30, 1)  # rename loses
  np.testing.assert_array_equal(first['image'], second['image'])
  assert os.listdir(tmp_path / 'jaxlab_tiny_images') == [os.path.basename(folder)]


def test_key_changes_with_split_version_rows_and_files(data_dir, train):
  test = tfds_source.source('jaxlab_tiny_images', 'test', data_dir)
  key = decoded_cache._key(train, 0, 50, None)
  assert decoded_cache._key(test, 0, 50, None) != key
  assert decoded_cache._key(train, 0, 51, None) != key
  assert decoded_cache._key(train, 0, 50, ('image',)) != key

  class OtherVersion(tfds_source.TfdsSource):
    info = property(lambda self: _Info('1.0.1'))
  assert decoded_cache._key(OtherVersion('jaxlab_tiny_images', 'train', data_dir), 0, 50,
                            None) != key


class _Info:

  def __init__(self, version):
    self.version = version


def test_a_split_larger_than_the_limit_is_decoded_but_not_cached(train, tmp_path):
  rows = decoded_cache.cached_rows(train, cache_dir=str(tmp_path), max_bytes=1000)
  assert rows['image'].shape == (NUM_TRAIN, 8, 8, 1)
  assert not (tmp_path / 'jaxlab_tiny_images').exists() or not os.listdir(
      tmp_path / 'jaxlab_tiny_images')


def test_mocked_source_reads_and_pickles_but_is_never_cached(tmp_path):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=20):
    mocked = tfds_source.source('mnist', 'train')
    again = pickle.loads(pickle.dumps(mocked))
    np.testing.assert_array_equal(again[3]['image'], mocked[3]['image'])
    assert mocked[3]['image'].shape == (28, 28, 1) and mocked.files() is None
    rows = decoded_cache.cached_rows(mocked, cache_dir=str(tmp_path))
  assert rows['image'].shape == (20, 28, 28, 1) and os.listdir(tmp_path) == []


def test_load_reads_only_the_rows_asked_for_on_mock_data(tmp_path):
  import tensorflow_datasets as tfds
  config = load_config('mnist_mlp', data__num_train=None, data__num_test=None,
                       data__cache_dir=str(tmp_path))
  with tfds.testing.mock_data(num_examples=40):
    splits = tfds_images.load(config.data)
    rows = splits.train.rows(10, 30)
    train = tfds.data_source('mnist', split='train')
    expected = np.stack([train[i]['image'] for i in range(10, 30)])
  assert rows['image'].dtype == np.uint8 and rows['label'].dtype == np.int32
  np.testing.assert_array_equal(rows['image'], expected)
  assert len(splits.train) == 40 and len(splits.test) == 40
  assert splits.info.num_classes == 10 and splits.info.image_shape == (28, 28, 1)


def test_load_through_the_cache(data_dir, tmp_path):
  config = load_config('mnist_mlp', data__num_train=None, data__num_test=None)
  config.unlock()
  config.data.name, config.data.data_dir = 'jaxlab_tiny_images', data_dir
  config.data.cache_dir = str(tmp_path)
  first = tfds_images.load(config.data)
  second = tfds_images.load(config.data)
  whole = second.train.rows(0, len(second.train))
  assert isinstance(whole['image'], np.memmap) or isinstance(
      getattr(whole['image'], 'base', None), np.memmap)
  np.testing.assert_array_equal(first.train.rows(0, NUM_TRAIN)['image'], whole['image'])
  test = sources.head(second.test, 30)  # before the broken record
  assert sources.read_rows(test, 0, len(test))['image'].shape == (30, 8, 8, 1)
  entries = [f for f in os.listdir(tmp_path / 'jaxlab_tiny_images') if not f.startswith('index-')]
  assert len(entries) == 2  # train whole, test[:30]


def _tiny_config(data_dir, cache_dir):
  config = load_config('mnist_mlp', data__num_train=None, data__num_test=None)
  config.unlock()
  config.data.name, config.data.data_dir = 'jaxlab_tiny_images', data_dir
  config.data.cache_dir = str(cache_dir)
  return config


def _fill_cache(data_dir, tmp_path):
  """Loads the tiny set and caches both whole splits (the test split's broken record
  replaced, as a valid data set would have it)."""
  splits = tfds_images.load(_tiny_config(data_dir, tmp_path).data)
  splits.train.rows(0, NUM_TRAIN)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(splits.test.source, '__getitems__', lambda indices: [
        {'image': np.zeros((8, 8, 1), np.uint8), 'label': np.int32(i % 10)} for i in indices])
    patch.setattr(decoded_cache, '_reopens_elsewhere', lambda source: False)
    splits.test.rows(0, NUM_TEST)
  return splits


def test_a_cached_load_needs_no_tfds(data_dir, tmp_path, monkeypatch):
  first = _fill_cache(data_dir, tmp_path)

  def no_tfds(*args, **kwargs):
    raise AssertionError('opened TFDS although the index holds')

  monkeypatch.setattr(tfds_source, '_open', no_tfds)
  second = tfds_images.load(_tiny_config(data_dir, tmp_path).data)
  assert isinstance(second.train, tfds_images.IndexedRows) and second.info == first.info
  assert len(second.train) == NUM_TRAIN and len(second.test) == NUM_TEST
  np.testing.assert_array_equal(second.train.rows(3, 9)['image'],
                                first.train.rows(0, NUM_TRAIN)['image'][3:9])
  again = pickle.loads(pickle.dumps(second.train))
  np.testing.assert_array_equal(again.rows(0, NUM_TRAIN)['label'],
                                second.train.rows(0, NUM_TRAIN)['label'])


def test_a_changed_shard_misses_the_index(data_dir, tmp_path, monkeypatch):
  first = _fill_cache(data_dir, tmp_path)
  shard = next(f for f, _, _ in json.load(open(glob.glob(
      str(tmp_path / 'jaxlab_tiny_images' / 'index-train-*.json'))[0]))['fingerprint']['files'])
  stat = os.stat(shard)
  os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # prepared again
  opened = []
  real_open = tfds_source._open
  monkeypatch.setattr(tfds_source, '_open', lambda *a: opened.append(a) or real_open(*a))
  second = tfds_images.load(_tiny_config(data_dir, tmp_path).data)
  assert opened and isinstance(second.train, tfds_images.CachedRows)
  assert second.info == first.info


def test_a_missing_module_while_decoding_is_a_user_error_not_a_bad_record(data_dir, monkeypatch):
  from jaxlab.data import environment
  from jaxlab.errors import UserError
  train = tfds_source.source('jaxlab_tiny_images', 'train', data_dir)

  class NeedsTensorflow:
    def __getitem__(self, index):
      raise ModuleNotFoundError("No module named 'tensorflow'", name='tensorflow')

  monkeypatch.setattr(train, '_reader', NeedsTensorflow())
  with pytest.raises(environment.MissingDependency) as caught:
    train[2]
  assert isinstance(caught.value, UserError) and not isinstance(caught.value, sources.BadRecord)
  assert 'record 2 of tfds:jaxlab_tiny_images/train' in str(caught.value)
  assert "'tensorflow'" in str(caught.value) and '`pip install tensorflow-cpu`' in str(caught.value)


def test_a_missing_image_codec_is_a_user_error_not_a_bad_record(monkeypatch):
  from PIL import Image
  from jaxlab.data import environment, image_transforms

  def no_codec(*args, **kwargs):
    raise OSError('decoder jpeg not available')

  monkeypatch.setattr(Image.Image, 'convert', no_codec)
  with pytest.raises(environment.MissingDependency, match='jpeg codec'):
    image_transforms.EvalImageTransform(8)({'image': _png(np.zeros((8, 8), np.uint8)),
                                            'label': np.int32(0)})
