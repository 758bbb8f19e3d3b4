"""The tests' CLI runner (tests/cli_processes.py): a run forked from the preloaded
forkserver answers exactly as a new interpreter does."""

import os
import subprocess
import sys

import pytest

from tests import cli_processes
from tests.conftest import ROOT

BAD_KEY = ['train', '--config=experiments/digits_cnn.py', '--config.optimizer.learning_rte=1',
           '--workdir=unused']


def _real(argv):
  return subprocess.run([sys.executable, '-m', 'jaxlab.main', *argv], cwd=ROOT,
                        capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize('argv', [BAD_KEY, ['help', 'train'], ['train', '--no_such_flag=1']])
def test_a_forked_run_answers_as_a_new_interpreter(argv):
  forked = cli_processes.run(argv, cwd=ROOT, env=dict(os.environ), timeout=300)
  real = _real(argv)
  assert (forked.returncode, forked.stdout, forked.stderr) == (
      real.returncode, real.stdout, real.stderr)
  assert forked.args == real.args


def test_the_forked_run_works_in_its_own_directory(tmp_path):
  # experiments/ is not in tmp_path: the config is missing there, as for a new interpreter.
  argv = ['train', '--config=experiments/digits_cnn.py', '--workdir=w']
  before = os.getcwd()
  forked = cli_processes.run(argv, cwd=tmp_path, env=dict(os.environ), timeout=300)
  real = subprocess.run([sys.executable, '-m', 'jaxlab.main', *argv], cwd=tmp_path,
                        capture_output=True, text=True, timeout=300, check=False)
  assert forked.returncode == real.returncode == 2
  assert forked.stderr == real.stderr and 'digits_cnn.py' in forked.stderr
  assert os.getcwd() == before


def test_environments_that_change_imports_start_a_new_interpreter():
  assert cli_processes._forkable(dict(os.environ, JAXLAB_X='1'))  # pylint: disable=protected-access
  for name in ('JAX_ENABLE_X64', 'PYTHONPATH', 'JAX_PLATFORMS'):
    assert not cli_processes._forkable(dict(os.environ, **{name: 'changed'}))  # pylint: disable=protected-access


def test_a_run_past_its_timeout_is_killed():
  argv = ['train', '--config=experiments/digits_cnn.py', '--workdir=/nonexistent/never']
  with pytest.raises(subprocess.TimeoutExpired):
    cli_processes.run(argv, cwd=ROOT, env=dict(os.environ), timeout=0.2)
