"""`jaxlab quantize` (qwix int8) and `jaxlab explain` (saliency, integrated gradients,
Grad-CAM) on trained digits_cnn and synthetic mnist_mlp smoke runs."""

import json
import pathlib
import types

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxlab.errors import UserError
from tests.conftest import run_cli

ACCURACY_TOLERANCE = 0.02  # int8 vs float32 test accuracy, absolute (7 of 360 digits)


@pytest.fixture(scope='module')
def quantized_digits(trained_digits):
  """trained_digits quantized through the CLI, as the README says (w8a8, calibrated)."""
  result = run_cli('quantize', f'--workdir={trained_digits}', '--mode=w8a8',
                   '--calibration_batches=2', check=True)
  return trained_digits, pathlib.Path(trained_digits) / 'quantized_w8a8', result.stdout


@pytest.fixture(scope='module')
def digits_run(trained_digits):
  from jaxlab import inference
  return inference.load(str(trained_digits))


@pytest.fixture(scope='module')
def mlp_synthetic(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('mlp_synthetic')
  run_cli('train', '--config=experiments/mnist_mlp.py:smoke', f'--workdir={workdir}',
          '--config.data.name=synthetic', check=True)
  return workdir


def _digit_images(run, count):
  from jaxlab.data import digits, sources
  test = digits.load(None).test
  rows = sources.read_rows(test, 0, count)
  (x,), _ = run.task.model_inputs({'image': jnp.asarray(rows['image'])}, None, train=False)
  return x.astype(jnp.float32), rows['label']


@pytest.mark.slow
def test_quantized_digits_keep_accuracy_shrink_weights_and_report(quantized_digits):
  workdir, quantized, stdout = quantized_digits
  report = json.loads((pathlib.Path(workdir) / 'quantize_w8a8.json').read_text())
  assert 'weights (bytes)' in stdout and 'speed-up' in stdout
  assert abs(report['metric_change']['accuracy']) <= ACCURACY_TOLERANCE
  assert report['float_metrics']['accuracy'] > 0.9
  # int8 weights with one float scale per output channel, float biases: about a quarter.
  assert report['size_ratio'] < 0.3
  assert report['int8_weight_bytes'] < report['float_weight_bytes']
  assert report['float_seconds_per_batch'] > 0 and report['int8_seconds_per_batch'] > 0
  spec = json.loads((quantized / 'quantization.json').read_text())
  assert spec['mode'] == 'w8a8' and spec['calibration_batches'] == 2


@pytest.mark.slow
def test_eval_and_predict_of_the_quantized_workdir_use_int8_weights(quantized_digits,
                                                                      digits_run):
  from jaxlab import evaluate, inference, predict
  workdir, quantized, _ = quantized_digits
  float_run, int8_run = digits_run, inference.load(str(quantized))
  kernels = [leaf for path, leaf in _leaves(int8_run.variables.params) if 'qvalue' in path]
  assert kernels and all(leaf.dtype == jnp.int8 for leaf in kernels)
  result = evaluate.main(str(quantized), 'best')  # what `jaxlab eval` runs
  report = json.loads((pathlib.Path(workdir) / 'quantize_w8a8.json').read_text())
  assert result['accuracy'] == pytest.approx(report['int8_metrics']['accuracy'])
  assert result['loss'] != pytest.approx(report['float_metrics']['loss'], abs=1e-6)
  images, _ = _digit_images(float_run, 64)
  batch = {'image': np.asarray(images) * float_run.info.pixel_max}
  float_probs = predict.outputs(float_run, batch)['probabilities']
  int8_probs = predict.outputs(int8_run, batch)['probabilities']
  assert np.abs(float_probs - int8_probs).max() > 1e-4  # not the float weights
  assert (float_probs.argmax(-1) == int8_probs.argmax(-1)).mean() >= 0.95


def _leaves(tree):
  import jax
  return [('/'.join(str(getattr(k, 'key', k)) for k in path), leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


@pytest.mark.slow
def test_weight_only_quantization_of_the_synthetic_mlp(mlp_synthetic):
  from jaxlab import quantize
  report = quantize.quantize(str(mlp_synthetic), 'best', 'w8')
  assert abs(report['metric_change']['accuracy']) <= ACCURACY_TOLERANCE
  assert report['size_ratio'] < 0.3
  assert report['calibration_batches'] == 0
  assert pathlib.Path(report['quantized_workdir'], 'checkpoints').is_dir()


def test_quantize_rejects_bad_modes_before_loading_anything():
  from jaxlab import quantize
  with pytest.raises(UserError, match='w8a8'):
    quantize.check_mode('int4', None)
  with pytest.raises(UserError, match='--calibration_batches'):
    quantize.check_mode('w8', 5)


def test_integrated_gradients_are_complete_and_differ_for_a_randomized_model(digits_run):
  from jaxlab import explain
  run = digits_run
  x, _ = _digit_images(run, 4)
  targets = explain._logits(run.variables, x, model=run.programs.model).argmax(-1)
  maps, extra = explain.attributions(run, run.variables, x, np.asarray(targets),
                                     'integrated_gradients', steps=64)
  # Completeness: the attributions add up to logit(x) - logit(black), within 1%.
  np.testing.assert_allclose(extra['attribution_sum'], extra['logit_delta'], rtol=0.01)
  assert np.all(np.abs(extra['logit_delta']) > 1)  # a real difference, not 0 = 0
  # Sanity check (Adebayo et al.): a freshly initialised model explains differently.
  randomized = explain.randomized_variables(run)
  random_maps, _ = explain.attributions(run, randomized, x, np.asarray(targets),
                                        'integrated_gradients', steps=64)
  correlations = [explain.rank_correlation(a, b) for a, b in zip(maps, random_maps)]
  assert np.mean(correlations) < 0.3, correlations
  assert explain.rank_correlation(maps[0], maps[0]) == pytest.approx(1.0)
  saliency, _ = explain.attributions(run, run.variables, x, np.asarray(targets), 'saliency')
  random_saliency, _ = explain.attributions(run, randomized, x, np.asarray(targets),
                                            'saliency')
  assert np.mean([explain.rank_correlation(a, b)
                  for a, b in zip(saliency, random_saliency)]) < 0.5


@pytest.mark.slow
def test_explain_gradcam_writes_overlays_and_a_summary(trained_digits, tmp_path):
  from tests.test_eval_predict import _write_digit_pngs
  paths, labels = _write_digit_pngs(tmp_path, count=3)
  out = tmp_path / 'explained'
  result = run_cli('explain', f'--workdir={trained_digits}', '--method=gradcam',
                   f'--out={out}', *paths, check=True)
  records = json.loads((out / 'summary_gradcam.json').read_text())
  assert [r['file'] for r in records] == [str(p) for p in paths]
  assert sum(int(r['predicted']) == label for r, label in zip(records, labels)) >= 2
  for record, path in zip(records, paths):
    assert record['layer'] == 'convs/1'  # the second of digits_cnn's two convolutions
    assert 0 <= record['attribution']['min'] and record['attribution']['max'] <= 1 + 1e-6
    assert len(record['top_regions']) == 3
    with Image.open(record['overlay']) as image:
      assert image.format == 'PNG' and image.size[0] > 100
    assert f'{path}: predicted {record["predicted"]}' in result.stdout
  assert (out / 'summary_gradcam.txt').read_text().count('gradcam of class') == 3


@pytest.mark.slow
def test_explain_on_the_synthetic_mlp_and_its_refusals(mlp_synthetic, tmp_path):
  from jaxlab import explain
  image = tmp_path / 'noise.png'
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(image)
  records, errors = explain.explain(str(mlp_synthetic), [str(image)],
                                    method='integrated_gradients',
                                    out=str(tmp_path / 'out'))
  assert not errors and records[0]['completeness']['relative_error'] < 0.01
  assert pathlib.Path(records[0]['overlay']).is_file()
  records, _ = explain.explain(str(mlp_synthetic), [str(image)], method='saliency', target='3',
                               out=str(tmp_path / 'out'))
  assert records[0]['target'] == '3'
  with pytest.raises(UserError, match='--target=cat'):
    explain.explain(str(mlp_synthetic), [str(image)], target='cat')
  with pytest.raises(UserError, match='needs a convolutional layer'):
    explain.explain(str(mlp_synthetic), [str(image)], method='gradcam')
  with pytest.raises(UserError, match='not an explanation method'):
    explain.explain(str(mlp_synthetic), [str(image)], method='lime')


def test_explain_refuses_text_models_and_quantized_runs():
  from jaxlab import explain
  text_run = types.SimpleNamespace(quantization=None, task=types.SimpleNamespace(
      input='tokens'), workdir='w')
  with pytest.raises(UserError, match='token-level saliency'):
    explain.check_supported(text_run)
  int8_run = types.SimpleNamespace(quantization=dict(mode='w8'), task=None, workdir='w')
  with pytest.raises(UserError, match='int8'):
    explain.check_supported(int8_run)
