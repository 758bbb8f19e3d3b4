"""Fine-tuning: init.from_workdir, init.reset, frozen parameters, learning-rate
multipliers, LoRA (through qwix) and its merged export, and exact resume."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from jaxlab import data as data_lib
from jaxlab import tasks
from jaxlab.checkpoint import manager as checkpoint_lib
from jaxlab.commands import export
from jaxlab.errors import UserError
from jaxlab.export import exported_model
from jaxlab.inference import forward, trained_run as inference
from jaxlab.models import modeling
from jaxlab.perf import dry_run
from jaxlab.finetune import patterns, trainable
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.train import loop, resume, state as state_lib
from jaxlab.train.programs import TrainPrograms
from tests.conftest import load_config, restore_params, run_cli

FAST = dict(plots=False, eval_every_steps=0, checkpoint_every_steps=0, steps_per_loop=8,
            log_every_steps=8)  # one block length: one compilation


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  """A digits_cnn run of 22 steps: the weights every fine-tuning test starts from."""
  workdir = tmp_path_factory.mktemp('source')
  loop.run(load_config('digits_cnn', num_steps=22, plots=False), str(workdir))
  params, step = restore_params(workdir)
  return str(workdir), params, step


def finetune_config(source_dir, arg='smoke', **overrides):
  return load_config('finetune_digits', arg, init__from_workdir=source_dir,
                     init__checkpoint='latest', **{**FAST, **overrides})


def named(tree):
  return dict(zip(patterns.paths(tree), jax.tree.leaves(tree)))


def initial_state(config, workdir):
  """The state a run starts from (step 0), without compiling its blocks."""
  mesh = mesh_lib.create(config.mesh)
  splits = data_lib.load(config.data, str(workdir))
  task = tasks.create(config, splits.info, compute_dtype=modeling.compute_dtype(config))
  programs = TrainPrograms(config, task, mesh, 8, len(splits.train))
  checkpointer = checkpoint_lib.Checkpointer(str(workdir), best_metric=None)
  try:
    state, step, _ = resume.restore_or_init(config, task, programs, checkpointer)
  finally:
    checkpointer.close()
  return state, step, programs


def test_init_from_restores_exactly_and_reset_starts_only_the_matching_paths_fresh(
    source, tmp_path):
  source_dir, source_params, _ = source
  config = finetune_config(source_dir, init__reset=('head/.*',))
  state, step, programs = initial_state(config, tmp_path / 'run')
  assert step == 0 and int(state.step) == 0
  fresh = named(state_lib.create(config, programs.task, programs.tx, programs.layout).params)
  started, saved = named(jax.device_get(state.params)), named(source_params)
  assert set(started) == set(saved)
  for path, value in started.items():
    expected = fresh[path] if path.startswith('head/') else saved[path]
    np.testing.assert_array_equal(value, expected, err_msg=path)
  assert not np.array_equal(started['head/kernel'], saved['head/kernel'])


def test_a_shape_mismatch_without_reset_exits_2_naming_paths_shapes_and_the_fix(
    source, tmp_path):
  result = run_cli('train', '--config=experiments/finetune_digits.py:smoke',
                   f'--workdir={tmp_path}', f'--config.init.from_workdir={source[0]}',
                   '--config.init.reset=()', '--config.model.dense_features=(64,)')
  assert result.returncode == 2, result.stderr
  message = ' '.join(result.stderr.split())
  assert 'params/dense/0/bias: source (128,), this model (64,)' in message
  assert "--config.init.reset='dense/0/.*'" in message
  assert not (tmp_path / 'config.json').exists()  # refused before the run wrote anything


@pytest.fixture(scope='module')
def frozen_run(source, tmp_path_factory):
  """8 steps of adamw with weight decay: convs frozen by pattern, dense by a learning-rate
  multiplier of 0, head trained (not reset, so it starts from the source's)."""
  workdir = tmp_path_factory.mktemp('frozen')
  config = finetune_config(source[0], num_steps=8, init__reset=(),
                           optimizer__lr_multipliers=('dense/.*=0',),
                           optimizer__weight_decay=0.1)
  loop.run(config, str(workdir))
  return workdir, config


def test_frozen_and_zero_rate_parameters_stay_bitwise_while_the_rest_trains(source, frozen_run):
  trained, step = restore_params(frozen_run[0])
  assert step == 8
  before, after = named(source[1]), named(trained)
  for path in after:
    if path.startswith(('convs/', 'dense/')):
      np.testing.assert_array_equal(after[path], before[path], err_msg=path)
  assert not np.array_equal(after['head/kernel'], before['head/kernel'])


def test_optimizer_state_holds_only_the_trained_parameters(frozen_run):
  workdir, config = frozen_run
  state = ocp.StandardCheckpointer().restore(workdir / 'checkpoints' / '8' / 'state')
  moments = [path for path in patterns.paths(state['opt_state']) if path.endswith('kernel')
             or path.endswith('bias')]
  assert moments and all('/head/' in path for path in moments)
  result = dry_run.analyse(config)
  head = 128 * 10 + 10
  assert result['trained_params'] == head
  assert head * 2 * 4 <= result['opt_state_bytes'] < head * 2 * 4 + 64  # mu, nu (+ counts)


def test_learning_rate_multipliers_scale_the_update_and_zero_freezes():
  params = {'backbone': {'kernel': jnp.ones((3, 2))}, 'head': {'kernel': jnp.ones((2,))}}
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  rule = trainable.Trainability(multipliers=(('backbone/.*', 0.1),))
  tx = rule.wrap(optax.sgd(1.0))
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates['backbone']['kernel'], -0.05 * np.ones((3, 2)), rtol=1e-6)
  np.testing.assert_array_equal(updates['head']['kernel'], -0.5 * np.ones(2))
  zero = trainable.Trainability(multipliers=(('backbone/.*', 0.0),))
  assert zero.labels(params) == {'backbone': {'kernel': 'frozen'}, 'head': {'kernel': 'trained'}}


