"""Detection data: a user's folder of images with COCO JSON read through the loader, the
layouts it finds, malformed files refused with what to fix (exit 2), and the offline
set written in COCO format and read back through the same loader."""

import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxlab.data import coco_folder, registry, shapes_detection
from jaxlab.errors import UserError
from tests.conftest import run_cli


def data_config(path, **overrides):
  config = ml_collections.ConfigDict(dict(
      name='coco_json', path=str(path), image_size=32, color_mode='rgb', max_boxes=4,
      validation_split=None, split_seed=0, num_train=None, num_test=None,
      cache_dir='', placement='auto'))
  config.update(overrides)
  return config


def write_coco(folder, split, sizes, annotations, categories=((1, 'cat'), (5, 'dog'))):
  """Images of `sizes` (h, w) in folder/split/ and folder/split.json."""
  (folder / split).mkdir(parents=True, exist_ok=True)
  images = []
  for index, (height, width) in enumerate(sizes):
    name = f'{split}_{index}.png'
    pixels = np.full((height, width, 3), (40 * index) % 256, np.uint8)
    Image.fromarray(pixels).save(folder / split / name)
    images.append(dict(id=100 + index, file_name=name, height=height, width=width))
  record = dict(images=images, annotations=[dict(id=i + 1, iscrowd=0, **a)
                                            for i, a in enumerate(annotations)],
                categories=[dict(id=i, name=n) for i, n in categories])
  (folder / f'{split}.json').write_text(json.dumps(record))
  return record


def good_folder(root):
  write_coco(root, 'train', [(40, 80), (60, 30)], [
      dict(image_id=100, category_id=5, bbox=[8, 4, 40, 20]),
      dict(image_id=100, category_id=1, bbox=[0, 0, 80, 40]),
      dict(image_id=101, category_id=1, bbox=[3, 6, 0, 10])])  # zero width: skipped
  write_coco(root, 'test', [(50, 50)], [dict(image_id=100, category_id=1, bbox=[5, 5, 20, 20])])
  return root


def test_the_coco_loader_reads_a_user_folder_and_json(tmp_path):
  splits = registry.load(data_config(good_folder(tmp_path)))
  assert splits.info.class_names == ('cat', 'dog')  # ids 1 and 5: classes 0 and 1
  assert splits.info.preprocessing['category_ids'] == [1, 5]
  assert (len(splits.train), len(splits.test)) == (2, 1)
  first = splits.train[0]
  assert first['image'].shape == (32, 32, 3) and first['image'].dtype == np.uint8
  np.testing.assert_allclose(first['boxes'][:2], [[4 / 40, 8 / 80, 24 / 40, 48 / 80],
                                                  [0, 0, 1, 1]], rtol=1e-6)
  np.testing.assert_array_equal(first['classes'][:2], [1, 0])
  np.testing.assert_array_equal(first['box_mask'], [1, 1, 0, 0])
  assert int(first['image_id']) == 100 and list(first['image_hw']) == [40, 80]
  np.testing.assert_array_equal(splits.train[1]['box_mask'], [0, 0, 0, 0])  # kept, empty
  rows = splits.train.rows(0, 2)  # what the device placement reads
  assert rows['boxes'].shape == (2, 4, 4)


def test_zero_area_boxes_are_skipped_and_counted(tmp_path, caplog):
  with caplog.at_level('INFO', logger='jaxlab'):
    registry.load(data_config(good_folder(tmp_path)))
  assert 'skipped 1 zero-area boxes' in caplog.text


def test_one_json_file_with_a_held_out_share(tmp_path):
  write_coco(tmp_path, 'all', [(30, 30)] * 10,
             [dict(image_id=100 + i, category_id=1, bbox=[1, 1, 5, 5]) for i in range(10)])
  for image in (tmp_path / 'all').iterdir():
    image.rename(tmp_path / image.name)  # file names relative to the JSON's folder
  splits = registry.load(data_config(tmp_path / 'all.json', validation_split=0.3))
  assert (len(splits.train), len(splits.test)) == (7, 3)


