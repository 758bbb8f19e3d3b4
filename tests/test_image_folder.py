"""data.name=image_folder (and the shared class-folder and hold-out rules): images written
by the tests from scikit-learn's digits."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxlab import data as data_lib
from jaxlab.data import holdout, sources
from jaxlab.errors import UserError
from tests import user_files
from tests.conftest import load_config, read_metrics, run_cli


def _config(path, **overrides):
  return load_config('my_images', data__path=str(path), **overrides)


def _all(source):
  return [source[i] for i in range(len(source))]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A smoke run on a folder with a corrupt JPEG and an empty class folder; (workdir,
  image root, summary)."""
  from jaxlab.train import loop
  root = tmp_path_factory.mktemp('images')
  user_files.write_image_folder(root, count_per_class=24, names={0: 'zero', 1: 'one', 2: 'two'})
  (root / 'one' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a whole jpeg')
  (root / 'empty').mkdir()
  workdir = tmp_path_factory.mktemp('run')
  summary = loop.run(_config(root, num_epochs=3, data__batch_size=8, plots=False),
                     str(workdir))
  return workdir, root, summary


def test_classes_are_the_sorted_folder_names_and_saved_in_the_workdir(trained):
  workdir, _, _ = trained
  saved = json.loads((workdir / 'dataset_info.json').read_text())
  assert saved['class_names'] == ['empty', 'one', 'two', 'zero']
  assert saved['num_classes'] == 4


def test_corrupt_jpeg_is_skipped_and_counted_while_streaming(trained):
  workdir, _, summary = trained
  assert summary['placement'] == 'stream' and summary['step'] == summary['num_steps']
  counted = [r['train/bad_records'] for r in read_metrics(workdir) if 'train/bad_records' in r]
  # 3 epochs over the training split: the broken file is read once an epoch if it was
  # drawn into training, never if it was held out.
  assert counted and counted[-1] in (0, 3)
  splits = data_lib.load(_config(trained[1]).data)
  in_train = [i for i, p in enumerate(splits.train.reader.paths) if p.endswith('broken.jpg')]
  assert counted[-1] == 3 * len(in_train)


def test_predict_prints_class_names(trained, capsys):
  from jaxlab.commands import predict
  workdir, root, _ = trained
  files = sorted(str(p) for p in (root / 'two').iterdir())[:2]
  assert predict.main(str(workdir), files, checkpoint='latest', top_k_count=4) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 2
  for path, line in zip(files, lines):
    assert line.startswith(f'{path}: ')
    assert {word for word in line.split() if word.isalpha()} == {'empty', 'one', 'two', 'zero'}


def test_predict_fits_an_image_as_training_did(trained):
  from jaxlab.inference import trained_run as inference
  workdir, root, _ = trained
  run = inference.load(str(workdir), 'latest')
  path = sorted((root / 'zero').glob('*.jpg'))[0]
  batch, readable, errors = run.task.predict_inputs([str(path)])
  assert readable == [str(path)] and not errors
  splits = data_lib.load(_config(root).data)
  source = splits.train if str(path) in splits.train.reader.paths else splits.test
  trained_pixels = source[source.reader.paths.index(str(path))]['image']
  np.testing.assert_array_equal(batch['image'][0], trained_pixels.astype(np.float32))


def test_empty_class_folder_is_a_class_with_a_warning(tmp_path, capfd):
  user_files.write_image_folder(tmp_path, count_per_class=5, classes=(3,))
  (tmp_path / 'aaa_empty').mkdir()
  splits = data_lib.load(_config(tmp_path).data)
  assert splits.info.class_names == ('aaa_empty', 'digit_3')
  assert 'aaa_empty' in capfd.readouterr().err
  assert {e['label'] for e in _all(splits.train) + _all(splits.test)} == {1}


def test_hidden_files_and_folders_are_ignored_and_extensions_match_any_case(tmp_path):
  user_files.write_image_folder(tmp_path, count_per_class=4, classes=(1, 2))
  first = next((tmp_path / 'digit_1').glob('*.png'))
  (tmp_path / 'digit_1' / '._0.jpg').write_bytes(b'macOS resource fork')
  (tmp_path / '.thumbnails').mkdir()
  (tmp_path / '.thumbnails' / 'x.png').write_bytes(first.read_bytes())
  (tmp_path / 'digit_2' / 'UPPER.PNG').write_bytes(first.read_bytes())
  (tmp_path / 'digit_2' / 'notes.txt').write_text('not an image')
  splits = data_lib.load(_config(tmp_path).data)
  paths = splits.train.reader.paths + splits.test.reader.paths
  assert splits.info.class_names == ('digit_1', 'digit_2')
  assert len(paths) == 9 and any(p.endswith('UPPER.PNG') for p in paths)
  assert not any('/.' in p or p.endswith('.txt') for p in paths)


def test_validation_split_is_deterministic_disjoint_and_seeded(tmp_path):
  user_files.write_image_folder(tmp_path, count_per_class=10)
  load = lambda **kw: data_lib.load(_config(tmp_path, data__validation_split=0.3, **kw).data)
  first, again, other = load(), load(), load(data__split_seed=1)
  train, test = set(first.train.reader.paths), set(first.test.reader.paths)
  assert not train & test and len(train | test) == 30 and len(test) == 9
  assert (train, test) == (set(again.train.reader.paths), set(again.test.reader.paths))
  assert test != set(other.test.reader.paths)
  kept, held = holdout.split(30, 0.3, 0, 'x')
  assert sorted(np.concatenate([kept, held]).tolist()) == list(range(30))


def test_train_and_test_folders_are_the_splits(tmp_path):
  user_files.write_image_folder(tmp_path / 'train', count_per_class=6)
  user_files.write_image_folder(tmp_path / 'test', count_per_class=2, classes=(0, 2))
  splits = data_lib.load(_config(tmp_path).data)
  assert splits.info.class_names == ('digit_0', 'digit_1', 'digit_2')
  assert len(splits.train) == 18 and len(splits.test) == 4
  assert sorted(e['label'] for e in _all(splits.test)) == [0, 0, 2, 2]
  with pytest.raises(UserError, match='validation_split'):
    data_lib.load(_config(tmp_path, data__validation_split=0.2).data)


def test_resize_modes_and_color_mode(tmp_path):
  (tmp_path / 'wide').mkdir()
  pixels = np.zeros((20, 40, 3), np.uint8)
  pixels[:, :10] = 255  # a white band on the left, outside the centred 20 x 20 square
  for index in range(5):
    Image.fromarray(pixels).save(tmp_path / 'wide' / f'{index}.png')
  read = lambda **kw: data_lib.load(_config(tmp_path, data__image_size=8, **kw).data).train[0]
  stretched = read()['image']
  cropped = read(data__resize_mode='center_crop')['image']
  gray = read(data__color_mode='grayscale')['image']
  assert stretched.shape == (8, 8, 3) and gray.shape == (8, 8, 1)
  assert stretched[:, 0].min() > 200 and cropped.max() < 50


def test_a_corrupt_file_is_a_bad_record_naming_it(tmp_path):
  user_files.write_image_folder(tmp_path, count_per_class=2, classes=(4,))
  (tmp_path / 'digit_4' / 'zz.jpg').write_bytes(b'\xff\xd8\xff garbage')
  source = data_lib.load(_config(tmp_path, data__validation_split=0.5).data)
  both = [(s, i) for s in (source.train, source.test) for i in range(len(s))
          if s.reader.paths[i].endswith('zz.jpg')]
  with pytest.raises(sources.BadRecord, match='zz.jpg'):
    both[0][0][both[0][1]]


def test_random_crop_streams_crops_of_the_right_shape(tmp_path):
  user_files.write_image_folder(tmp_path, count_per_class=5, classes=(5,))
  splits = data_lib.load(_config(tmp_path, data__resize_mode='random_crop').data)
  example = splits.train_transform(splits.train[0], (0, 0, 0))
  assert example['image'].shape == (16, 16, 3) and example['image'].dtype == np.uint8
  with pytest.raises(UserError, match='placement=stream'):
    data_lib.load(_config(tmp_path, data__resize_mode='random_crop',
                          data__placement='device').data)


@pytest.mark.parametrize('layout', ['empty', 'files only', 'missing'])
def test_no_class_folders_names_the_expected_layout(tmp_path, layout):
  if layout == 'files only':
    user_files.write_image_folder(tmp_path, count_per_class=2, classes=(1,))
    for path in (tmp_path / 'digit_1').iterdir():
      path.rename(tmp_path / path.name)
    (tmp_path / 'digit_1').rmdir()
  path = tmp_path / 'nowhere' if layout == 'missing' else tmp_path
  with pytest.raises(UserError, match=r'DIR/<class name>/'):
    data_lib.load(_config(path).data)


def test_no_class_folders_exits_2_from_the_command_line(tmp_path):
  result = run_cli('train', '--config=experiments/my_images.py:smoke',
                   f'--config.data.path={tmp_path}', f'--workdir={tmp_path / "w"}')
  assert result.returncode == 2, result.stderr
  assert 'DIR/<class name>/' in result.stderr and 'Traceback' not in result.stderr


def test_image_folder_needs_a_path_and_unknown_keys_still_name_the_closest():
  from jaxlab import config as config_lib
  with pytest.raises(UserError, match='data.path'):
    config_lib.validate(load_config('my_images'))
  assert 'data.label_column' in config_lib.closest_keys(load_config('my_images'),
                                                        'data.label_colum')
  assert pathlib.Path(__file__).exists()
