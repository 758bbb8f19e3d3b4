"""The command table: `jaxlab --help`, `jaxlab CMD --help`, a flag a command does not
take, what start-up imports, and where the benchmark suite lives."""

import json
import pathlib
import subprocess
import sys
import tomllib

import pytest

from jaxlab import main
from jaxlab.commands import table
from jaxlab.errors import UserError
from tests.conftest import ROOT, run_cli

# What neither `jaxlab --help` nor `jaxlab predict` of one image may import.
HEAVY = ('jaxlab.train', 'tensorboard', 'matplotlib', 'tensorflow_datasets', 'tensorflow',
         'jaxlab.serve', 'fastapi', 'uvicorn', 'optuna')
IMPORTS_AFTER = """
import json, runpy, sys
sys.argv = ['jaxlab', *sys.argv[1:]]
try:
  runpy.run_module('jaxlab.main', run_name='__main__')
except SystemExit as exit_:
  code = exit_.code
print(json.dumps(dict(code=code, modules=sorted(sys.modules))), file=sys.stderr)
"""


def imports_of(*argv):
  """(exit code, modules imported) of `jaxlab ARGV` in a fresh interpreter."""
  result = subprocess.run([sys.executable, '-c', IMPORTS_AFTER, *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  report = json.loads(result.stderr.strip().splitlines()[-1])
  return report['code'], report['modules']


def loaded(modules, names):
  return sorted(m for m in modules if any(m == n or m.startswith(n + '.') for n in names))


def test_help_lists_each_command_on_one_line(capsys):
  assert main.main(['jaxlab', '--help']) == 0
  lines = capsys.readouterr().out.splitlines()
  for name in table.COMMANDS:
    assert len([line for line in lines if line.strip().startswith(f'jaxlab {name}')]) == 1


def test_command_help_shows_only_that_commands_flags(capsys):
  assert main.main(['jaxlab', 'eval', '--help']) == 0
  shown = capsys.readouterr().out
  assert 'jaxlab eval --workdir=DIR' in shown and '--checkpoint' in shown
  for other in ('--mode', '--top_k', '--prompt', '--config', '--dry_run', '--port'):
    assert other not in shown


def test_a_flag_of_another_command_is_exit_2_naming_the_commands_flags():
  result = run_cli('eval', '--workdir=/tmp/none', '--mode=w8a8')
  assert result.returncode == 2
  error, = result.stderr.strip().splitlines()
  assert error.startswith('jaxlab: error: `jaxlab eval` does not take --mode.')
  assert '--workdir, --checkpoint' in error and 'jaxlab eval --help' in error


def test_one_meaning_per_flag_name():
  meanings = {}
  for name in table.COMMANDS:
    for flag in table.module(name).FLAGS:
      meanings.setdefault(flag.name, set()).add((flag.kind, flag.default))
  assert {name: m for name, m in meanings.items() if len(m) > 1} == {}
  assert [f.name for f in table.module('sample').FLAGS if 'top_k' in f.name] == ['top_k_tokens']


def test_without_a_command_it_trains():
  name, _, args = main.parse_command_line(['--config=experiments/digits_cnn.py:smoke',
                                           '--dry_run'])
  assert name == 'train' and args.dry_run and args.config.num_epochs == 2


def test_unknown_command_names_the_commands():
  with pytest.raises(UserError, match='Unknown command .trian.; use one of train, eval'):
    main.parse_command_line(['trian'])


def test_help_imports_no_command_and_no_jax():
  code, modules = imports_of('--help')
  assert code == 0
  assert loaded(modules, ('jax', 'jaxlab.commands.train', 'absl', *HEAVY)) == []


def test_the_wheel_installs_no_benchmarks_package():
  from setuptools import find_namespace_packages, find_packages
  found = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['setuptools']
  include = found['packages']['find']['include']
  packages = find_packages(str(ROOT), include=include) + find_namespace_packages(
      str(ROOT), include=include)
  assert 'jaxlab.commands' in packages
  assert not [p for p in packages if p.split('.')[0] != 'jaxlab']


def test_bench_outside_a_checkout_says_where_the_suite_is(tmp_path):
  from jaxlab.commands import bench
  fake = tmp_path / 'site-packages' / 'jaxlab' / 'commands' / 'bench.py'
  with pytest.raises(UserError, match='runs the benchmark suite from a source checkout'):
    bench.suite_root(fake)
  assert bench.suite_root() == pathlib.Path(ROOT)
