"""Vision models (ResNet, ViT), mixup and label smoothing, ImageNet streaming, and the
vision experiments end to end (train -> checkpoint -> eval -> predict) and on 8 devices."""

import dataclasses
import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlab import data as data_lib
from jaxlab import models, tasks
from jaxlab.inference import evaluate
from jaxlab.commands import eval as eval_command
from jaxlab.inference import trained_run as inference
from jaxlab.models import modeling
from jaxlab.commands import predict as predict_command
from jaxlab.errors import UserError
from tests.conftest import ROOT, load_config, read_metrics, run_cli


def _num_params(name, input_shape, num_classes, **options):
  config = ml_collections.ConfigDict(dict(name=name, **options))
  model = nnx.eval_shape(lambda: models.build(config, input_shape, num_classes, nnx.Rngs(0),
                                              jnp.float32))
  return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize('name,stem,shape,classes,expected', [
    # torchvision.models.resnet{18,34,50}(): 1000 classes, ImageNet stem.
    ('resnet18', 'imagenet', (224, 224, 3), 1000, 11_689_512),
    ('resnet34', 'imagenet', (224, 224, 3), 1000, 21_797_672),
    ('resnet50', 'imagenet', (224, 224, 3), 1000, 25_557_032),
    # The CIFAR stem: a 3x3 instead of a 7x7 kernel; 10 classes.
    ('resnet18', 'cifar', (32, 32, 3), 10, 11_173_962),
])
def test_resnet_parameter_counts_match_torchvision(name, stem, shape, classes, expected):
  assert _num_params(name, shape, classes, stem=stem) == expected


@pytest.mark.parametrize('variant,pool,expected', [
    # timm's vit_*_patch16_224 counts, less the D position-embedding entries of the class
    # token (big_vision adds position embeddings to the patches only).
    ('Ti/16', 'cls', 5_717_416 - 192),
    ('S/16', 'cls', 22_050_664 - 384),
    ('B/16', 'cls', 86_567_656 - 768),
    ('B/16', 'gap', 86_567_656 - 768 - 768),  # no class token either
])
def test_vit_parameter_counts_match_the_reference_models(variant, pool, expected):
  assert _num_params('vit', (224, 224, 3), 1000, variant=variant, pool=pool) == expected


@pytest.mark.parametrize('name,shape,options', [
    ('resnet18', (32, 32, 3), dict(stem='cifar', width=4)),
    ('resnet50', (64, 64, 3), dict(stem='imagenet', width=4)),
    ('vit', (32, 32, 3), dict(variant='mu/8', pool='cls', posemb='sincos2d')),
])
def test_models_give_logits_for_each_image_in_both_stems_and_poolings(name, shape, options):
  config = ml_collections.ConfigDict(dict(name=name, **options))
  logits = nnx.eval_shape(lambda: models.build(config, shape, 7, nnx.Rngs(0), jnp.float32)(
      jnp.ones((2, *shape))))  # shapes only: the end-to-end tests run the numbers
  assert logits.shape == (2, 7)


@pytest.mark.parametrize('name,options,message', [
    ('vit', dict(variant='Q/16'), 'Unknown ViT variant'),
    ('vit', dict(variant='S/5'), 'do not divide into 5 x 5 patches'),
    ('vit', dict(variant='mu/4', num_heads=3), 'not a multiple of num_heads'),
    ('resnet18', dict(stem='tiny'), "stem='tiny' must be one of"),
])
def test_bad_vision_model_options_are_user_errors(name, options, message):
  config = ml_collections.ConfigDict(dict(name=name, **options))
  with pytest.raises(UserError, match=message):
    models.build(config, (32, 32, 3), 10, nnx.Rngs(0), jnp.float32)


def _task(config, image_shape=(8, 8, 3)):
  info = data_lib.image_info('synthetic', image_shape, 10)
  return tasks.create(config, info, compute_dtype=jnp.float32)


