"""Configs: overrides, bad overrides, saved config, step arithmetic."""

import json
import re

import pytest

from jaxlab import config as config_lib
from jaxlab.errors import UserError
from tests.conftest import load_config, run_cli


def test_closest_keys_suggests_the_intended_field():
  config = load_config('digits_cnn')
  assert config_lib.closest_keys(config, 'optimizer.learnin_rate')[0] == 'optimizer.learning_rate'
  assert 'data.batch_size' in config_lib.closest_keys(config, 'data.batchsize')


@pytest.mark.parametrize('name', ['digits_cnn', 'mnist_mlp', 'mnist_cnn', 'cifar10_cnn'])
def test_every_experiment_has_the_common_fields(name):
  keys = set(config_lib.flat_keys(load_config(name, arg=None)))
  common = {'seed', 'data.name', 'data.batch_size', 'data.data_dir', 'model.name',
            'optimizer.name', 'optimizer.learning_rate', 'num_epochs', 'num_steps',
            'steps_per_loop', 'log_every_steps', 'eval_every_steps', 'checkpoint_every_steps'}
  assert common <= keys


def test_total_steps_prefers_num_steps():
  config = load_config('digits_cnn')
  assert config_lib.total_steps(config, steps_per_epoch=44) == 2 * 44
  config.num_steps = 7
  assert config_lib.total_steps(config, steps_per_epoch=44) == 7


def test_override_reaches_training_and_the_saved_config(tmp_path):
  result = run_cli('train', '--config=experiments/digits_cnn.py:smoke', f'--workdir={tmp_path}',
                   '--config.optimizer.learning_rate=3e-3', '--config.num_steps=11',
                   '--config.data.batch_size=64', '--config.model.conv_features=(8,16)')
  assert result.returncode == 0, result.stderr
  saved = json.loads((tmp_path / 'config.json').read_text())
  assert saved['optimizer']['learning_rate'] == 3e-3
  assert saved['data']['batch_size'] == 64
  assert saved['model']['conv_features'] == [8, 16]
  records = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert records[-1]['step'] == 11
  # warmup_cosine peaks at the overridden learning rate
  assert max(r.get('train/learning_rate', 0) for r in records) <= 3e-3 + 1e-9


@pytest.mark.parametrize('flag,expected', [
    ('--config.optimizer.learnin_rate=1', '--config.optimizer.learning_rate'),
    ('--config.data.batchsize=8', '--config.data.batch_size'),
    ('--config.optimizr.learning_rate=1', '--config.optimizer.learning_rate'),
])
def test_unknown_key_exits_2_with_closest_keys(tmp_path, flag, expected):
  result = run_cli('train', '--config=experiments/digits_cnn.py:smoke', f'--workdir={tmp_path}',
                   flag)
  assert result.returncode == 2
  assert expected in result.stderr
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'config.json').exists()


@pytest.mark.parametrize('args,fragment', [
    (['--config.optimizer.learning_rate=fast'], 'learning_rate'),
    (['--config.seed=1.5'], 'seed'),
    ([], None),  # placeholder: replaced below by a missing config
])
def test_bad_values_and_missing_inputs_exit_2(tmp_path, args, fragment):
  if not args:
    result = run_cli('train', f'--workdir={tmp_path}')
    fragment = '--config'
  else:
    result = run_cli('train', '--config=experiments/digits_cnn.py:smoke', f'--workdir={tmp_path}',
                     *args)
  assert result.returncode == 2, result.stderr
  assert fragment in result.stderr
  assert 'Traceback' not in result.stderr


def test_missing_workdir_and_unknown_command_exit_2():
  no_workdir = run_cli('train', '--config=experiments/digits_cnn.py:smoke')
  assert no_workdir.returncode == 2 and '--workdir' in no_workdir.stderr
  unknown = run_cli('trian', '--config=experiments/digits_cnn.py:smoke')
  assert unknown.returncode == 2 and 'train' in unknown.stderr
  missing_file = run_cli('train', '--config=experiments/nope.py', '--workdir=/tmp/x')
  assert missing_file.returncode == 2 and 'Traceback' not in missing_file.stderr


def test_help_lists_the_commands_without_importing_jax():
  import subprocess
  import sys
  from tests.conftest import ROOT
  probe = ('import sys, runpy; sys.argv = ["jaxlab", "--help"]\n'
           'try:\n  runpy.run_module("jaxlab.main", run_name="__main__")\n'
           'except SystemExit as e:\n  assert e.code == 0\n'
           'assert "jax" not in sys.modules, "--help imported jax"\n')
  result = subprocess.run([sys.executable, '-c', probe], cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  for command in ('jaxlab train', 'jaxlab eval', 'jaxlab predict', 'jaxlab bench', '--workdir'):
    assert command in result.stdout


@pytest.mark.slow  # three CLI runs (about 15 s)
def test_relative_workdir_trains_resumes_and_evaluates(tmp_path):
  import shutil
  import subprocess
  import sys
  from tests.conftest import ROOT
  shutil.copytree(ROOT / 'experiments', tmp_path / 'experiments')
  base = [sys.executable, '-m', 'jaxlab.main']
  train = [*base, 'train', '--config=experiments/digits_cnn.py:smoke', '--workdir=runs/rel',
           '--config.num_steps=22']
  first = subprocess.run(train, cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr
  assert sorted(p.name for p in (tmp_path / 'runs/rel/checkpoints').iterdir()) == ['22']
  again = subprocess.run(train, cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert 'already finished' in again.stdout
  evaluation = subprocess.run([*base, 'eval', '--workdir=runs/rel'], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
  assert evaluation.returncode == 0 and (tmp_path / 'runs/rel/eval_22.json').exists()


def test_dry_run_on_npz_data_reads_the_shapes_from_the_file(tmp_path):
  import numpy as np
  rng = np.random.default_rng(0)
  path = tmp_path / 'arrays.npz'
  np.savez(path, x_train=rng.integers(0, 255, (64, 12, 10), dtype=np.uint8),
           y_train=rng.integers(0, 5, 64), x_test=rng.integers(0, 255, (8, 12, 10), dtype=np.uint8),
           y_test=rng.integers(0, 5, 8))
  result = run_cli('train', '--config=experiments/digits_cnn.py:smoke', '--config.data.name=npz',
                   f'--config.data.path={path}', '--dry_run', '--verbose')
  assert result.returncode == 0, result.stderr
  assert 'head/kernel' in result.stdout and '(128, 5)' in result.stdout  # 5 classes from y
  assert 'Traceback' not in result.stderr


def test_a_batch_larger_than_the_training_set_is_refused_by_training_and_the_dry_run(tmp_path):
  from jaxlab.perf import dry_run
  from jaxlab.train import loop
  config = load_config('digits_cnn', data__batch_size=5000)  # 1437 training digits
  expected = '--config.data.batch_size=5000 is larger than the 1437 training examples'
  with pytest.raises(UserError, match=re.escape(expected)):
    dry_run.lower(config)
  with pytest.raises(UserError, match=re.escape(expected)):
    loop.run(config, str(tmp_path))
