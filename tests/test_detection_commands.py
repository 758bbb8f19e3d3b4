"""The detector end to end on one module-scoped smoke run: train -> eval metrics (COCO) ->
predict (lines, --json pixel boxes, PNGs drawn) -> serve -> export, explain refused, and
the dry run on an FSDP x tensor-parallel mesh."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import requests
from PIL import Image

from jaxlab.commands import explain as explain_command
from jaxlab.commands import export as export_command
from jaxlab.commands import predict as predict_command
from jaxlab.errors import UserError
from jaxlab.inference import predict
from jaxlab.inference import trained_run
from jaxlab.train import loop
from tests.conftest import ROOT, load_config, read_metrics, restore_params
from tests import serving

pytestmark = pytest.mark.slow

# A low score threshold, so the few-step smoke model predicts boxes to check.
SMOKE = dict(task__score_threshold=0.01, task__max_detections=20, plots=False)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """The workdir of shapes_detection's smoke run, its data drawn into a fresh cache, its
  ResNet-18 started from a one-step classifier's run (model.backbone_init) and frozen."""
  folder = tmp_path_factory.mktemp('detection')
  classifier = load_config('cifar10_resnet18', model__stem='imagenet', num_steps=1,
                           steps_per_loop=1, eval_every_steps=1, checkpoint_every_steps=1,
                           data__num_train=32, data__num_test=16, data__eval_batch_size=16,
                           plots=False)
  loop.run(classifier, str(folder / 'classifier'))
  config = load_config('shapes_detection', data__cache_dir=str(folder / 'cache'),
                       model__backbone_init=str(folder / 'classifier'),
                       optimizer__frozen=('backbone/.*',), **SMOKE)
  summary = loop.run(config, str(folder / 'run'))
  return dict(workdir=folder / 'run', summary=summary, folder=folder)


@pytest.fixture(scope='module')
def photos(trained):
  """Two images of the offline set's test split at different sizes, and a broken file."""
  root = next((trained['folder'] / 'cache' / 'shapes_detection').iterdir())
  paths = []
  for index, size in enumerate(((90, 140), (150, 100))):
    with Image.open(root / 'test' / f'{index:06d}.jpg') as image:
      path = trained['folder'] / f'photo{index}.png'
      image.convert('RGB').resize(size[::-1]).save(path)
      paths.append(path)
  return paths


def test_training_reports_coco_metrics_and_keeps_the_best_by_map(trained):
  assert trained['summary']['status'] == 'finished'
  evals = [r for r in read_metrics(trained['workdir']) if 'eval/mAP' in r]
  assert evals and {'eval/mAP', 'eval/AP50', 'eval/AP75', 'eval/APs', 'eval/APm',
                    'eval/APl'} <= set(evals[-1])
  assert 0 <= evals[-1]['eval/mAP'] <= 1
  train = [r for r in read_metrics(trained['workdir']) if 'train/class_loss' in r]
  assert train and train[-1]['train/loss'] < 10 and train[-1]['train/positives'] > 0


def test_backbone_init_starts_the_resnet_from_a_classifier_run(trained):
  classifier, _ = restore_params(trained['folder'] / 'classifier')
  detector, _ = restore_params(trained['workdir'])
  assert 'head' in classifier and 'head' not in detector['backbone']
  classifier.pop('head')
  flat = lambda tree: dict(jax.tree_util.tree_leaves_with_path(tree))
  mine, theirs = flat(detector['backbone']), flat(classifier)
  assert mine.keys() == theirs.keys() and len(mine) > 40
  for path, value in theirs.items():  # frozen in this run, so exactly the classifier's
    np.testing.assert_array_equal(mine[path], value, err_msg=str(path))


def test_predict_prints_pixel_boxes_and_draws_labelled_pngs(trained, photos, capsys, tmp_path):
  assert predict_command.main(str(trained['workdir']), [str(p) for p in photos], as_json=True,
                              out=str(tmp_path)) == 0
  records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r['file'] for r in records] == [str(p) for p in photos]
  for record, path in zip(records, photos):
    with Image.open(path) as original:
      width, height = original.size
    assert record['detections'], 'the smoke model at a 0.01 threshold finds boxes'
    for found in record['detections']:
      x, y, w, h = found['box']  # COCO's [x, y, width, height] in the file's pixels
      assert -0.5 <= x and x + w <= width + 0.5 and -0.5 <= y and y + h <= height + 0.5
      assert found['name'] and 0 < found['score'] <= 1
    with Image.open(record['drawn']) as drawn:
      assert drawn.format == 'PNG' and drawn.size == (width, height)
      # Boxes were drawn: the picture differs from the input.
      assert np.abs(np.asarray(drawn.convert('RGB'), np.int16)
                    - np.asarray(Image.open(path).convert('RGB'), np.int16)).max() > 0
  assert predict_command.main(str(trained['workdir']), [str(photos[0])], out=str(tmp_path)) == 0
  line = capsys.readouterr().out
  assert line.startswith(f'{photos[0]}: ') and ' boxes: ' in line and '(drawn: ' in line


