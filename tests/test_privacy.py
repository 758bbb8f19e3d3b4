"""DP-SGD (config.privacy): per-example clipping bounds one example's influence, the
accountant reproduces the DP-SGD paper's figures, a private digits run trains and
reports ε everywhere, and settings whose accounting would be wrong are refused."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxlab import config as config_lib
from jaxlab import tasks
from jaxlab.perf import dry_run
from jaxlab.inference import evaluate
from jaxlab.commands import eval as eval_command
from jaxlab.inference import trained_run as inference
from jaxlab.models import modeling
from jaxlab.privacy import accounting as privacy
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.train import programs as programs_lib
from jaxlab.train import state as state_lib
from jaxlab.train import step as step_lib
from tests.conftest import load_config, read_metrics, run_cli

pytest.importorskip('dp_accounting')

CLIP = 0.5
BATCH = 8


def _programs(config):
  info, num_train = dry_run.shape_info(config.data)
  task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config))
  return programs_lib.TrainPrograms(config, task, mesh_lib.create(config.mesh), 10, num_train)


@pytest.fixture(scope='module')
def clipped_grads():
  """(batch -> the summed clipped gradients / B without noise) of a digits CNN, and a
  random batch whose examples have gradients far above the clip norm."""
  config = load_config('digits_cnn', privacy__enabled=True, privacy__l2_clip_norm=CLIP,
                       data__batch_size=BATCH, privacy__sampling='fixed')
  programs = _programs(config)
  step_config = programs.step_config
  state = state_lib.create(config, programs.task, programs.tx, programs.layout)
  dp = dataclasses.replace(step_config.privacy, noise_multiplier=0.0)
  loss_function = functools.partial(step_lib.loss_fn, step_config=step_config)

  @jax.jit
  def grads(batch):
    return dp.grads(loss_function, state.params, state.model_state, batch,
                    jax.random.PRNGKey(0))[1]

  rng = np.random.default_rng(0)
  batch = dict(image=rng.integers(0, 17, (BATCH, 8, 8, 1)).astype(np.uint8) * 4,
               label=rng.integers(0, 10, BATCH).astype(np.int32),
               mask=np.ones(BATCH, np.float32), dp_dropped=np.zeros((), np.int32))
  return grads, batch


def _distance(a, b):
  return float(step_lib.global_norm(jax.tree.map(jnp.subtract, a, b)))


def test_clipping_bounds_one_examples_influence_on_the_batch_gradient(clipped_grads):
  grads, batch = clipped_grads
  base = grads(batch)
  removed = grads(dict(batch, mask=batch['mask'] * (np.arange(BATCH) != 3)))
  replaced_batch = dict(batch, image=batch['image'].copy(), label=batch['label'].copy())
  replaced_batch['image'][3] = 255 - replaced_batch['image'][3]
  replaced_batch['label'][3] = (replaced_batch['label'][3] + 5) % 10
  replaced = grads(replaced_batch)
  # Add/remove one example (Poisson's adjacency): at most C / B; replace one: 2 C / B.
  assert _distance(base, removed) <= CLIP / BATCH * (1 + 1e-5)
  assert _distance(base, replaced) <= 2 * CLIP / BATCH * (1 + 1e-5)
  assert _distance(base, removed) > 0.9 * CLIP / BATCH  # the example's gradient was clipped


def test_epsilon_of_the_dp_sgd_paper_mnist_setting_matches_published_figures():
  # Abadi et al. 2016: q = 256/60000, σ = 1.1, 60 epochs, δ = 1e-5. TF Privacy's RDP
  # accountant reports 2.60 for this setting (the paper's moments accountant ≈ 2-3 with an
  # older conversion); the PLD accountant is tighter: 2.38.
  steps = int(np.ceil(60 * 60000 / 256))
  setting = dict(noise_multiplier=1.1, sampling='poisson', delta=1e-5)
  rdp = ml_collections.ConfigDict(dict(setting, accountant='rdp'))
  pld = ml_collections.ConfigDict(dict(setting, accountant='pld'))
  assert privacy.epsilon(rdp, 60000, 256, steps) == pytest.approx(2.60, abs=0.01)
  assert privacy.epsilon(pld, 60000, 256, steps) == pytest.approx(2.38, abs=0.01)


@pytest.fixture(scope='module')
def private_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('digits_dp')
  result = run_cli('train', '--config=experiments/digits_cnn_dp.py:smoke', f'--workdir={workdir}',
                   check=True)
  return workdir, result


@pytest.mark.slow
def test_private_digits_run_trains_and_reports_epsilon_in_metrics_summary_and_eval(private_run):
  workdir, result = private_run
  records = read_metrics(workdir)
  train = [r for r in records if 'train/loss' in r]
  epsilons = [r['train/epsilon'] for r in train]
  assert epsilons == sorted(epsilons) and epsilons[0] > 0  # spent as training goes
  config = config_lib.load_from_workdir(str(workdir))
  final = privacy.epsilon(config.privacy, 1437, config.data.batch_size, train[-1]['step'])
  assert epsilons[-1] == pytest.approx(final)
  assert f'ε = {final:.2f} at δ = 1e-05' in result.stdout
  accuracy = [r['eval/accuracy'] for r in records if 'eval/accuracy' in r]
  assert accuracy[-1] > 0.2  # chance is 0.1 (10 steps): it learns through the noise
  evaluation = evaluate.evaluate(inference.load(str(workdir), 'latest'))  # jaxlab eval's JSON
  assert evaluation['privacy']['epsilon'] == pytest.approx(final)
  assert evaluation['privacy']['sampling'] == 'poisson'


@pytest.mark.slow
def test_eval_of_a_private_run_prints_epsilon_and_delta(private_run, capsys):
  workdir, _ = private_run
  result = eval_command.main(str(workdir), 'latest')  # what `jaxlab eval` runs
  spent = result['privacy']
  printed = capsys.readouterr().out
  said = f'Privacy: trained with DP-SGD, ε = {spent["epsilon"]:.2f} at δ = 1e-05 (rdp, '
  assert said in printed


def test_eval_states_privacy_only_for_private_runs():
  spent = dict(epsilon=2.604, delta=1e-5, accountant='rdp', sampling='poisson', steps=10)
  assert evaluate.what_was_evaluated(dict(accuracy=0.5, privacy=spent)) == [
      'Privacy: trained with DP-SGD, ε = 2.60 at δ = 1e-05 (rdp, poisson sampling, 10 steps).']
  assert evaluate.what_was_evaluated(dict(accuracy=0.5)) == []


@pytest.mark.parametrize('override, named', [
    ('grad_accum_steps=2', 'grad_accum_steps'),
    ('data.mixup_alpha=0.2', 'mixup_alpha'),
    ('data.placement=stream', 'placement'),
    ('distill.teacher_workdir=/tmp/teacher', 'teacher_workdir'),
])
def test_settings_whose_accounting_would_be_wrong_are_refused(override, named):
  config = load_config('digits_cnn_dp')
  key, value = override.split('=')
  node = config
  *path, leaf = key.split('.')
  for part in path:
    node = node[part]
  node[leaf] = type(node[leaf])(value)
  with pytest.raises(UserError, match=named):
    config_lib.validate(config)


def test_batch_statistics_models_are_refused():
  config = load_config('digits_cnn_dp')
  config.model = ml_collections.ConfigDict(dict(name='resnet18', width=4))
  with pytest.raises(UserError, match='BatchNorm'):
    _programs(config)


def test_refusal_exits_with_code_2():
  result = run_cli('train', '--config=experiments/digits_cnn_dp.py:smoke', '--workdir=/tmp/x',
                   '--config.grad_accum_steps=2')
  assert result.returncode == 2
  assert 'privacy.enabled=True cannot be combined with --config.grad_accum_steps' in result.stderr
