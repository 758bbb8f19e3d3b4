"""`jaxlab sweep --storage=postgresql://...`: two sweep commands sharing one study on a
real PostgreSQL server (Debian's `postgresql` package; .ci/run installs it), started here
as a throwaway cluster; and bad --storage URLs."""

import glob
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

import portpicker
import pytest

from jaxlab.sweep import runner
from tests.conftest import ROOT, run_cli

optuna = pytest.importorskip('optuna')
pytest.importorskip('psycopg')
from optuna.trial import TrialState  # pylint: disable=g-import-not-at-top

SHORT = ('--config.num_steps=11', '--config.steps_per_loop=11', '--config.eval_every_steps=11',
         '--config.checkpoint_every_steps=11', '--config.log_every_steps=11',
         '--config.plots=False')


def _postgres_program(name):
  """Debian keeps the server's programs off PATH, in /usr/lib/postgresql/<version>/bin."""
  found = shutil.which(name) or sorted(glob.glob(f'/usr/lib/postgresql/*/bin/{name}'))[-1:]
  if not found:
    pytest.skip(f'PostgreSQL\'s {name} is not installed (Debian: apt-get install postgresql)')
  return found if isinstance(found, str) else found[0]


@pytest.fixture(scope='module')
def postgres():
  """A PostgreSQL cluster in a new temporary folder, on a free port of 127.0.0.1, trusting
  local connections; yields the URL of its database `sweeps`.

  PostgreSQL refuses to run as root: as root (CI), the server runs as `nobody`, in a folder
  under /tmp that it owns (pytest's own temporary folders are closed to other users)."""
  as_user = ['runuser', '-u', 'nobody', '--'] if os.geteuid() == 0 else []
  directory = tempfile.mkdtemp(prefix='jaxlab-postgres-')
  if as_user:
    nobody = pwd.getpwnam('nobody')
    os.chown(directory, nobody.pw_uid, nobody.pw_gid)
  data, port = os.path.join(directory, 'data'), portpicker.pick_unused_port()
  subprocess.run([*as_user, _postgres_program('initdb'), '-D', data, '-U', 'postgres',
                  '--auth=trust', '--no-locale', '-E', 'UTF8', '--no-sync'],
                 check=True, capture_output=True)
  pg_ctl = [*as_user, _postgres_program('pg_ctl'), '-D', data]
  options = f'-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off'
  subprocess.run([*pg_ctl, '-o', options, '-l', os.path.join(directory, 'server.log'), '-w',
                  'start'], check=True, capture_output=True)
  try:
    subprocess.run([_postgres_program('createdb'), '-h', '127.0.0.1', '-p', str(port), '-U',
                    'postgres', 'sweeps'], check=True, capture_output=True)
    yield f'postgresql://postgres@127.0.0.1:{port}/sweeps'
  finally:
    subprocess.run([*pg_ctl, '-m', 'immediate', 'stop'], check=False, capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def _sweep_command(workdir, url, trials):
  return [sys.executable, '-m', 'jaxlab.main', 'sweep', '--config=experiments/digits_cnn.py:smoke',
          '--sweep=experiments/sweeps/digits_cnn.py:smoke', f'--trials={trials}', '--workers=1',
          f'--workdir={workdir}', f'--storage={url}', *SHORT]


@pytest.fixture(scope='module')
def two_machines(postgres, tmp_path_factory):
  """Two sweep commands on one study at once, each with its own workdir, as two machines
  sharing the database would run them; returns [(stdout, stderr, exit code, finish order)]
  and the study."""
  commands = [subprocess.Popen(_sweep_command(tmp_path_factory.mktemp(f'machine{i}'), postgres,
                                              trials=1),
                               cwd=ROOT, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
              for i in range(2)]
  outputs = [(*c.communicate(timeout=600), c.returncode) for c in commands]
  runner.quiet()
  summaries = optuna.get_all_study_summaries(postgres)
  assert len(summaries) == 1, [s.study_name for s in summaries]  # one study, shared
  return outputs, optuna.load_study(study_name=summaries[0].study_name, storage=postgres)


def _planned(stdout):
  """What a command said it would run: 'running N on 1 worker(s)'."""
  return int(re.search(r'running (\d+) on \d+ worker', stdout).group(1))


@pytest.mark.slow  # two sweep commands of one trial each, in subprocesses
def test_two_sweep_commands_share_one_postgres_study(two_machines):
  outputs, study = two_machines
  assert [code for _, _, code in outputs] == [0, 0], outputs
  trials = study.get_trials(deepcopy=False)
  finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
  assert len(finished) == sum(_planned(stdout) for stdout, _, _ in outputs)
  numbers = [t.number for t in trials]
  assert len(numbers) == len(set(numbers))  # no trial number handed out twice
  assert len({t.user_attrs['pid'] for t in finished}) == 2  # both commands ran trials
  # The command that finished last saw both trials: its report names the study's best.
  assert any(f'Best: trial {study.best_trial.number},' in stdout for stdout, _, _ in outputs)


def test_storage_url_that_does_not_parse_is_a_user_error(tmp_path):
  result = run_cli(*_sweep_command(tmp_path, 'not a url', trials=1)[3:])
  assert result.returncode == 2
  assert 'jaxlab: error: --storage=not a url is not a database URL' in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1


def test_postgres_spelled_postgres_is_a_user_error_naming_the_fix(tmp_path):
  result = run_cli(*_sweep_command(tmp_path, 'postgres://me:secret@127.0.0.1/db', trials=1)[3:])
  assert result.returncode == 2 and 'not postgres://' in result.stderr
  assert 'secret' not in result.stderr and 'me:***@' in result.stderr


def test_unreachable_postgres_server_is_a_user_error(tmp_path):
  port = portpicker.pick_unused_port()  # nothing listens there
  result = run_cli(*_sweep_command(tmp_path, f'postgresql://me:secret@127.0.0.1:{port}/db',
                                   trials=1)[3:])
  assert result.returncode == 2
  assert len(result.stderr.strip().splitlines()) == 1
  assert 'Could not open the study storage postgresql://me:***@127.0.0.1' in result.stderr
  assert 'Connection refused' in result.stderr and 'secret' not in result.stderr
