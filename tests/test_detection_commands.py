"""The detector end to end on one module-scoped smoke run: train -> eval metrics (COCO) ->
predict (lines, --json pixel boxes, PNGs drawn) -> serve -> export, explain refused, and
the dry run on an FSDP x tensor-parallel mesh."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import portpicker
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
from tests.conftest import ROOT, load_config, read_metrics, run_cli

pytestmark = pytest.mark.slow

# A low score threshold, so the few-step smoke model predicts boxes to check.
SMOKE = dict(task__score_threshold=0.01, task__max_detections=20, plots=False)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """The workdir of shapes_detection's smoke run, its data drawn into a fresh cache."""
  folder = tmp_path_factory.mktemp('detection')
  config = load_config('shapes_detection', data__cache_dir=str(folder / 'cache'), **SMOKE)
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
  port = portpicker.pick_unused_port()
  process = subprocess.Popen([sys.executable, '-m', 'jaxlab.main', 'serve', f'--port={port}',
                              f'--workdir={trained["workdir"]}', '--max_batch=2'], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  url = f'http://127.0.0.1:{port}'
  try:
    for _ in range(600):
      try:
        if requests.get(f'{url}/healthz', timeout=1).status_code == 200:
          break
      except requests.ConnectionError:
        assert process.poll() is None, process.stdout.read()
        import time
        time.sleep(0.2)
    files = [('file', (p.name, p.read_bytes())) for p in photos]
    answer = requests.post(f'{url}/v1/predict', files=files, timeout=60)
    assert answer.status_code == 200, answer.text
    served = answer.json()['predictions']
    bad = requests.post(f'{url}/v1/predict', files=[('file', ('x.png', b'not an image'))],
                        timeout=60)
    assert bad.status_code == 400 and 'Cannot decode the image' in bad.json()['error']
  finally:
    process.kill()
    process.wait()
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


def test_dry_run_covers_the_detector_on_an_fsdp_and_tensor_parallel_mesh():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4')
  result = run_cli('train', '--config=experiments/shapes_detection.py:smoke', '--config.mesh.data=1',
                   '--config.mesh.fsdp=2', '--config.mesh.tensor=2', '--dry_run', '--verbose',
                   env=env)
  assert result.returncode == 0, result.stderr
  assert "'fsdp': 2" in result.stdout and "'tensor': 2" in result.stdout
  sharded = [line for line in result.stdout.splitlines() if 'class_tower' in line]
  assert any("'tensor'" in line for line in sharded) and any("'fsdp'" in line for line in sharded)
