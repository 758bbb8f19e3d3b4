"""Plots that scale with the class count, and the end of a run that background start-up
work (matplotlib's import, TensorBoard's writer) cannot fail."""

import json
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from jaxlab.runtime import background
from jaxlab.workdir import plots
from jaxlab.workdir import writers
from tests.conftest import ROOT, read_metrics


def _confusion(num_classes, seed=0):
  """Counts of a mostly right classifier: 5 examples per class, some confused."""
  rng = np.random.default_rng(seed)
  counts = np.diag(rng.integers(1, 5, num_classes))
  for _ in range(3 * num_classes):
    counts[rng.integers(num_classes), rng.integers(num_classes)] += 1
  return counts


# --- the confusion matrix at any class count ------------------------------------------

def test_a_few_classes_are_drawn_whole(tmp_path):
  path = plots.confusion_matrix(_confusion(10).tolist(), [f'c{i}' for i in range(10)],
                                str(tmp_path), step=7)
  with Image.open(path) as image:
    assert image.format == 'PNG' and 400 < image.size[0] < 900  # 0.45 inch per class


def test_1000_classes_make_a_bounded_png(tmp_path):
  counts = _confusion(1000).tolist()  # as the eval record holds it
  path = plots.confusion_matrix(counts, [str(i) for i in range(1000)], str(tmp_path), step=8)
  with Image.open(path) as image:
    width, height = image.size
  assert width <= 2000 and height <= 2000  # the old 0.45 inch per class: 45,000 pixels


def test_most_confused_picks_the_classes_with_most_errors():
  counts = np.diag([9, 9, 9, 9, 9])
  counts[3, 1] = 4  # 3 taken for 1: both classes have 4 errors
  counts[0, 4] = 1
  assert plots.most_confused(counts, 2).tolist() == [1, 3]
  assert plots.most_confused(counts, 5).tolist() == [0, 1, 2, 3, 4]
  assert plots.most_confused(np.diag([5, 5, 5]), 2).tolist() == [0, 1]  # no errors at all


def test_training_curves_read_no_arrays(tmp_path):
  lines = [{'step': 4, 'train/loss': 2.0},
           {'step': 8, 'eval/loss': 1.0, 'eval/confusion_matrix': [[1, 0], [0, 1]]}]
  (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in lines))
  assert writers.read_scalars(str(tmp_path)) == [{'step': 4, 'train/loss': 2.0},
                                                 {'step': 8, 'eval/loss': 1.0}]


# --- training curves: the panels a run's metrics call for, on sensible axes ------------

def _panels(records):
  figure = plots.curves_figure(records)
  panels = {axis.get_title(): axis for axis in figure.axes}
  plots.pyplot().close(figure)
  return panels


def test_language_model_curves_show_perplexity():
  records = [{'step': s, 'train/loss': 6.0 / s, 'train/perplexity': float(np.exp(6.0 / s)),
              'train/learning_rate': 1e-3} for s in (1, 2, 3, 4)]
  records.append({'step': 4, 'eval/loss': 1.6, 'eval/perplexity': float(np.exp(1.6)),
                  'eval/token_accuracy': 0.4})
  panels = _panels(records)
  assert list(panels) == ['loss', 'perplexity', 'token_accuracy', 'learning_rate']
  lines = panels['perplexity'].get_lines()
  assert [line.get_label() for line in lines] == [
      'train (mean since the previous record)', 'eval (test set)']
  assert lines[1].get_ydata().tolist() == [pytest.approx(np.exp(1.6))]
  assert panels['perplexity'].get_yscale() == 'log'  # exp(6) to exp(1.5): 55x


def test_a_single_evaluation_is_drawn_against_the_metrics_natural_range():
  panels = _panels([{'step': 8, 'eval/accuracy': 0.97, 'eval/loss': 0.3}])
  low, high = panels['accuracy'].get_ylim()
  assert low < 0 < 1 < high and high - low < 1.2  # [0, 1], not 0.92-1.02 around 0.97
  low, high = panels['loss'].get_ylim()
  assert low < 0 < 0.3 < 0.9 * high and high < 0.5  # from 0, the point inside
  low, high = panels['loss'].get_xlim()
  assert low == 0 and 8 < high < 10  # not fractional steps around 8


def test_a_constant_metric_is_drawn_from_zero_and_a_varied_one_autoscaled():
  records = [{'step': s, 'train/learning_rate': 1e-3, 'train/loss': 2.0 - 0.1 * s}
             for s in (1, 2, 3)]
  panels = _panels(records)
  low, high = panels['learning_rate'].get_ylim()
  assert low < 0 < 1e-3 < high < 2e-3
  low, high = panels['loss'].get_ylim()
  assert 1.6 < low < 1.7 and 1.9 < high < 2.0  # matplotlib's own range of 1.7-1.9


