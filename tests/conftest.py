"""Shared helpers: load experiment configs, run the CLI in a subprocess, and one
trained smoke run of the default experiment reused by the eval/predict tests."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from jaxlab import storage
from jaxlab.commands import console
from jaxlab.runtime import setup as runtime
from jaxlab.runtime import xla_options
from tests import cli_processes
from tests.storage_fixtures import gcs_emulator, gcs_workdir  # noqa: F401  pylint: disable=unused-import

# Same process set-up as the CLI's start-up: XLA options, so in-process and subprocess runs
# compile the same programs; the persistent compilation cache, so a program that many tests
# build (the smoke runs' steps) compiles once for the whole suite; and the gs:// backend
# that the emulator tests need. Plus the options that halve XLA's compile time at some
# cost in convolution step time (xla_options.FAST_COMPILE_FLAGS): the suite compiles over
# a thousand programs and runs each for a few steps. Child processes inherit XLA_FLAGS.
xla_options.apply_cpu_defaults(xla_options.CPU_FLAGS + xla_options.FAST_COMPILE_FLAGS)
runtime.enable_compilation_cache()
storage.configure()
console.show()  # the library's messages (progress, warnings) on stdout/stderr, as the CLI's

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / 'experiments'


# .ci/run sets this: there every tool a test needs is installed, so a skip means a missing
# install step, and fails the test, unless the test is marked `hardware` (a GPU, say).
NO_SKIPS_ENV = 'JAXLAB_TESTS_NO_SKIPS'


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # pylint: disable=unused-argument
  outcome = yield
  report = outcome.get_result()
  if (report.skipped and os.environ.get(NO_SKIPS_ENV) and not hasattr(report, 'wasxfail')
      and item.get_closest_marker('hardware') is None):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = 'failed'
    report.longrepr = (f'{reason}\nSkipped where {NO_SKIPS_ENV} is set (.ci/run installs every '
                       'tool the tests need): install what is missing in .ci/run, or mark the '
                       'test `hardware` if it needs a device CI lacks.')


def pytest_xdist_auto_num_workers(config):  # pylint: disable=unused-argument
  """`-n auto`: one worker per core, plus one. About a tenth of the suite's time is spent
  waiting (on training subprocesses, servers, emulators and processes joining), which the
  extra worker fills: on 2 cores, 14 min 0 s with two workers, 12 min 53 s with three."""
  return len(os.sched_getaffinity(0)) + 1


# Modules start longest first, so that no long module is left to run alone at the end
# (pytest-xdist hands out whole modules, `--no-loadscope-reorder` keeps this order).
# Seconds per module of a cold run on 2 cores; refresh with `python -m tests.module_seconds
# DURATIONS.txt` from a `pytest --durations=0` output. A new module counts as a short one.
MODULE_SECONDS = json.loads((pathlib.Path(__file__).parent / 'module_seconds.json').read_text())


def pytest_collection_modifyitems(items):
  first_seen = {}
  for item in items:
    first_seen.setdefault(item.module.__name__, len(first_seen))
  items.sort(key=lambda item: (-MODULE_SECONDS.get(item.module.__name__.rsplit('.', 1)[-1], 0),
                               first_seen[item.module.__name__]))


def load_config(name, arg='smoke', **overrides):
  """An experiment's config (locked, as from the command line), with dotted overrides."""
  from ml_collections import config_flags
  module = config_flags.config_flags._LoadConfigModule(name, str(EXPERIMENTS / f'{name}.py'))  # pylint: disable=protected-access
  config = module.get_config(arg)
  config.lock()
  config.progress = False
  for dotted, value in overrides.items():
    node = config
    *path, leaf = dotted.split('__')
    for part in path:
      node = node[part]
    node[leaf] = value
  return config


def run_cli(*args, env=None, timeout=600, check=False):
  """Runs `python -m jaxlab.main ARGS` and returns the CompletedProcess."""
  full_env = dict(os.environ, **(env or {}))
  result = cli_processes.run([*map(str, args)], cwd=ROOT, env=full_env, timeout=timeout)
  if check and result.returncode != 0:
    raise AssertionError(f'exit {result.returncode}\n{result.stdout}\n{result.stderr}')
  return result


def read_metrics(workdir):
  path = pathlib.Path(workdir) / 'metrics.jsonl'
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def restore_params(workdir, step=None):
  """The parameters of a checkpoint as numpy arrays, read back without a model."""
  import orbax.checkpoint as ocp
  directory = pathlib.Path(workdir) / 'checkpoints'
  step = step if step is not None else max(int(p.name) for p in directory.iterdir()
                                           if p.name.isdigit())
  restored = ocp.StandardCheckpointer().restore(directory / str(step) / 'state')
  return restored['params'], step


@pytest.fixture(scope='session')
def trained_digits(tmp_path_factory):
  """A digits_cnn smoke run trained once through the CLI (workdir path)."""
  workdir = tmp_path_factory.mktemp('digits_smoke')
  run_cli('train', '--config=experiments/digits_cnn.py:smoke', f'--workdir={workdir}',
          '--config.num_epochs=6', check=True)
  return workdir
