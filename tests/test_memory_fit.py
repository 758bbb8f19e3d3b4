"""The dry run's summary and verdict, and `jaxlab train` refusing a step that would not fit
in memory before it trains or writes anything (issue 20)."""

import contextlib
import io
import pathlib

import pytest

from jaxlab.commands import train as train_command
from jaxlab.perf import memory_fit
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib
from tests.conftest import load_config, read_metrics, run_cli

SMOKE = '--config=experiments/digits_cnn.py:smoke'
TINY_MEMORY = {memory_fit.OVERRIDE_ENV: '0.0005'}  # 524 KiB: the smoke step needs ~3.6 MiB


def _report(config, verbose=False):
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    result = train_command.dry_run_report(config, verbose=verbose)
  return result, printed.getvalue().splitlines()


def _summary(lines):
  return lines[lines.index('summary:'):]


def test_verdict_states_the_need_the_memory_and_how_far_apart():
  available = memory_fit.Available(int(23.0 * 2**30), 'test')
  over = memory_fit.Fit(int(147.6 * 2**30), available)
  assert over.verdict() == ('does not fit: needs 147.6 GiB per device, 6.4x the 23.0 GiB '
                            'available (test)')
  assert not over.fits and over.refused
  under = memory_fit.Fit(int(2.3 * 2**30), available)
  assert under.verdict() == 'fits: needs 2.3 GiB per device, 10% of the 23.0 GiB available (test)'
  slightly = memory_fit.Fit(int(24.0 * 2**30), available)  # over, but within the margin
  assert not slightly.fits and not slightly.refused
  unknown = memory_fit.Fit(2**30, memory_fit.Available(None, 'no limit reported'))
  assert unknown.verdict().startswith('no verdict') and not unknown.refused


def test_available_memory_can_be_overridden(monkeypatch):
  mesh = mesh_lib.create(load_config('digits_cnn').mesh)
  monkeypatch.setenv(memory_fit.OVERRIDE_ENV, '16')
  assert memory_fit.available(mesh).bytes_per_device == 16 * 2**30
  monkeypatch.setenv(memory_fit.OVERRIDE_ENV, 'lots')
  with pytest.raises(UserError, match='not a number of GiB'):
    memory_fit.available(mesh)
  monkeypatch.delenv(memory_fit.OVERRIDE_ENV)
  assert memory_fit.available(mesh).source.startswith('host MemAvailable')  # on CPU


def test_dry_run_ends_with_a_summary_and_fits():
  config = load_config('digits_cnn')
  result, lines = _report(config)
  summary = _summary(lines)
  assert summary == lines[-len(summary):]  # the last lines
  # Adam's two moments per trained parameter (all of them here): twice the parameters' bytes.
  assert summary[1] == (f'  parameters: {result["num_params"]:,} (207.0 KiB), trained: '
                        f'{result["num_params"]:,}; optimizer state: 414.1 KiB')
  assert summary[2].startswith(f'  model FLOPs per step: {result["flops_per_step"]:.4g}')
  assert summary[3].startswith('  estimated step time: ') and 'assumed MFU of 35%' in summary[3]
  assert summary[4].startswith("  peak memory per device (XLA's estimate): ")
  assert summary[5].startswith('  fits: needs ') and 'available (host MemAvailable)' in summary[5]
  assert len(summary) == 6  # no knobs when it fits
  assert 'config:' not in lines and not any(line.startswith('parameter ') for line in lines)


def test_dry_run_verbose_adds_the_config_and_the_sharding_table():
  _, lines = _report(load_config('digits_cnn'), verbose=True)
  assert lines[0] == 'config:'
  assert any(line.startswith('head/kernel') for line in lines)
  assert _summary(lines)[-1].startswith('  fits: ')


def test_dry_run_that_does_not_fit_names_the_knobs(monkeypatch):
  monkeypatch.setenv(memory_fit.OVERRIDE_ENV, '0.0005')
  result, lines = _report(load_config('digits_cnn'))
  verdict = next(line for line in _summary(lines) if 'fit' in line and 'needs' in line)
  assert verdict.startswith('  does not fit: needs ') and 'x the 524.3 KiB available' in verdict
  assert '`jaxlab train` refuses it (above 1.25x) unless --config.allow_oversubscribe=True' in \
      '\n'.join(lines)
  flags = [line.split()[0] for line in lines[lines.index('  first knobs to turn:') + 1:]]
  batch = flags[0].removeprefix('--config.data.batch_size=')
  assert batch.isdigit() and int(batch) <= 32 // 2  # at least halved, scaled to the memory
  assert flags[1:] == ['--config.remat=full', '--config.compute_dtype=bfloat16',
                       '--config.mesh.fsdp=N']
  assert [flag for flag, _ in result['knobs']] == flags


def _files(workdir):
  """{path: (size, mtime)} of every file, but the run lock (taken by each attempt)."""
  return {p.relative_to(workdir): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in pathlib.Path(workdir).rglob('*') if p.is_file() and p.name != 'jaxlab.lock'}


def _checkpoint_steps(workdir):
  directory = pathlib.Path(workdir) / 'checkpoints'
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) \
      if directory.exists() else []


def test_train_refuses_before_step_one_and_trains_when_allowed(tmp_path):
  workdir = tmp_path / 'run'
  refused = run_cli('train', SMOKE, f'--workdir={workdir}', env=TINY_MEMORY)
  assert refused.returncode == 2, refused.stderr
  error = refused.stderr.strip().splitlines()[-1]
  assert error.startswith('jaxlab: error: The training step would not fit in memory: it needs ')
  for flag in ('--config.data.batch_size=', '--config.remat=full',
               '--config.compute_dtype=bfloat16', '--config.allow_oversubscribe=True'):
    assert flag in error
  assert 'Traceback' not in refused.stderr and 'step ' not in refused.stdout
  assert _checkpoint_steps(workdir) == [] and not (workdir / 'metrics.jsonl').exists()
  assert not (workdir / 'config.json').exists()

  allowed = run_cli('train', SMOKE, f'--workdir={workdir}', '--config.num_steps=1',
                    '--config.allow_oversubscribe=True', env=TINY_MEMORY)
  assert allowed.returncode == 0, allowed.stderr
  assert 'Memory: the training step does not fit: needs ' in allowed.stdout
  assert _checkpoint_steps(workdir) == [1]
  assert [r['step'] for r in read_metrics(workdir) if 'train/loss' in r] == [1]

  before = _files(workdir)  # a resumed run refused: its workdir is left as it was
  resumed = run_cli('train', SMOKE, f'--workdir={workdir}', '--config.num_steps=2',
                    env=TINY_MEMORY)
  assert resumed.returncode == 2 and 'would not fit in memory' in resumed.stderr
  assert _files(workdir) == before and _checkpoint_steps(workdir) == [1]
