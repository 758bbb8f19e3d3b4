"""eval and predict on a trained run; metrics equal scikit-learn's."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as sk

from jaxlab.tasks import metrics as metrics_lib
from jaxlab.data import digits, sources
from tests.conftest import read_metrics, run_cli


@pytest.mark.parametrize('seed', range(5))
def test_classification_metrics_equal_sklearn(seed):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, 300)
  predictions = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 10, 300))
  if seed == 0:
    predictions[predictions == 3] = 4  # a class never predicted
  if seed == 1:
    labels[labels == 7] = 6  # a class never present
    predictions[predictions == 7] = 6
  ours = metrics_lib.classification_metrics(labels, predictions, 10)
  assert ours['accuracy'] == pytest.approx(sk.accuracy_score(labels, predictions))
  for name, fn in (('precision', sk.precision_score), ('recall', sk.recall_score),
                   ('f1', sk.f1_score)):
    assert ours[name] == pytest.approx(fn(labels, predictions, average='macro',
                                          zero_division=0)), name
  np.testing.assert_array_equal(ours['confusion_matrix'],
                                sk.confusion_matrix(labels, predictions, labels=range(10)))


def test_eval_command_matches_sklearn_on_the_models_predictions(trained_digits):
  from jaxlab.inference import trained_run as inference
  from jaxlab.inference import predict
  result = run_cli('eval', f'--workdir={trained_digits}', '--checkpoint=latest', check=True)
  assert 'accuracy' in result.stdout and 'f1' in result.stdout
  written = sorted(pathlib.Path(trained_digits).glob('eval_*.json'))
  assert written, result.stdout
  saved = json.loads(written[-1].read_text())
  # Recompute the model's predictions on the test set independently and score with sklearn.
  run = inference.load(str(trained_digits), 'latest')
  images, labels = _digits_test_set()
  probs = predict.outputs(run, {'image': images.astype(np.float32)})['probabilities']
  predictions = probs.argmax(-1)
  assert saved['accuracy'] == pytest.approx(sk.accuracy_score(labels, predictions))
  assert saved['f1'] == pytest.approx(sk.f1_score(labels, predictions, average='macro'))
  assert saved['precision'] == pytest.approx(
      sk.precision_score(labels, predictions, average='macro', zero_division=0))
  assert saved['recall'] == pytest.approx(
      sk.recall_score(labels, predictions, average='macro'))
  # and equal to what training logged at the same step
  last_eval = [r for r in read_metrics(trained_digits) if 'eval/accuracy' in r][-1]
  assert last_eval['step'] == saved['step']
  assert last_eval['eval/accuracy'] == pytest.approx(saved['accuracy'])


def _digits_test_set():
  test = digits.load(None).test
  rows = sources.read_rows(test, 0, len(test))
  return rows['image'], rows['label']


def _write_digit_pngs(directory, count=12):
  """Test-set digits as 8-bit PNGs (0..16 scaled to 0..255), upscaled to 32x32."""
  images, labels = _digits_test_set()
  paths = []
  for index in range(count):
    pixels = (images[index, :, :, 0].astype(np.float32) * 255 / 16).round()
    image = Image.fromarray(pixels.astype(np.uint8)).resize((32, 32), Image.Resampling.NEAREST)
    path = directory / f'digit_{index}_{labels[index]}.png'
    image.save(path)
    paths.append(path)
  return paths, labels[:count]


def test_predict_images_with_one_corrupt_file(trained_digits, tmp_path):
  paths, labels = _write_digit_pngs(tmp_path)
  corrupt = tmp_path / 'corrupt.png'
  corrupt.write_bytes(b'\x89PNG\r\n\x1a\n this is not an image')
  jpeg = tmp_path / 'digit.jpg'
  Image.open(paths[0]).convert('RGB').save(jpeg, quality=95)
  result = run_cli('predict', f'--workdir={trained_digits}', '--json', '--top_k=3',
                   *paths[:6], corrupt, *paths[6:], jpeg)
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines() if 'corrupt.png' in line]
  assert len(errors) == 1 and 'cannot read' in errors[0]
  records = [json.loads(line) for line in result.stdout.splitlines()]
  assert [r['file'] for r in records] == [str(p) for p in paths + [jpeg]]
  for record in records:
    probabilities = [p['probability'] for p in record['top_k']]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
  predicted = np.array([r['top_k'][0]['label'] for r in records[:-1]])
  assert (predicted == labels).mean() >= 0.75
  assert records[-1]['top_k'][0]['label'] == records[0]['top_k'][0]['label']


def test_predict_text_output_and_all_good_exit_0(trained_digits, tmp_path):
  paths, _ = _write_digit_pngs(tmp_path, count=2)
  result = run_cli('predict', f'--workdir={trained_digits}', *paths)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 2 and all(line.startswith(str(tmp_path)) for line in lines)


def test_predict_of_one_image_imports_no_training_tensorboard_plots_tfds_or_server(
    trained_digits, tmp_path):
  from tests.test_commands import HEAVY, imports_of, loaded
  paths, _ = _write_digit_pngs(tmp_path, count=1)
  code, modules = imports_of('predict', f'--workdir={trained_digits}', *paths)
  assert code == 0
  assert 'jaxlab.inference.predict' in modules
  assert loaded(modules, HEAVY) == []


def test_eval_without_a_run_is_a_clear_error(tmp_path):
  result = run_cli('eval', f'--workdir={tmp_path}')
  assert result.returncode == 2 and 'jaxlab train' in result.stderr
  assert 'Traceback' not in result.stderr