def test_the_same_picture_at_two_sizes_gives_boxes_scaled_to_each(trained, photos, tmp_path):
  run = trained_run.load(str(trained['workdir']))
  with Image.open(photos[0]) as image:
    image.resize((280, 180)).save(tmp_path / 'double.png')  # twice photo0's 140 x 90
  batch, _, errors = run.task.predict_inputs([str(photos[0]), str(tmp_path / 'double.png')])
  assert not errors and batch['image_hw'].tolist() == [[90, 140], [180, 280]]
  batch['image'][1] = batch['image'][0]  # the same pixels in: only the size differs
  outputs = predict.outputs(run, batch)
  np.testing.assert_allclose(outputs['boxes'][1], outputs['boxes'][0] * 2, rtol=1e-5, atol=1e-3)


def test_serve_answers_the_boxes_predict_prints(trained, photos):
  with serving.serving(f'--workdir={trained["workdir"]}', '--max_batch=2') as url:
    files = [('file', (p.name, p.read_bytes())) for p in photos]
    answer = requests.post(f'{url}/v1/predict', files=files, timeout=60)
    assert answer.status_code == 200, answer.text
    served = answer.json()['predictions']
    bad = requests.post(f'{url}/v1/predict', files=[('file', ('x.png', b'not an image'))],
                        timeout=60)
    assert bad.status_code == 400 and 'Cannot decode the image' in bad.json()['error']
  run = trained_run.load(str(trained['workdir']))
  batch, _, _ = run.task.predict_inputs([str(p) for p in photos])
  expected = run.task.predictions(predict.outputs(run, batch), 3)
  for got, want in zip(served, expected):
    assert [d['name'] for d in got['detections']] == [d['name'] for d in want['detections']]
    np.testing.assert_allclose([d['box'] for d in got['detections']],
                               [d['box'] for d in want['detections']], atol=0.05)


def test_the_exported_model_decodes_the_same_pixel_boxes(trained, photos, tmp_path):
  out = tmp_path / 'export'
  export_command.main(str(trained['workdir']), str(out))
  signature = json.loads((out / 'signature.json').read_text())
  assert set(signature['inputs']) == {'image', 'image_hw'}
  assert {'boxes', 'scores', 'classes', 'valid'} <= set(signature['outputs'])
  run = trained_run.load(str(trained['workdir']))
  batch, _, _ = run.task.predict_inputs([str(p) for p in photos])
  spec = importlib.util.spec_from_file_location('load_exported_detection',
                                                out / 'load_exported.py')
  loader = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(loader)
  exported = loader.load(str(out))(batch)
  expected = predict.outputs(run, batch)
  for name in ('boxes', 'scores', 'classes', 'valid'):
    np.testing.assert_allclose(np.asarray(exported[name]), expected[name], atol=1e-4,
                               err_msg=name)


def test_explain_refuses_a_detector_and_says_what_to_use(trained, photos):
  with pytest.raises(UserError, match='this run is a detector') as raised:
    explain_command.main(str(trained['workdir']), [str(photos[0])])
  assert 'jaxlab predict' in str(raised.value)


# Lowered as --dry_run lowers it, on 4 CPU devices, short of XLA's compile (slow); the
# documented `jaxlab train` commands run whole through --dry_run in test_docs_commands.
DRY_RUN = """
from tests.conftest import load_config
from jaxlab.perf import dry_run
config = load_config('shapes_detection', 'smoke', mesh__data=1, mesh__fsdp=2, mesh__tensor=2)
lowered = dry_run.lower(config)
print(dict(lowered.programs.mesh.shape), lowered.task.__class__.__name__)
for path, shape, spec in lowered.programs.layout.param_table:
  print(path, shape, spec)
"""


def test_dry_run_lowers_the_detector_onto_an_fsdp_and_tensor_parallel_mesh():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4')
  result = subprocess.run([sys.executable, '-c', DRY_RUN], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert "'fsdp': 2" in lines[0] and "'tensor': 2" in lines[0] and 'Detection' in lines[0]
  kernel = next(line for line in lines if line.startswith('class_tower/convs/0/kernel'))
  assert "P(None, None, 'fsdp', 'tensor')" in kernel
  assert any(line.startswith('backbone/blocks/') and "'fsdp'" in line for line in lines)
