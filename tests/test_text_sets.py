"""Text data sets through the data API: the embedded corpus, TFDS text sets (mock data),
and arrays memory-mapped from .npy files."""

import numpy as np

from jaxlab import data as data_lib
from jaxlab.data import sources, text_sources
from tests.conftest import load_config


def _rows(source):
  return sources.read_rows(source, 0, len(source))


def test_python_docs_rows_are_packed_documents_of_the_split(tmp_path):
  config = load_config('python_docs_lm', data__cache_dir=str(tmp_path), data__num_test=None)
  splits = data_lib.load(config.data)
  test = _rows(splits.test)
  seq_len = config.data.seq_len
  assert splits.info.vocab_size == 259 and splits.info.tokenizer == {'kind': 'byte'}
  assert test['tokens'].shape[1] == seq_len and isinstance(test['tokens'], np.memmap)
  # The non-padding tokens are exactly the test documents' bytes (+3), each followed by eos.
  expected = np.concatenate([np.append(np.frombuffer(d.encode(), np.uint8).astype(np.int32) + 3, 1)
                             for d in text_sources.embedded_split('test')])
  np.testing.assert_array_equal(test['tokens'][test['segment_ids'] > 0], expected)


def test_lm1b_through_mock_tfds(tmp_path):
  import tensorflow_datasets as tfds
  config = load_config('python_docs_lm', data__name='lm1b', data__cache_dir=str(tmp_path),
                       data__num_test=None)
  with tfds.testing.mock_data(num_examples=12):
    splits = data_lib.load(config.data)
    texts = list(text_sources.tfds_documents('lm1b', 'test'))
  test = _rows(splits.test)
  assert splits.info.name == 'lm1b' and set(test) == {'tokens', 'segment_ids', 'positions'}
  assert int((test['tokens'] == 1).sum()) == len(texts) == 12  # one eos per document


def test_imdb_reviews_is_token_classification_through_mock_tfds(tmp_path):
  import tensorflow_datasets as tfds
  config = load_config('python_docs_lm', data__name='imdb_reviews', data__num_test=None,
                       data__num_train=None, data__seq_len=32, task__name='classification')
  with tfds.testing.mock_data(num_examples=10):
    splits = data_lib.load(config.data)
  train = _rows(splits.train)
  assert splits.info.num_classes == 2 and splits.info.spec()['tokens'] == ((32,), np.int32)
  assert train['tokens'].shape == (10, 32) and set(np.unique(train['label'])) <= {0, 1}
  from jaxlab import tasks
  task = tasks.create(config, splits.info, compute_dtype=np.float32)
  assert task.input == 'tokens' and task.model_signature() == ((32,), 2)


def test_npy_folder_is_memory_mapped_and_streams(tmp_path):
  from jaxlab.train import loop
  digits = data_lib.load(load_config('digits_cnn').data)
  train, test = _rows(digits.train), _rows(digits.test)
  folder = tmp_path / 'arrays'
  folder.mkdir()
  for name, array in (('x_train', train['image']), ('y_train', train['label']),
                      ('x_test', test['image']), ('y_test', test['label'])):
    np.save(folder / f'{name}.npy', array)
  config = load_config('digits_cnn', data__name='npz', data__path=str(folder),
                       data__placement='stream', num_steps=22)
  splits = data_lib.load(config.data)
  assert isinstance(splits.train.arrays['image'], np.memmap)
  summary = loop.run(config, str(tmp_path / 'w'))
  assert summary['step'] == 22 and summary['placement'] == 'stream'


def test_empty_documents_are_skipped_with_one_warning(capsys):
  from jaxlab.data import text_sets
  kept = list(text_sets.without_empty(['a b', '', '  \n', 'c'], 'toy train'))
  assert kept == ['a b', 'c']
  assert capsys.readouterr().err.strip() == 'jaxlab: warning: skipped 2 empty document(s) of toy train'