def test_a_pattern_matching_no_parameter_is_refused(source, tmp_path):
  config = finetune_config(source[0], optimizer__frozen=('backbone/.*',))
  with pytest.raises(UserError, match="'backbone/.\\*' matches no parameter"):
    initial_state(config, tmp_path)


@pytest.fixture(scope='module')
def lora_run(source, tmp_path_factory):
  """8 steps of LoRA (rank 4) on the dense layer, the head not reset (so frozen too)."""
  workdir = tmp_path_factory.mktemp('lora')
  loop.run(finetune_config(source[0], 'lora,smoke', num_steps=8, init__reset=()), str(workdir))
  return workdir


def test_lora_trains_only_the_adapters(source, lora_run):
  trained, _ = restore_params(lora_run)
  before, after = named(source[1]), named(trained)
  adapters = {p for p in after if p.endswith(('_lora_a', '_lora_b'))}
  assert adapters == {'dense/0/kernel_lora_a', 'dense/0/kernel_lora_b'}
  assert set(after) - adapters == set(before)
  for path in before:
    np.testing.assert_array_equal(after[path], before[path], err_msg=path)
  assert np.abs(after['dense/0/kernel_lora_b']).max() > 0  # B starts at zero


def test_merged_lora_export_equals_the_unmerged_model(lora_run, tmp_path):
  out = tmp_path / 'merged'
  export.main(str(lora_run), str(out), checkpoint='latest', platforms='cpu', merge_lora=True)
  merged = exported_model.ExportedModel(out)
  names = [w['name'] for w in merged.signature['weights']]
  assert not [n for n in names if 'lora' in n]
  run = inference.load(str(lora_run), 'latest')
  images = np.random.default_rng(0).uniform(0, 16, (7, 8, 8, 1)).astype(np.float32)
  unmerged = jax.jit(lambda v, x: forward.export_outputs(
      v, {'image': x}, model=run.programs.model, task=run.task))(run.variables, images)
  np.testing.assert_allclose(merged({'image': images})['logits'], unmerged['logits'],
                             rtol=1e-5, atol=1e-5)
  base = run.variables.params['dense'][0]['kernel']
  kernel = dict(zip(names, merged.weights))['params/dense/0/kernel']
  assert not np.allclose(kernel, base)  # the adapter was folded in


def test_fine_tuning_resumed_halfway_ends_bitwise_equal(source, tmp_path):
  def run(workdir, steps):
    return loop.run(finetune_config(source[0], num_steps=steps, optimizer__schedule='constant',
                                    checkpoint_every_steps=8), str(workdir))
  run(tmp_path / 'straight', 16)
  run(tmp_path / 'resumed', 8)
  assert run(tmp_path / 'resumed', 16)['step'] == 16
  straight, _ = restore_params(tmp_path / 'straight')
  resumed, _ = restore_params(tmp_path / 'resumed')
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