def test_batch_norm_trains_on_batch_statistics_and_evaluates_with_running_averages():
  config = load_config('cifar10_resnet18', model__width=4)
  task = _task(config)
  definition, _ = modeling.model_def(config, task)
  variables = jax.jit(functools.partial(modeling.init_variables, config, task))()
  x = jax.random.normal(jax.random.PRNGKey(0), (16, 8, 8, 3)) * 3 + 1
  stem_out = nnx.merge(definition.train_graph, variables.params, variables.model_state).stem(x)

  # Eager: two compiles of the network cost more than running its few ops.
  apply = {train: functools.partial(definition.apply, train=train) for train in (True, False)}
  _, state = apply[True](variables.params, variables.model_state, (x,), {})
  # momentum 0.9 from mean 0, var 1: one update moves 10% of the way to the batch's.
  np.testing.assert_allclose(state['stem_norm']['mean'], 0.1 * stem_out.mean((0, 1, 2)),
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(state['stem_norm']['var'], 0.9 + 0.1 * stem_out.var((0, 1, 2)),
                             rtol=1e-4)
  eval_logits, eval_state = apply[False](variables.params, state, (x,), {})
  assert jax.tree.all(jax.tree.map(jnp.array_equal, eval_state, state))  # eval updates nothing
  shifted = jax.tree.map(lambda s: s + 1.0, state)
  shifted_logits, _ = apply[False](variables.params, shifted, (x,), {})
  train_logits, _ = apply[True](variables.params, state, (x,), {})
  train_shifted, _ = apply[True](variables.params, shifted, (x,), {})
  assert not np.allclose(eval_logits, shifted_logits)  # eval reads the running averages
  np.testing.assert_array_equal(train_logits, train_shifted)  # training ignores them


def _classification(mixup_alpha, label_smoothing):
  config = load_config('cifar10_vit', data__mixup_alpha=mixup_alpha,
                       task__label_smoothing=label_smoothing, data__augment=())
  return _task(config, (2, 2, 1))


def test_mixup_and_label_smoothing_match_a_hand_computation():
  task = _classification(mixup_alpha=0.4, label_smoothing=0.1)
  images = np.arange(12, dtype=np.uint8).reshape(3, 2, 2, 1) * 20
  batch = {'image': images, 'label': np.array([0, 3, 9], np.int32)}
  mixed = task.train_batch(batch, jax.random.PRNGKey(3))
  r = float(mixed['mixup_ratio'][0])
  assert 0 < r < 1 and np.all(mixed['mixup_ratio'] == r)  # one weight per batch
  (x,), _ = task.model_inputs(mixed, jax.random.PRNGKey(0), train=True)
  x_expected = (r * images + (1 - r) * images[[2, 0, 1]]) / 255.0  # each with the one before
  np.testing.assert_allclose(x, x_expected, rtol=1e-6)

  logits = np.array([[2.0, 0, 0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0.5, 0, 0, 0, 0, 0, 3.0],
                     [0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0]], np.float32)
  loss, metrics = task.loss(jnp.asarray(logits), mixed)
  targets = np.zeros((3, 10))
  for i, (own, partner) in enumerate([(0, 9), (3, 0), (9, 3)]):
    targets[i, own] += r
    targets[i, partner] += 1 - r
  targets = 0.9 * targets + 0.1 / 10
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(loss, -(targets * log_probs).sum(-1).mean(), rtol=1e-5)
  dominant = np.array([0, 3, 9]) if r >= 0.5 else np.array([9, 0, 3])
  assert metrics['accuracy'] == pytest.approx(np.mean(logits.argmax(-1) == dominant))


def test_without_mixup_or_smoothing_the_loss_is_plain_cross_entropy():
  task = _classification(mixup_alpha=0.0, label_smoothing=0.0)
  batch = {'image': np.zeros((2, 2, 2, 1), np.uint8), 'label': np.array([1, 4], np.int32)}
  assert task.train_batch(batch, jax.random.PRNGKey(0)) is batch
  logits = jax.random.normal(jax.random.PRNGKey(1), (2, 10))
  loss, _ = task.loss(logits, batch)
  assert loss == optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
  smoothed, _ = _classification(0.0, 0.2).loss(logits, batch)
  targets = optax.smooth_labels(jax.nn.one_hot(batch['label'], 10), 0.2)
  np.testing.assert_allclose(smoothed, optax.softmax_cross_entropy(logits, targets).mean(),
                             rtol=1e-6)


def _imagenet_data_config(**overrides):
  return load_config('imagenet_resnet50', arg=None, data__image_size=32, **overrides).data


@pytest.mark.slow  # imports TensorFlow Datasets
def test_imagenet_streams_mocked_jpegs_through_the_host_transforms():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=6):
    splits = data_lib.load(_imagenet_data_config())
    example = splits.train[2]
    assert isinstance(example['image'], bytes)  # still encoded: the workers decode
    train = splits.train_transform(example, (0, 0, 2))
    test = splits.test_transform(splits.test[0])
  assert splits.info.spec()['image'] == ((32, 32, 3), np.dtype(np.uint8))
  assert splits.info.num_classes == 1000 and len(splits.test) == 6  # the validation split
  assert train['image'].shape == test['image'].shape == (32, 32, 3)
  assert train['image'].dtype == np.uint8


def test_imagenet_needs_streaming_placement():
  with pytest.raises(UserError, match='--config.data.placement=stream'):
    data_lib.load(_imagenet_data_config(data__placement='auto'))


