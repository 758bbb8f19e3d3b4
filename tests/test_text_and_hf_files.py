"""data.name=text_files and data.name=hf_disk: text folders, globs and JSONL files, and
`datasets` datasets saved by the tests with save_to_disk, each through train, eval and
predict."""

import numpy as np
import pytest

from jaxlab import data as data_lib
from jaxlab.data import sources
from jaxlab.errors import UserError
from tests import user_files
from tests.conftest import load_config

WORDS = {'neg': 'bad awful poor dull ', 'pos': 'good great fine nice '}


def _text_config(experiment, path, tmp_path, **overrides):
  return load_config(experiment, data__name='text_files', data__path=str(path),
                     data__cache_dir=str(tmp_path / 'cache'), plots=False, **overrides)


def _write_reviews(root, count=30):
  for label, words in WORDS.items():
    (root / label).mkdir(parents=True)
    for index in range(count):
      (root / label / f'{index}.txt').write_text(words * (1 + index % 4))


def _labels(source):
  return sources.read_rows(source, 0, len(source))['label']


@pytest.mark.slow
def test_text_classification_from_class_folders_round_trip(tmp_path, capsys):
  from jaxlab.commands import predict
  from jaxlab.inference import evaluate
  from jaxlab.inference import trained_run as inference
  from jaxlab.train import loop
  _write_reviews(tmp_path / 'reviews')
  (tmp_path / 'reviews' / 'pos' / 'latin1.txt').write_bytes(b'caf\xe9')  # not UTF-8
  config = _text_config('python_snippets_text', tmp_path / 'reviews', tmp_path,
                        data__seq_len=32, num_epochs=3)
  loop.run(config, str(tmp_path / 'w'))
  assert 'unreadable text record' in capsys.readouterr().err
  run = inference.load(str(tmp_path / 'w'), 'latest')
  assert run.info.class_names == ('neg', 'pos') and run.info.num_classes == 2
  assert evaluate.evaluate(run)['num_examples'] == 12
  sample = tmp_path / 'sample.txt'
  sample.write_text('good great fine nice')
  assert predict.main(str(tmp_path / 'w'), [str(sample)], checkpoint='latest') == 0
  line = capsys.readouterr().out.strip()
  assert line.startswith(f'{sample}: ') and {'neg', 'pos'} <= set(line.split())


@pytest.mark.slow
def test_language_model_on_a_folder_of_text_round_trip(tmp_path, capsys):
  from jaxlab.commands import predict
  from jaxlab.train import loop
  (tmp_path / 'corpus').mkdir()
  for index in range(20):
    (tmp_path / 'corpus' / f'{index}.txt').write_text('the quick brown fox. ' * (index % 3 + 1))
  (tmp_path / 'corpus' / 'empty.txt').write_text('  \n')
  config = _text_config('python_docs_lm', tmp_path / 'corpus', tmp_path, num_steps=4,
                        steps_per_loop=4, eval_every_steps=0, checkpoint_every_steps=0,
                        data__batch_size=4, data__eval_batch_size=8, data__seq_len=32)
  summary = loop.run(config, str(tmp_path / 'w'))
  assert 'empty or unlabelled document' in capsys.readouterr().err
  assert summary['eval']['perplexity'] > 1 and summary['eval']['num_targets'] > 0
  prompt = tmp_path / 'prompt.txt'
  prompt.write_text('the quick brown')
  assert predict.main(str(tmp_path / 'w'), [str(prompt)], checkpoint='latest') == 0
  assert 'perplexity' in capsys.readouterr().out


def test_jsonl_with_a_label_key_is_classification_without_one_language_model(tmp_path, capfd):
  path = tmp_path / 'docs.jsonl'
  user_files.write_jsonl(path, [{'body': WORDS[k] * 2, 'tag': k} for k in ('pos', 'neg') * 20])
  with open(path, 'a', encoding='utf-8') as f:
    f.write('{not json\n')
  labelled = data_lib.load(_text_config('python_snippets_text', path, tmp_path,
                                        data__text_key='body', data__label_key='tag').data)
  assert labelled.info.class_names == ('neg', 'pos')
  assert len(labelled.train) + len(labelled.test) == 40
  assert 'line 41' in capfd.readouterr().err
  plain = data_lib.load(_text_config('python_docs_lm', path, tmp_path, data__text_key='body',
                                     data__label_key='').data)
  assert 'segment_ids' in plain.info.features and not plain.info.num_classes


