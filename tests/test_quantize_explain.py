"""`jaxlab quantize` (qwix int8) and `jaxlab explain` (saliency, integrated gradients,
Grad-CAM, HiResCAM) on trained digits_cnn and synthetic mnist_mlp smoke runs, and on a
digits_cnn trained where the answer is known by construction (the quadrant task)."""

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
  from jaxlab.inference import trained_run as inference
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
  from jaxlab.commands import eval as eval_command
  from jaxlab.inference import trained_run as inference
  from jaxlab.inference import predict
  workdir, quantized, _ = quantized_digits
  float_run, int8_run = digits_run, inference.load(str(quantized))
  kernels = [leaf for path, leaf in _leaves(int8_run.variables.params) if 'qvalue' in path]
  assert kernels and all(leaf.dtype == jnp.int8 for leaf in kernels)
  result = eval_command.main(str(quantized), 'best')  # what `jaxlab eval` runs
  report = json.loads((pathlib.Path(workdir) / 'quantize_w8a8.json').read_text())
  assert result['accuracy'] == pytest.approx(report['int8_metrics']['accuracy'])
  assert result['loss'] != pytest.approx(report['float_metrics']['loss'], abs=1e-6)
  images, _ = _digit_images(float_run, 64)
  batch = {'image': np.asarray(images) * float_run.info.pixel_max}
  float_probs = predict.outputs(float_run, batch)['probabilities']
  int8_probs = predict.outputs(int8_run, batch)['probabilities']
  assert np.abs(float_probs - int8_probs).max() > 1e-4  # not the float weights
  assert (float_probs.argmax(-1) == int8_probs.argmax(-1)).mean() >= 0.95


@pytest.mark.slow
def test_eval_of_the_quantized_workdir_says_it_is_int8(quantized_digits, capsys):
  from jaxlab.commands import eval as eval_command
  workdir, quantized, _ = quantized_digits
  result = eval_command.main(str(quantized), 'best')  # what `jaxlab eval` runs
  printed = capsys.readouterr().out
  assert (f'Model: int8, quantized with --mode=w8a8 (int8 weights and activations) from step '
          f'{result["step"]} of {workdir}.') in printed
  from jaxlab.workdir import files as workdir_files
  written = json.loads((quantized / workdir_files.eval_result(result['step'])).read_text())
  assert written['quantization']['mode'] == 'w8a8'


def test_eval_of_a_float_run_claims_no_quantization():
  from jaxlab.inference import evaluate
  spec = dict(mode='w8', source_workdir='/runs/a', source_step=40)
  assert evaluate.what_was_evaluated(dict(accuracy=0.9, quantization=spec)) == [
      'Model: int8, quantized with --mode=w8 (int8 weights) from step 40 of /runs/a.']
  assert evaluate.what_was_evaluated(dict(accuracy=0.9, quantization=None)) == []


