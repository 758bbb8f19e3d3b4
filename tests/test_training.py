"""End to end: every experiment's smoke variant trains, its loss falls, outputs land."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxlab.train import loop
from tests.conftest import load_config, read_metrics, restore_params, run_cli


def _first_and_last_loss(workdir):
  losses = [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]
  return losses[0], losses[-1]


@pytest.mark.parametrize('name', ['mnist_mlp', 'mnist_cnn',
                                  pytest.param('cifar10_cnn', marks=pytest.mark.slow)])
def test_smoke_trains_and_loss_falls_on_synthetic_data(tmp_path, name):
  config = load_config(name, data__name='synthetic')
  summary = loop.run(config, str(tmp_path))
  assert summary['status'] == 'finished' and summary['step'] == summary['num_steps']
  first, last = _first_and_last_loss(tmp_path)
  assert last < 0.9 * first
  assert summary['eval']['accuracy'] > 0.15  # 10 classes: chance is 0.1


@pytest.mark.slow  # the full 30 epochs through the CLI (7-12 s)
def test_quickstart_reaches_about_98_percent(tmp_path):
  """The README's Quickstart command (the full default experiment, no smoke variant)
  reaches "about 98% test accuracy": at least 97%."""
  result = run_cli('train', '--config=experiments/digits_cnn.py', f'--workdir={tmp_path}',
                   check=True)
  evals = [r for r in read_metrics(tmp_path) if 'eval/accuracy' in r]
  assert evals[-1]['step'] == 30 * 44  # all 30 epochs of the experiment
  assert evals[-1]['eval/accuracy'] >= 0.97
  assert f'test accuracy {evals[-1]["eval/accuracy"]:.4f}' in result.stdout


def test_workdir_outputs(trained_digits):
  workdir = pathlib.Path(trained_digits)
  records = read_metrics(workdir)
  train = [r for r in records if 'train/loss' in r]
  evals = [r for r in records if 'eval/accuracy' in r]
  assert [r['step'] for r in train] == list(range(11, 6 * 44 + 1, 11))
  for key in ('train/accuracy', 'train/learning_rate', 'train/steps_per_second'):
    assert key in train[-1]
  assert evals[-1]['step'] == 6 * 44
  for key in ('eval/loss', 'eval/precision', 'eval/recall', 'eval/f1'):
    assert key in evals[-1]
  matrix = np.asarray(evals[-1]['eval/confusion_matrix'])
  assert matrix.shape == (10, 10) and matrix.sum() == 360
  assert np.trace(matrix) / 360 == pytest.approx(evals[-1]['eval/accuracy'])
  for png in ('training_curves.png', 'confusion_matrix.png'):
    with Image.open(workdir / png) as image:
      assert image.format == 'PNG' and image.size[0] > 100
  assert (workdir / 'config.json').exists() and (workdir / 'dataset_info.json').exists()
  # Written before the process exited: the final checkpoint, whole, and the events.
  assert restore_params(workdir)[1] == 6 * 44
  events = list((workdir / 'tensorboard').rglob('events.out.tfevents.*'))
  assert events and all(path.stat().st_size > 0 for path in events)


def test_tensorboard_reads_the_event_files(trained_digits):
  from tensorboard.backend.event_processing import event_accumulator
  logdir = pathlib.Path(trained_digits) / 'tensorboard'
  accumulator = event_accumulator.EventAccumulator(str(logdir))
  accumulator.Reload()
  tags = accumulator.Tags()['scalars']
  assert 'train/loss' in tags and 'eval/accuracy' in tags
  losses = accumulator.Scalars('train/loss')
  jsonl = [r['train/loss'] for r in read_metrics(trained_digits) if 'train/loss' in r]
  assert [e.step for e in losses] == list(range(11, 6 * 44 + 1, 11))
  np.testing.assert_allclose([e.value for e in losses], jsonl, rtol=1e-6)


def test_finished_run_does_nothing_more(trained_digits):
  before = (pathlib.Path(trained_digits) / 'metrics.jsonl').read_text()
  summary = loop.run(load_config('digits_cnn', num_epochs=6), str(trained_digits))
  assert summary['status'] == 'finished'
  assert (pathlib.Path(trained_digits) / 'metrics.jsonl').read_text() == before


@pytest.mark.slow  # two trainings (about 11 s)
def test_steps_per_loop_does_not_change_the_result(tmp_path):
  """Blocks of 11 steps and blocks of 1 step are the same computation."""
  results = []
  for steps_per_loop in (11, 1):
    config = load_config('digits_cnn', num_steps=22, steps_per_loop=steps_per_loop,
                         log_every_steps=11)
    loop.run(config, str(tmp_path / str(steps_per_loop)))
    results.append([r['train/loss'] for r in read_metrics(tmp_path / str(steps_per_loop))
                    if 'train/loss' in r])
  np.testing.assert_allclose(results[0], results[1], rtol=2e-5)


@pytest.mark.slow  # two trainings (8-12 s)
def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  import jax
  from tests.conftest import restore_params
  good = load_config('digits_cnn', num_steps=22, checkpoint_every_steps=22, eval_every_steps=0)
  loop.run(good, str(tmp_path))
  params_before, _ = restore_params(tmp_path, 22)
  bad = load_config('digits_cnn', num_steps=88, checkpoint_every_steps=22, eval_every_steps=0)
  bad.optimizer.schedule, bad.optimizer.learning_rate = 'constant', 1e9
  with pytest.raises(loop.TrainingDiverged, match='diverged.*step 22'):
    loop.run(bad, str(tmp_path))
  steps = sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps == [22]  # nothing saved after the loss went bad
  params_after, _ = restore_params(tmp_path, 22)
  for before, after in zip(jax.tree.leaves(params_before), jax.tree.leaves(params_after)):
    np.testing.assert_array_equal(before, after)


def test_keeps_the_latest_and_the_best_checkpoints(tmp_path):
  # 'best' by the highest eval loss is the first evaluation: it must survive keep=1.
  config = load_config('digits_cnn', num_steps=44, eval_every_steps=11,
                       checkpoint_every_steps=11, checkpoint__keep=1,
                       checkpoint__best_metric='eval/loss', checkpoint__best_mode='max')
  loop.run(config, str(tmp_path))
  losses = {r['step']: r['eval/loss'] for r in read_metrics(tmp_path) if 'eval/loss' in r}
  worst = max(losses, key=losses.get)
  steps = sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps == sorted({worst, 44})


@pytest.mark.parametrize('start,num_steps,expected', [
    (0, 25, {10, 5}), (0, 10, {10}), (3, 25, {7, 10, 5}), (0, 8, {8}), (20, 25, {5})])
def test_precompile_covers_every_block_length(start, num_steps, expected):
  import types
  from jaxlab.train.session import Session
  compiled = []
  fake = types.SimpleNamespace(config=types.SimpleNamespace(steps_per_loop=10),
                               start_step=start, num_steps=num_steps,
                               splits=types.SimpleNamespace(buckets=None), _planned_steps={}, order=None,
                               compiled_block=lambda length, bucket: compiled.append(length))
  fake.block_end = lambda step: Session.block_end(fake, step)
  Session.precompile(fake)
  assert set(compiled) == expected
  # and the loop's blocks use no other length
  lengths, step = set(), start
  while step < num_steps:
    end = Session.block_end(fake, step)
    lengths.add(end - step)
    step = end
  assert lengths == expected
