"""Tasks: a user's own by import path, the batch check, and inference that reads no
optimizer state and imports nothing from training."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxlab import tasks
from jaxlab.data import image_info
from jaxlab.errors import UserError
from tests.conftest import ROOT, load_config, read_metrics, run_cli

USER_TASK = 'tests.fixtures.user_tasks:DigitValue'


def test_user_task_by_import_path_trains_evaluates_and_predicts(tmp_path):
  workdir = tmp_path / 'w'
  run_cli('train', '--config=experiments/digits_cnn.py:smoke', f'--workdir={workdir}',
          f'--config.task.name={USER_TASK}', '--config.checkpoint.best_metric=eval/mse',
          '--config.checkpoint.best_mode=min', '--config.progress=False', check=True)
  records = read_metrics(workdir)
  losses = [r['train/loss'] for r in records if 'train/loss' in r]
  assert losses[-1] < 0.5 * losses[0]
  assert all('train/rmse' in r for r in records if 'train/loss' in r)
  evals = [r['eval/mse'] for r in records if 'eval/mse' in r]
  assert evals and evals[-1] < evals[0]
  run_cli('eval', f'--workdir={workdir}', check=True)
  saved = json.loads(next(workdir.glob('eval_*.json')).read_text())
  assert saved['mse'] == pytest.approx(evals[-1])
  image = tmp_path / 'x.png'
  from PIL import Image
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
  predicted = run_cli('predict', f'--workdir={workdir}', '--json', image, check=True)
  assert isinstance(json.loads(predicted.stdout.splitlines()[-1])['value'], float)


def test_unknown_task_names_the_registered_ones():
  config = load_config('digits_cnn', task__name='regresion')
  info = image_info('digits', (8, 8, 1), 10)
  with pytest.raises(UserError, match='classification, detection, language_model'):
    tasks.create(config, info, compute_dtype=np.float32)


def test_a_task_that_does_not_fit_the_data_is_one_clear_error(tmp_path):
  result = run_cli('train', '--config=experiments/digits_cnn.py:smoke', f'--workdir={tmp_path}',
                   '--config.task.name=language_model')
  assert result.returncode == 2
  assert 'language_model task needs token sequences' in result.stderr
  assert 'Traceback' not in result.stderr


def test_best_metric_must_be_one_of_the_tasks_metrics(tmp_path):
  result = run_cli('train', '--config=experiments/digits_cnn.py:smoke', f'--workdir={tmp_path}',
                   '--config.checkpoint.best_metric=eval/perplexity')
  assert result.returncode == 2
  assert 'eval/accuracy' in result.stderr and 'eval/perplexity' in result.stderr


def test_inference_restores_no_optimizer_state_and_imports_no_training(trained_digits):
  """eval/predict restore parameters and model state only: the tree Orbax returns has
  nothing else, and loading a run imports no jaxlab.train module."""
  script = (
      'import sys, orbax.checkpoint as ocp\n'
      'trees = []\n'
      'restore = ocp.CheckpointManager.restore\n'
      'def spy(self, *args, **kwargs):\n'
      '  result = restore(self, *args, **kwargs)\n'
      '  trees.append(result)\n'
      '  return result\n'
      'ocp.CheckpointManager.restore = spy\n'
      'from jaxlab.commands import predict\n'
      'from jaxlab.inference import evaluate, trained_run as inference\n'
      f'run = inference.load({str(trained_digits)!r}, "latest")\n'
      'state = trees[-1].state\n'
      'print(sorted(state))\n'
      'print(sorted(m for m in sys.modules if m.startswith("jaxlab.train")))\n')
  result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
  restored_items, training_modules = result.stdout.strip().splitlines()[-2:]
  assert restored_items == "['model_state', 'params']"
  assert training_modules == '[]'