def test_flat_limits_of_a_negative_value_hold_it():
  low, high = plots.flat_limits('loss', -2.0)
  assert low < -2.2 and -1.8 < high < -1.7
  assert plots.flat_limits('loss', 0.0) == (-0.05, 1.05)


# --- background work, joined with its failure surfaced ----------------------------------

def test_background_returns_raises_or_times_out():
  assert background.Background(lambda x: x + 1, 1).result() == 2
  with pytest.raises(KeyError, match='Rectangle:kwdoc'):
    background.Background({}.__getitem__, 'Rectangle:kwdoc').result()
  gate = threading.Event()
  slow = background.Background(gate.wait, name='jaxlab-test-slow')
  with pytest.raises(background.Unfinished, match='jaxlab-test-slow still running after 0.1 s'):
    slow.result(timeout=0.1)
  gate.set()
  assert slow.result() is True


def test_a_failed_tensorboard_writer_is_one_warning(tmp_path, monkeypatch, capsys):
  def broken(logdir):
    raise ImportError(f'no TensorBoard for {logdir}')
  monkeypatch.setattr(writers.tensorboard_events, 'tensorboard_writer', broken)
  writer = writers.MetricWriter(str(tmp_path))
  writer.write(1, {'train/loss': 2.0})
  writer.write(2, {'train/loss': 1.0})
  writer.close()
  assert [r['train/loss'] for r in read_metrics(tmp_path)] == [2.0, 1.0]
  warnings = capsys.readouterr().err.strip().splitlines()
  assert warnings == [f'jaxlab: warning: TensorBoard events not written: ImportError: '
                      f'no TensorBoard for {tmp_path}/tensorboard']


def _worker(mode, workdir):
  return subprocess.run([sys.executable, '-m', 'tests.plots_worker', mode, str(workdir)],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_plots_wait_for_the_background_import_held_midway(tmp_path):
  result = _worker('held', tmp_path)
  assert result.returncode == 0, result.stderr
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['released']  # the plots came after the held import ended: joined, not beside it
  for path in report['paths']:
    with Image.open(path) as image:
      assert image.format == 'PNG'
  assert 'Traceback' not in result.stderr


@pytest.mark.slow  # a digits smoke run through the CLI (about 10 s)
def test_a_background_import_failed_midway_is_one_warning_after_a_finished_run(tmp_path):
  result = _worker('broken', tmp_path)
  assert result.returncode == 0, result.stderr
  assert 'Done: step' in result.stdout
  assert result.stderr.strip().splitlines() == [
      'jaxlab: warning: plots not drawn: matplotlib could not be imported in the background '
      '(ImportError: matplotlib.artist failed part-way (injected by tests/plots_worker.py))']
  assert (tmp_path / 'checkpoints').is_dir() and read_metrics(tmp_path)
  assert (tmp_path / 'tensorboard').is_dir()
  assert not list(pathlib.Path(tmp_path).glob('*.png'))


# --- a 1000-class run to its end ---------------------------------------------------------

# Runs a command and prints its peak resident memory (kB) last: a process of its own, so
# the peak is of that command's processes alone, not of every child the tests started.
_PEAK_RSS_KB = ('import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); '
                'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)')


@pytest.mark.slow  # a small CNN on ImageNet-shaped synthetic data, 1000 classes (15-20 s)
def test_a_1000_class_run_ends_within_bounded_memory(tmp_path):
  """ImageNet's 1000 classes used to draw a 450-inch confusion matrix with a million
  numbers after the last step: past 8 GB, and the OOM killer. The peak now is start-up's
  (the synthetic classes' prototype images, about 1.4 GB)."""
  result = subprocess.run(
      [sys.executable, '-c', _PEAK_RSS_KB, sys.executable, '-m', 'jaxlab.main', 'train',
       '--config=experiments/digits_cnn.py:smoke', f'--workdir={tmp_path}',
       '--config.data.name=synthetic', '--config.data.synthetic_like=imagenet2012',
       '--config.data.num_train=64', '--config.data.num_test=128',
       '--config.data.batch_size=16', '--config.model.conv_features=(4,)',
       '--config.model.dense_features=(16,)', '--config.steps_per_loop=4',
       '--config.log_every_steps=4', '--config.eval_every_steps=8',
       '--config.checkpoint_every_steps=8', '--config.progress=False'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr
  *lines, peak_kb = result.stdout.strip().splitlines()
  assert lines[-1].startswith('Done: step 8') and 'jaxlab: warning' not in result.stderr
  assert int(peak_kb) < 2.5 * 2**20, f'peak resident memory {int(peak_kb) / 2**20:.2f} GB'
  matrix = np.asarray(read_metrics(tmp_path)[-1]['eval/confusion_matrix'])
  assert matrix.shape == (1000, 1000) and matrix.sum() == 128
  with Image.open(tmp_path / 'confusion_matrix.png') as image:
    assert max(image.size) <= 2000