# ------------------------------------------------------------------ end to end

def _write_png(path):
  from PIL import Image
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), np.uint8)).save(path)
  return str(path)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """{experiment: workdir} of each vision smoke experiment trained once: ResNet-18 through
  the CLI, ViT through the library."""
  from jaxlab.train import loop
  resnet_dir = tmp_path_factory.mktemp('resnet18')
  run_cli('train', '--config=experiments/cifar10_resnet18.py:smoke', f'--workdir={resnet_dir}',
          '--config.plots=False', check=True)
  vit_dir = tmp_path_factory.mktemp('vit')
  loop.run(load_config('cifar10_vit', plots=False), str(vit_dir))
  return {'cifar10_resnet18': resnet_dir, 'cifar10_vit': vit_dir}


@pytest.mark.slow
@pytest.mark.parametrize('experiment', ['cifar10_resnet18', 'cifar10_vit'])
def test_smoke_experiment_trains_evaluates_and_predicts(experiment, trained, tmp_path, capsys):
  workdir = str(trained[experiment])
  records = read_metrics(workdir)
  losses = [r['train/loss'] for r in records if 'train/loss' in r]
  assert losses[-1] < losses[0]
  final_eval = [r for r in records if 'eval/accuracy' in r][-1]
  result = eval_command.main(workdir, 'latest')
  # The restored checkpoint, with its BatchNorm statistics, scores as the trained state did.
  assert result['accuracy'] == final_eval['eval/accuracy']
  assert result['loss'] == pytest.approx(final_eval['eval/loss'], rel=1e-5)
  capsys.readouterr()
  assert predict_command.main(workdir, [_write_png(tmp_path / 'x.png')], top_k_count=2,
                      as_json=True) == 0
  prediction = json.loads(capsys.readouterr().out.splitlines()[-1])
  assert len(prediction['top_k']) == 2 and 0 <= prediction['top_k'][0]['probability'] <= 1


@pytest.mark.slow
def test_checkpointed_batch_norm_statistics_are_what_eval_uses(trained):
  run = inference.load(str(trained['cifar10_resnet18']), 'latest')
  stem = run.variables.model_state['stem_norm']
  assert np.abs(np.asarray(stem['mean'])).max() > 1e-3  # trained, not the initial 0 and 1
  assert np.abs(np.asarray(stem['var']) - 1).max() > 1e-3
  reset = jax.tree.map(lambda s: jnp.zeros_like(s) if s.ndim else s,
                       run.variables.model_state)
  fresh = dataclasses.replace(run, variables=modeling.Variables(run.variables.params, reset))
  assert evaluate.evaluate(fresh)['loss'] != pytest.approx(evaluate.evaluate(run)['loss'])


# ------------------------------------------------------------------ 8 devices

@pytest.fixture(scope='module')
def eight_devices():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  result = subprocess.run(
      [sys.executable, '-m', 'tests.vision_worker'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow  # one subprocess: both models on 1 and on 8 devices, and their dry runs
@pytest.mark.parametrize('experiment', ['cifar10_resnet18', 'cifar10_vit'])
def test_eight_device_mesh_trains_like_one_device(experiment, eight_devices):
  assert eight_devices['devices'] == 8
  runs = eight_devices['runs'][experiment]
  (single_losses, single_stats), (mesh_losses, mesh_stats) = runs['single'], runs['dp_fsdp_tp']
  np.testing.assert_allclose(mesh_losses, single_losses, rtol=2e-5)
  assert single_stats.keys() == mesh_stats.keys()
  for name, values in single_stats.items():  # BatchNorm: global batch means, not per-device
    np.testing.assert_allclose(mesh_stats[name], values, rtol=2e-5, atol=2e-6, err_msg=name)
  if experiment == 'cifar10_resnet18':
    assert len(single_stats) == 40  # mean and var of 20 BatchNorms
    assert any(np.abs(np.asarray(v) - np.round(v)).max() > 1e-3 for v in single_stats.values())


@pytest.mark.slow
@pytest.mark.parametrize('experiment,row', [
    ('cifar10_resnet18', "blocks/2/conv2/kernel          (3, 3, 16, 16)     "
                         "P(None, None, 'fsdp', 'tensor')"),
    ('cifar10_vit', "blocks/0/attention/query/kernel  (32, 2, 16)        "
                    "P('fsdp', 'tensor', None)"),
])
def test_dry_run_prints_the_sharding_table_on_eight_devices(experiment, row, eight_devices):
  report = eight_devices['dry_runs'][experiment]
  assert "mesh: {'data': 2, 'fsdp': 2, 'tensor': 2}" in report
  assert row in report.splitlines()