def _leaves(tree):
  import jax
  return [('/'.join(str(getattr(k, 'key', k)) for k in path), leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


@pytest.mark.slow
def test_weight_only_quantization_of_the_synthetic_mlp(mlp_synthetic):
  from jaxlab.inference import quantize
  report = quantize.quantize(str(mlp_synthetic), 'best', 'w8')
  assert abs(report['metric_change']['accuracy']) <= ACCURACY_TOLERANCE
  assert report['size_ratio'] < 0.3
  assert report['calibration_batches'] == 0
  assert pathlib.Path(report['quantized_workdir'], 'checkpoints').is_dir()


def test_quantize_rejects_bad_modes_before_loading_anything():
  from jaxlab.inference import quantize
  with pytest.raises(UserError, match='w8a8'):
    quantize.check_mode('int4', None)
  with pytest.raises(UserError, match='--calibration_batches'):
    quantize.check_mode('w8', 5)


def test_integrated_gradients_are_complete_and_differ_for_a_randomized_model(digits_run):
  from jaxlab.inference import attributions as explain
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
  from jaxlab.inference import explanations
  image = tmp_path / 'noise.png'
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(image)
  records, errors = explanations.explain(str(mlp_synthetic), [str(image)],
                                    method='integrated_gradients',
                                    out=str(tmp_path / 'out'))
  assert not errors and records[0]['completeness']['relative_error'] < 0.01
  assert pathlib.Path(records[0]['overlay']).is_file()
  records, _ = explanations.explain(str(mlp_synthetic), [str(image)], method='saliency', target='3',
                               out=str(tmp_path / 'out'))
  assert records[0]['target'] == '3'
  with pytest.raises(UserError, match='--target=cat'):
    explanations.explain(str(mlp_synthetic), [str(image)], target='cat')
  with pytest.raises(UserError, match='needs a convolutional layer'):
    explanations.explain(str(mlp_synthetic), [str(image)], method='gradcam')
  with pytest.raises(UserError, match='not an explanation method'):
    explanations.explain(str(mlp_synthetic), [str(image)], method='lime')


def test_explain_refuses_text_models_and_quantized_runs():
  from jaxlab.inference import attributions as explain
  text_run = types.SimpleNamespace(quantization=None, task=types.SimpleNamespace(
      input='tokens'), workdir='w')
  with pytest.raises(UserError, match='token-level saliency'):
    explain.check_supported(text_run)
  int8_run = types.SimpleNamespace(quantization=dict(mode='w8'), task=None, workdir='w')
  with pytest.raises(UserError, match='int8'):
    explain.check_supported(int8_run)


# Known answers: 16x16 grey images whose class k is "a bright filled 3x3 square lies in
# quadrant k" (top-left, top-right, bottom-left, bottom-right); the other quadrants hold
# bright 1-pixel lines (distractors of the same brightness) and every pixel low noise.
# The deciding pixels are in quadrant k by construction, so an attribution method that
# explains the class should put most of its mass there (25% by chance).
QUADRANT = 8  # of a 16x16 image


def _quadrant_images(count, seed):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 60, (count, 2 * QUADRANT, 2 * QUADRANT)).astype(np.uint8)
  labels = rng.integers(0, 4, count).astype(np.int32)
  for image, label in zip(images, labels):
    for quadrant in range(4):
      top, left = quadrant // 2 * QUADRANT, quadrant % 2 * QUADRANT
      if quadrant == label:
        row, col = top + rng.integers(1, QUADRANT - 3), left + rng.integers(1, QUADRANT - 3)
        image[row:row + 3, col:col + 3] = rng.integers(200, 256)
      elif rng.random() < 0.8:
        length = rng.integers(3, 6)
        row = top + rng.integers(1, QUADRANT - length)
        col = left + rng.integers(1, QUADRANT - length)
        if rng.random() < 0.5:
          image[row, col:col + length] = 255
        else:
          image[row:row + length, col] = 255
  return images, labels


def _quadrant_shares(maps_NxHxW, labels_N):
  """The share of each map's mass (maps already >= 0) in its label's quadrant."""
  shares = []
  for map_HxW, label in zip(maps_NxHxW, labels_N):
    top, left = label // 2 * QUADRANT, label % 2 * QUADRANT
    shares.append(map_HxW[top:top + QUADRANT, left:left + QUADRANT].sum() /
                  max(map_HxW.sum(), 1e-12))
  return np.array(shares)


@pytest.fixture(scope='module')
def quadrant_run(tmp_path_factory):
  """(run, model inputs x_Nx16x16x1, labels) of digits_cnn trained through jaxlab's own
  loop on the quadrant task (npz data), 8 short epochs: about 10 s on 2 cores."""
  from jaxlab.inference import trained_run as inference
  from jaxlab.train import loop
  from tests.conftest import load_config
  directory = tmp_path_factory.mktemp('quadrants')
  (x_train, y_train), (x_test, y_test) = _quadrant_images(2048, 0), _quadrant_images(32, 1)
  np.savez(directory / 'quadrants.npz', x_train=x_train, y_train=y_train, x_test=x_test,
           y_test=y_test)
  config = load_config('digits_cnn', data__name='npz',
                       data__path=str(directory / 'quadrants.npz'), num_epochs=8,
                       steps_per_loop=16, log_every_steps=64, eval_every_steps=512,
                       checkpoint_every_steps=512)
  loop.run(config, str(directory / 'workdir'))
  run = inference.load(str(directory / 'workdir'))
  (x,), _ = run.task.model_inputs({'image': jnp.asarray(x_test[..., None])}, None, train=False)
  return run, x.astype(jnp.float32), y_test


@pytest.mark.slow
def test_each_method_puts_its_mass_in_the_quadrant_that_decides_the_label(quadrant_run):
  from jaxlab.inference import attributions as explain
  run, x, labels = quadrant_run
  logits = explain._logits(run.variables, x, model=run.programs.model)
  assert (np.asarray(logits).argmax(-1) == labels).mean() >= 0.95  # the model learnt the rule
  maps = {method: explain.attributions(run, run.variables, x, labels, method, steps=64)[0]
          for method in explain.METHODS}
  shares = {  # saliency and the CAMs are >= 0 already
      'saliency': _quadrant_shares(maps['saliency'], labels),
      # Integrated gradients' positive part: the evidence for the class, which lies in the
      # quadrant by construction; negative attributions (distractors that speak for another
      # class) are true too, but not the answer. |IG| is reported beside it.
      'integrated_gradients': _quadrant_shares(np.maximum(maps['integrated_gradients'], 0),
                                               labels),
      'integrated_gradients |.|': _quadrant_shares(np.abs(maps['integrated_gradients']),
                                                   labels),
      'gradcam': _quadrant_shares(maps['gradcam'], labels),
      'hirescam': _quadrant_shares(maps['hirescam'], labels)}
  print({name: f'mean {s.mean():.3f}, min {s.min():.3f}' for name, s in shares.items()})
  assert shares['saliency'].mean() > 0.5
  assert shares['integrated_gradients'].mean() > 0.8
  assert shares['hirescam'].mean() > 0.75 and shares['hirescam'].min() > 0.5
  # Grad-CAM's position-averaged weights blur what cnn's flattening head reads position by
  # position (measured 0.42, near the 0.25 of chance): the reason hirescam exists.
  assert shares['gradcam'].mean() < shares['hirescam'].mean() - 0.2


def _split_at_last_convolution(run, variables, x_1xHxWxC):
  """digits_cnn's forward pass cut at its last convolution, written from its layers
  (not through explain.py): (that convolution's output A, the logits as a function of A)."""
  from flax import nnx
  import jax
  net = nnx.merge(run.programs.model.eval_graph, variables.params, variables.model_state)
  pool = lambda h: nnx.max_pool(h, window_shape=(2, 2), strides=(2, 2))
  features = net.convs[1](pool(jax.nn.relu(net.convs[0](x_1xHxWxC))))

  def logits_of(features):
    hidden = pool(jax.nn.relu(features)).reshape(1, -1)
    for layer in net.dense:
      hidden = jax.nn.relu(layer(hidden))
    return net.head(hidden)[0]
  return features, logits_of


def _bilinear_upsample(map_hxw, size):
  """Half-pixel-centred bilinear resize of a square map, edges repeated (NumPy)."""
  cells = map_hxw.shape[0]
  position = np.clip((np.arange(size) + 0.5) * cells / size - 0.5, 0, cells - 1)
  low = np.floor(position).astype(int)
  high, fraction = np.minimum(low + 1, cells - 1), position - low
  rows = map_hxw[low] * (1 - fraction)[:, None] + map_hxw[high] * fraction[:, None]
  return rows[:, low] * (1 - fraction) + rows[:, high] * fraction


@pytest.mark.slow
def test_gradcam_and_hirescam_equal_the_textbook_formulas_on_the_same_weights(quadrant_run):
  import jax
  from jaxlab.inference import attributions as explain
  run, x, labels = quadrant_run
  x, labels = x[:8], labels[:8]
  logits = np.asarray(explain._logits(run.variables, x, model=run.programs.model))
  for method in explain.CAM_METHODS:
    maps, extra = explain.attributions(run, run.variables, x, labels, method)
    assert extra['layer'] == 'convs/1'
    for index, label in enumerate(labels):
      features, logits_of = _split_at_last_convolution(run, run.variables, x[index:index + 1])
      split_logits, vjp = jax.vjp(logits_of, features)
      np.testing.assert_allclose(split_logits, logits[index], atol=1e-4)  # the cut is right
      (gradient,) = vjp(jnp.asarray(np.eye(logits.shape[1], dtype=np.float32)[label]))
      a_hxwxC, da_hxwxC = (np.asarray(v[0], np.float64) for v in (features, gradient))
      weights = da_hxwxC if method == 'hirescam' else da_hxwxC.mean(axis=(0, 1))
      cam = _bilinear_upsample(np.maximum((a_hxwxC * weights).sum(-1), 0), x.shape[1])
      np.testing.assert_allclose(maps[index], cam / max(cam.max(), 1e-12), atol=1e-5)


@pytest.mark.slow
def test_saliency_equals_finite_differences_of_the_logit(quadrant_run):
  from jaxlab.inference import attributions as explain
  run, x, labels = quadrant_run
  x, labels = np.asarray(x[:2]), labels[:2]
  saliency, _ = explain.attributions(run, run.variables, jnp.asarray(x), labels, 'saliency')
  logit = lambda image, label: float(explain._logits(run.variables, jnp.asarray(image[None]),
                                                     model=run.programs.model)[0, label])
  epsilon = 1e-3
  for index, label in enumerate(labels):
    strongest = np.argsort(saliency[index].ravel())[-3:]
    others = np.random.default_rng(index).choice(saliency[index].size, 3, replace=False)
    for pixel in np.concatenate([strongest, others]):
      row, col = divmod(int(pixel), x.shape[2])
      up, down = x[index].copy(), x[index].copy()
      up[row, col] += epsilon
      down[row, col] -= epsilon
      estimate = abs(logit(up, label) - logit(down, label)) / (2 * epsilon)
      assert estimate == pytest.approx(saliency[index, row, col],
                                       abs=0.01 * float(saliency[index].max()))


@pytest.mark.parametrize('signed', [False, True])
def test_overlay_colours_read_off_the_colourbar(signed):
  from jaxlab.inference import explanations
  image = np.zeros((8, 8, 1))
  image[2:6, 3:5] = 1.0  # an outline crosses the map, drawn over it
  heat = np.linspace(-0.5 if signed else 0, 0.5, 64).reshape(8, 8)
  heat[6, 1] = 2.0  # the largest cell
  figure, artist = explanations.overlay_figure(image, heat, 'test', signed)
  assert artist.get_alpha() in (None, 1)  # opaque: nothing beneath shows through
  figure.canvas.draw()
  pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(int)
  height = pixels.shape[0]

  def cell_colour(row, col):  # the median over the cell's inner pixels
    (x0, y0), (x1, y1) = artist.axes.transData.transform([(col - 0.3, row - 0.3),
                                                          (col + 0.3, row + 0.3)])
    rows = slice(int(height - max(y0, y1)), int(height - min(y0, y1)))
    return np.median(pixels[rows, int(min(x0, x1)):int(max(x0, x1))].reshape(-1, 3), axis=0)

  bar = figure.axes[-1].get_window_extent()
  row = int(height - bar.y1) + 2  # inside the bar's outline
  top_of_bar = pixels[row, int((bar.x0 + bar.x1) / 2)]
  bar_fraction = 1 - (row + 0.5 - (height - bar.y1)) / bar.height  # what that row shows
  expected_top = np.round(np.array(artist.cmap(1.0)[:3]) * 255)
  np.testing.assert_allclose(cell_colour(6, 1), expected_top, atol=2)
  np.testing.assert_allclose(top_of_bar, np.round(np.array(artist.cmap(bar_fraction)[:3]) * 255),
                             atol=3)
  # A middle cell's colour is the colourmap's at its value, as the colourbar reads.
  value = heat[3, 6]
  expected = np.round(np.array(artist.cmap(artist.norm(value))[:3]) * 255)
  np.testing.assert_allclose(cell_colour(3, 6), expected, atol=3)
  from jaxlab.workdir import plots
  plots.pyplot().close(figure)