def test_roboflow_and_coco_layouts_are_found(tmp_path):
  (tmp_path / 'rf' / 'train').mkdir(parents=True)
  (tmp_path / 'rf' / 'train' / '_annotations.coco.json').write_text('{}')
  (tmp_path / 'rf' / 'valid').mkdir()
  (tmp_path / 'rf' / 'valid' / '_annotations.coco.json').write_text('{}')
  found = coco_folder.find_files(tmp_path / 'rf')
  assert [(split, path.split('/')[-2]) for split, path, _ in found] == [('train', 'train'),
                                                                         ('test', 'valid')]
  (tmp_path / 'coco' / 'annotations').mkdir(parents=True)
  (tmp_path / 'coco' / 'annotations' / 'instances_train2017.json').write_text('{}')
  (split, path, dirs), = coco_folder.find_files(tmp_path / 'coco')
  assert split == 'train' and dirs[0].endswith('train2017')


def break_train(root, change):
  record = json.loads((root / 'train.json').read_text())
  change(record)
  (root / 'train.json').write_text(json.dumps(record))


@pytest.mark.parametrize('change, words', [
    (lambda r: r['annotations'][0].update(bbox=[60, 4, 40, 20]), 'reaching outside its 80 x 40'),
    (lambda r: r['annotations'][0].update(category_id=9), 'category_id 9, which is not'),
    (lambda r: r['images'].append(dict(id=7, file_name='gone.png', height=9, width=9)),
     'not found in'),
    (lambda r: r['annotations'][0].update(image_id=555), 'does not list'),
    (lambda r: r.pop('categories'), "lack the list(s) ['categories']"),
])
def test_malformed_coco_files_name_the_problem_and_the_fix(tmp_path, change, words):
  break_train(good_folder(tmp_path), change)
  with pytest.raises(UserError, match='train.json') as raised:
    registry.load(data_config(tmp_path))
  assert words in str(raised.value)


def test_missing_and_invalid_json_exit_2_with_the_fix(tmp_path):
  (tmp_path / 'train.json').write_text('{"images": [')
  result = run_cli('train', '--config=experiments/shapes_detection.py:smoke',
                   '--config.data.name=coco_json', f'--config.data.path={tmp_path}',
                   f'--workdir={tmp_path / "run"}')
  assert result.returncode == 2
  assert 'are not valid JSON' in result.stderr and 'Export them again' in result.stderr
  (tmp_path / 'train.json').unlink()
  with pytest.raises(UserError, match='holds no training annotations'):
    registry.load(data_config(tmp_path))


def test_the_offline_set_is_written_in_coco_format_and_read_through_the_coco_loader(tmp_path):
  config = data_config('', name='shapes_detection', cache_dir=str(tmp_path), num_train=12,
                       num_test=4, image_size=48, max_boxes=8)
  splits = registry.load(config)
  root = tmp_path / 'shapes_detection' / f'v{shapes_detection.VERSION}-train12-test4'
  record = json.loads((root / 'train.json').read_text())
  assert len(record['images']) == 12 and len(record['categories']) == 13
  assert all((root / 'train' / image['file_name']).is_file() for image in record['images'])
  # The same path as a user's folder: data.name=coco_json on the written files.
  again = registry.load(data_config(root, image_size=48, max_boxes=8))
  np.testing.assert_array_equal(again.train[3]['boxes'], splits.train[3]['boxes'])
  assert splits.info.class_names == shapes_detection.CLASS_NAMES
  # Real variety: several sizes, several classes, boxes of many sizes.
  sizes = {(image['height'], image['width']) for image in record['images']}
  areas = [a['bbox'][2] * a['bbox'][3] for a in record['annotations']]
  assert len(sizes) > 6 and len({a['category_id'] for a in record['annotations']}) > 5
  assert max(areas) > 4 * min(areas)
  # Drawn once: a second load reads the same files.
  mtime = (root / 'train.json').stat().st_mtime_ns
  registry.load(config)
  assert (root / 'train.json').stat().st_mtime_ns == mtime


def test_tfds_detection_records_become_padded_examples_without_crowd_boxes():
  import io
  from jaxlab.data import tfds_detection
  encoded = io.BytesIO()
  Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(encoded, format='JPEG')
  record = {'image': encoded.getvalue(), 'image/id': 42, 'objects': {
      'bbox': np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]], np.float32),
      'label': np.array([3, 7]), 'is_crowd': np.array([False, True])}}
  source = tfds_detection.TfdsDetectionSource([record], size=16, max_boxes=3,
                                              left_out='is_crowd')
  example = source[0]
  assert example['image'].shape == (16, 16, 3) and list(example['image_hw']) == [30, 50]
  np.testing.assert_allclose(example['boxes'][0], [0.1, 0.2, 0.5, 0.6])
  np.testing.assert_array_equal(example['box_mask'], [1, 0, 0])
  assert int(example['classes'][0]) == 3 and int(example['image_id']) == 42