def test_a_glob_of_text_files_is_language_model_text_split_by_document(tmp_path):
  for folder in ('a', 'b/c'):
    (tmp_path / folder).mkdir(parents=True)
    for index in range(5):
      (tmp_path / folder / f'{index}.txt').write_text(f'document {folder} {index}. ' * 4)
  config = _text_config('python_docs_lm', f'{tmp_path}/**/*.txt', tmp_path,
                        data__validation_split=0.3)
  splits = data_lib.load(config.data)
  assert 'segment_ids' in splits.info.features
  tokens = lambda s: sources.read_rows(s, 0, len(s))['segment_ids'].max(axis=1).sum()
  assert tokens(splits.train) >= 7 and tokens(splits.test) >= 3  # 7 and 3 documents


def test_text_files_without_any_text_names_the_layouts(tmp_path):
  with pytest.raises(UserError, match='language model'):
    data_lib.load(_text_config('python_docs_lm', tmp_path / 'none*.txt', tmp_path).data)


@pytest.fixture(scope='module')
def digits_dataset(tmp_path_factory):
  """A DatasetDict ('train', 'test') of PNG digits (an Image column 'img') and their class
  (a ClassLabel 'y' named zero..two) saved with save_to_disk."""
  import datasets
  names = ['zero', 'one', 'two']
  images = user_files.digit_images(count_per_class=16)
  rows = [(user_files.encoded_png(image), digit) for digit, found in images.items()
          for image in found]
  features = datasets.Features({'img': datasets.Image(), 'y': datasets.ClassLabel(names=names)})
  make = lambda part: datasets.Dataset.from_dict(
      {'img': [{'bytes': b, 'path': None} for b, _ in part], 'y': [y for _, y in part]},
      features=features)
  path = tmp_path_factory.mktemp('hf') / 'digits'
  datasets.DatasetDict(train=make(rows[0::4] + rows[1::4] + rows[2::4]),
                       test=make(rows[3::4])).save_to_disk(str(path))
  return path


def test_hf_disk_images_round_trip_keeps_class_label_names(digits_dataset, tmp_path, capsys):
  from jaxlab.commands import predict
  from jaxlab.train import loop
  config = load_config('my_images', data__name='hf_disk', data__path=str(digits_dataset),
                       data__image_key='img', data__label_key='y', plots=False, num_epochs=2)
  summary = loop.run(config, str(tmp_path / 'w'))
  assert 0 <= summary['eval']['accuracy'] <= 1
  splits = data_lib.load(config.data)
  assert splits.info.class_names == ('zero', 'one', 'two')  # the ClassLabel's order
  assert (len(splits.train), len(splits.test)) == (36, 12)
  np.testing.assert_array_equal(np.bincount(_labels(splits.test)), [4, 4, 4])
  png = tmp_path / 'digit.png'
  png.write_bytes(user_files.encoded_png(user_files.digit_images(1, (2,))[2][0]))
  capsys.readouterr()
  assert predict.main(str(tmp_path / 'w'), [str(png)], checkpoint='latest', top_k_count=3) == 0
  assert {'zero', 'one', 'two'} <= set(capsys.readouterr().out.split())


def test_hf_disk_text_of_a_lone_dataset_is_held_out_and_classed(tmp_path):
  import datasets
  texts = [WORDS[k] for k in ('pos', 'neg')] * 15
  datasets.Dataset.from_dict({'sentence': texts, 'mood': ['pos', 'neg'] * 15}).save_to_disk(
      str(tmp_path / 'moods'))
  config = load_config('python_snippets_text', data__name='hf_disk', data__path=str(
      tmp_path / 'moods'), data__text_key='sentence', data__label_key='mood',
                       data__cache_dir=str(tmp_path / 'cache'))
  splits = data_lib.load(config.data)
  assert splits.info.class_names == ('neg', 'pos')
  assert (len(splits.train), len(splits.test)) == (24, 6)
  with pytest.raises(UserError, match='sentence'):
    config.data.text_key = 'txt'
    data_lib.load(config.data)
