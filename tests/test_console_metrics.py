"""What a training run prints is what it records (issue 20): each console step line is the
metrics.jsonl record of that step, and the closing "Trained N steps in T s" counts the
steps' own time, consistent with the other timings it lists."""

import re

import pytest

from jaxlab.train import progress
from tests.conftest import read_metrics, run_cli

STEP_LINE = re.compile(r'^step (\d+)/(\d+)  train/loss (\d+\.\d{4}) \((?:mean of steps (\d+)-|step )'
                       r'(\d+)\)  (\d+\.\d) steps/s')
TRAINED = re.compile(r'^Trained (\d+) steps in (\S+) s of training steps \((\S+) steps/s')
WHOLE_RUN = re.compile(r'^The whole run took (\S+) s: (.*)\.$')


@pytest.fixture(scope='module')
def text_run(tmp_path_factory):
  """The text classifier's smoke run: 8 steps in one compiled block, a record every 2."""
  workdir = tmp_path_factory.mktemp('text_smoke')
  result = run_cli('train', '--config=experiments/python_snippets_text.py:smoke',
                   f'--workdir={workdir}', '--config.log_every_steps=2', check=True)
  return result.stdout.splitlines(), read_metrics(workdir)


def test_console_step_lines_are_the_metrics_records(text_run):
  lines, records = text_run
  printed = [STEP_LINE.match(line) for line in lines if line.startswith('step ')
             and '/' in line.split()[1]]
  assert printed and all(printed), lines
  train = [r for r in records if 'train/loss' in r]
  assert [int(m[1]) for m in printed] == [r['step'] for r in train] == [2, 4, 6, 8]
  previous = 0
  for match, record in zip(printed, train):
    assert match[3] == f'{record["train/loss"]:.4f}'  # the same mean, to the printed digits
    assert int(match[4]) == previous + 1 and int(match[5]) == record['step']  # its steps
    assert match[6] == f'{record["train/steps_per_second"]:.1f}'
    previous = record['step']


def test_trained_line_counts_the_steps_time_consistently(text_run):
  lines, records = text_run
  trained = next(TRAINED.match(line) for line in lines if TRAINED.match(line))
  steps, seconds, rate = int(trained[1]), float(trained[2]), float(trained[3])
  assert steps == 8 and seconds > 0
  assert rate == pytest.approx(steps / seconds, rel=0.01)  # printed to 3 and 4 digits
  whole = next(WHOLE_RUN.match(line) for line in lines if WHOLE_RUN.match(line))
  parts = {name: float(value) for value, name in re.findall(r'(\S+) s ([a-z ]+)', whole[2])}
  assert parts['training steps'] == float(trained[2])
  assert set(parts) == {'setting up', 'compiling', 'training steps', 'evaluating',
                        'saving checkpoints', 'writing plots and closing'}
  assert sum(parts.values()) == pytest.approx(float(whole[1]), rel=0.01, abs=0.01)
  # The records' windows time the same steps (they leave out the loop's last reads).
  windows = sum(2 / r['train/steps_per_second'] for r in records if 'train/loss' in r)
  assert windows <= seconds * 1.05 + 0.005


def test_a_one_step_window_is_labelled_as_that_step(capsys):
  bar = progress.Progress(10, 0, enabled=True)
  bar.record(3, 3, 1.23456, 2.0)
  bar.record(6, 4, 1.5, 2.0)
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith('step 3/10  train/loss 1.2346 (step 3)  2.0 steps/s')
  assert lines[1].startswith('step 6/10  train/loss 1.5000 (mean of steps 4-6)  2.0 steps/s')
