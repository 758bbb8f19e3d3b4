"""TFDS sets prepared on disk (real ArrayRecord format, tests/tfds_fakes.py) are read,
streamed and trained on in child processes where TensorFlow cannot be imported
(tests/without_tensorflow/sitecustomize.py), so these hold on any machine; and a set
that is too bad to train on stops the run, saved, with exit 2.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import tfds_fakes
from tests.conftest import ROOT, read_metrics, restore_params, run_cli

# A child process's environment without TensorFlow (for Grain's workers too).
ENV = {'PYTHONPATH': os.pathsep.join([str(ROOT / 'tests' / 'without_tensorflow'), str(ROOT)])}


def run_without_tensorflow(*args):
  return run_cli(*args, env=ENV)


@pytest.fixture(scope='module')
def imagenet_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('imagenet_tfds'))
  tfds_fakes.imagenet2012(path)
  return path


@pytest.fixture(scope='module')
def speech_dir(tmp_path_factory):
  pytest.importorskip('tensorflow', reason='tfds.features.Audio needs TensorFlow to prepare '
                      'speech_commands: pip install .[test]')
  path = str(tmp_path_factory.mktemp('speech_tfds'))
  tfds_fakes.speech_commands(path)
  return path


@pytest.fixture(scope='module')
def small_sets_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('small_tfds'))
  tfds_fakes.mnist(path)
  tfds_fakes.imdb_reviews(path)
  tfds_fakes.lm1b(path)
  return path


def test_the_child_processes_cannot_import_tensorflow():
  code = 'import importlib.util; print(importlib.util.find_spec("tensorflow")); import tensorflow'
  result = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, **ENV),
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 1 and result.stdout.strip() == 'None'
  assert "ModuleNotFoundError: No module named 'tensorflow'" in result.stderr


def _trained(workdir, steps):
  losses = [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]
  evals = [r for r in read_metrics(workdir) if 'eval/accuracy' in r]
  _, step = restore_params(workdir)
  return losses, evals, step


def _train_four_steps(experiment, workdir, *data_flags):
  """`jaxlab train` of the experiment's smoke variant for 4 steps (logged every 2, evaluated
  and saved at 4) in a process where TensorFlow cannot be imported."""
  return run_without_tensorflow(
      'train', f'--config=experiments/{experiment}.py:smoke', f'--workdir={workdir}', *data_flags,
      '--config.num_steps=4', '--config.steps_per_loop=2', '--config.log_every_steps=2',
      '--config.eval_every_steps=4', '--config.checkpoint_every_steps=4', '--config.plots=False')


@pytest.mark.slow  # a CLI run (about 15 s)
def test_imagenet2012_streams_and_trains_without_tensorflow(imagenet_dir, tmp_path):
  workdir = tmp_path / 'run'
  # The reading path is under test, not the network: ResNet-18 compiles in half the time.
  result = _train_four_steps(
      'imagenet_resnet50', workdir, '--config.model.name=resnet18',
      '--config.data.name=imagenet2012',
      f'--config.data.data_dir={imagenet_dir}', '--config.data.image_size=32',
      '--config.data.num_train=32', '--config.data.num_workers=1')
  assert result.returncode == 0, result.stderr[-3000:]
  losses, evals, step = _trained(workdir, 4)
  assert len(losses) == 2 and np.isfinite(losses).all() and step == 4
  # The validation split (16 JPEGs) was decoded, center-cropped and evaluated. (Once, in a
  # CI run, all 16 came back bad and did not recur: the run's warnings name the reasons.)
  assert evals and evals[-1]['train/bad_records'] == 0, result.stderr[-4000:]


@pytest.mark.slow  # a CLI run (about 15 s)
def test_speech_commands_streams_and_trains_without_tensorflow(speech_dir, tmp_path):
  workdir = tmp_path / 'run'
  result = _train_four_steps(
      'speech_commands_cnn', workdir, '--config.data.name=speech_commands',
      '--config.data.placement=stream', f'--config.data.data_dir={speech_dir}',
      '--config.data.num_train=48', '--config.data.num_test=16', '--config.data.batch_size=16',
      '--config.data.eval_batch_size=16')
  assert result.returncode == 0, result.stderr[-3000:]
  losses, evals, step = _trained(workdir, 4)
  assert len(losses) == 2 and np.isfinite(losses).all() and step == 4
  assert evals and evals[-1]['train/bad_records'] == 0, result.stderr[-4000:]


def test_speech_commands_clips_read_back_as_prepared(speech_dir):
  from jaxlab.data import audio_sets
  from tests.conftest import load_config
  config = load_config('speech_commands_cnn', None, data__data_dir=speech_dir)
  splits = audio_sets.speech_commands(config.data)
  written = tfds_fakes.speech_clips(48, 0)
  assert len(splits.train) == 48 and splits.info.class_names == tfds_fakes.SPEECH_WORDS
  for index in (0, 1, 2, 3):
    example, pcm = splits.train[index], written[index]['audio'][:16000] / 32768
    assert example['audio'].shape == (16000,) and example['audio'].dtype == np.float32
    np.testing.assert_allclose(example['audio'][:len(pcm)], pcm, rtol=1e-6)
    assert not example['audio'][len(pcm):].any()  # padded with silence
    assert example['label'] == written[index]['label'] and example['label'].dtype == np.int32


READ_EVERY_SET = '''
import json, sys
from jaxlab import data
from tests.conftest import load_config
data_dir, imagenet_dir, speech_dir = sys.argv[1:4]
found = {}
config = load_config('mnist_mlp', None, data__data_dir=data_dir, data__num_train=None,
                     data__num_test=None, data__cache_dir=sys.argv[4])
mnist = data.load(config.data)
found['mnist'] = [len(mnist.train), int(mnist.train[5]['label']), mnist.train[5]['image'].shape]
config = load_config('imdb_lstm', None, data__data_dir=data_dir, data__cache_dir=sys.argv[4],
                     data__tokenizer='byte', data__seq_len=16)
imdb = data.load(config.data)
found['imdb_reviews'] = [len(imdb.train), int(imdb.train[3]['label'])]
config = load_config('lm1b_lm', None, data__data_dir=data_dir, data__cache_dir=sys.argv[4],
                     data__tokenizer='byte', data__seq_len=16)
lm1b = data.load(config.data)
found['lm1b'] = [len(lm1b.train) > 0]
config = load_config('imagenet_resnet50', None, data__data_dir=imagenet_dir, data__image_size=32)
imagenet = data.load(config.data)
found['imagenet2012'] = [len(imagenet.train), len(imagenet.test), imagenet.train_transform(
    imagenet.train[0], (0, 0, 0))['image'].shape]
if speech_dir:
  config = load_config('speech_commands_cnn', None, data__data_dir=speech_dir)
  speech = data.load(config.data)
  found['speech_commands'] = [len(speech.train), speech.train[0]['audio'].shape]
print(json.dumps(found, default=list))
'''


def test_every_tfds_set_reads_without_tensorflow(small_sets_dir, imagenet_dir, request, tmp_path):
  try:
    speech_dir = request.getfixturevalue('speech_dir')
  except pytest.skip.Exception:
    speech_dir = ''
  result = subprocess.run(
      [sys.executable, '-c', READ_EVERY_SET, small_sets_dir, imagenet_dir, speech_dir,
       str(tmp_path / 'cache')], cwd=ROOT, env=dict(os.environ, **ENV), capture_output=True,
      text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  found = json.loads(result.stdout.strip().splitlines()[-1])
  assert found['mnist'] == [64, 5, [28, 28, 1]]
  assert found['imdb_reviews'] == [8, 1]
  assert found['lm1b'] == [True]
  assert found['imagenet2012'] == [32, 16, [32, 32, 3]]
  if speech_dir:
    assert found['speech_commands'] == [48, [16000]]


@pytest.mark.parametrize('name', ['speech_commands', 'imagenet2012', 'mnist'])
def test_a_set_not_prepared_says_how_to_prepare_it_without_tensorflow(name, tmp_path):
  experiment = {'speech_commands': 'speech_commands_cnn', 'imagenet2012': 'imagenet_resnet50',
                'mnist': 'mnist_mlp'}[name]
  result = run_without_tensorflow('train', f'--config=experiments/{experiment}.py',
                                  f'--workdir={tmp_path / "run"}', f'--config.data.data_dir={tmp_path}',
                                  '--config.data.placement=stream')
  assert result.returncode == 2, result.stderr[-3000:]
  assert f"'{name}' is not prepared in ArrayRecord format at {tmp_path / name}" in result.stderr
  assert f'tfds build {name} --file_format=array_record --data_dir=DIR' in result.stderr
  assert 'Traceback' not in result.stderr and 'Failed to construct' not in result.stderr


@pytest.fixture(scope='module')
def all_bad_mnist_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('bad_mnist'))
  tfds_fakes.mnist(path, num_train=96, broken=range(96))
  return path


@pytest.mark.slow  # a CLI run (about 15 s)
def test_an_all_bad_stream_stops_with_exit_2_keeping_the_work_done(all_bad_mnist_dir, tmp_path):
  workdir = tmp_path / 'run'
  result = run_without_tensorflow(
      'train', '--config=experiments/mnist_mlp.py:smoke', f'--workdir={workdir}',
      f'--config.data.data_dir={all_bad_mnist_dir}', f'--config.data.cache_dir={tmp_path}',
      '--config.data.placement=stream', '--config.data.num_train=96', '--config.data.num_test=32',
      '--config.data.batch_size=16', '--config.data.min_records_for_bad_fraction=64',
      '--config.num_steps=12', '--config.steps_per_loop=2', '--config.log_every_steps=2',
      '--config.plots=False')
  assert result.returncode == 2, result.stderr[-3000:]
  # Blocks of 2 steps x 16 records: the check first runs at 64 records read, before step 2
  # trains, so the block before it (steps 0-1) is saved.
  assert 'Stopped at step 2: 64 of the 64 records read' in result.stderr
  assert 'max_bad_records_fraction=0.01' in result.stderr
  named = result.stderr.split('The first on this process: ')[1]
  assert named.count('of tfds:mnist/train: ') == 3  # the first three: index, source, reason
  _, step = restore_params(workdir)
  assert step == 2
  warnings = [line for line in result.stderr.splitlines() if 'skipped' in line]
  assert len(warnings) <= 5 + 2  # 5 in full, then counts (one at the stop at most)
