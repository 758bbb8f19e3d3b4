"""The docs' runnable examples run, end to end, as written.

test_docs_commands.py checks that every documented command parses; this module runs the
code blocks of README.md and docs/**/*.md that are marked runnable, so an example a newcomer
copies (eval, predict, sample, export, serve, quantize, explain) cannot fail as written.

Every shell block that shows commands carries an HTML comment (invisible on GitHub) on the
line before its fence: `<!-- runnable -->`, or `<!-- not runnable: REASON -->` (a full-size
training, a download, a cloud bucket, the test suite itself, a synopsis). A block with
neither fails `test_every_command_block_says_whether_it_runs`.

How a section's runnable blocks run (the substitution rules):
- The runnable blocks run in the docs' order (one test per `##` or `###` section of a
  page: README.md, then docs/ by path), all in
  one fresh directory, as a reader following the README would run them, each as one
  `bash -euo pipefail` script (a `python` block with this Python): every command must
  exit 0.
- `jaxlab` is `python -m jaxlab.main` of this checkout; `experiments/` and
  `tests/fixtures/` are this checkout's.
- Trainings run their smoke variant: `--config=experiments/NAME.py` becomes
  `NAME.py:smoke` (`NAME.py:ARG` becomes `NAME.py:ARG,smoke`). Each `runs/NAME/` that a
  block names is trained first by `experiments/NAME.py:smoke`, so a block's own
  `jaxlab train` of it resumes a finished run.
- `pip install` lines are skipped: the test environment has every extra.
- The input files the examples name (`digit1.png`, `digit2.jpg`, `*.png`, `notes.txt`,
  `seven.wav`, ...) are made in the directory: images of tests/fixtures/digit_3.png, a
  paragraph of Python's documentation, one second of a 16 kHz WAV.
- Port 8000 (written, or `jaxlab serve`'s default) becomes a free port, `/tmp/` the
  directory's own `tmp/`.
- A background job (`jaxlab serve ... &`) gets SIGTERM when its block ends, and must exit 0.
"""

import os
import pathlib
import re
import socket
import subprocess
import sys
import wave

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, run_cli

MARKDOWN = [ROOT / 'README.md',
            *sorted(p for p in (ROOT / 'docs').rglob('*.md') if '_build' not in p.parts)]
MARKER = re.compile(r'^<!-- (runnable|not runnable: .+) -->$')
FENCE = re.compile(r'^```(\{[\w-]+\}|\w*)\s*$')  # a language, or a MyST {directive}
SHELL_COMMAND = re.compile(r'^\s*(\$ )?(\w+=\S+ )*(jaxlab|python3?|curl|bash|pip|tfds)\b', re.M)
EXPERIMENT_WORKDIR = re.compile(r'\bruns/(\w+)\b')
TEXT = ('The for statement is used to iterate over the elements of a sequence (such as a '
        'string, tuple or list) or other iterable object.\n')


def blocks(path):
  """(section, language, marker or None, text, line) of each fenced block of a doc."""
  found, section, lines = [], '', path.read_text().splitlines()
  opened = None
  for number, line in enumerate(lines, 1):
    fence = FENCE.match(line)
    if opened is None and line.startswith('#'):
      section = line.lstrip('#').strip()
    elif fence and opened is None:
      before = next((l for l in reversed(lines[:number - 1]) if l.strip()), '')
      marker = MARKER.match(before.strip())
      opened = (section, fence[1], marker and marker[1], number)
    elif fence:
      found.append((f'{path.relative_to(ROOT)}: {opened[0]}', *opened[1:3],
                    '\n'.join(lines[opened[3]:number - 1]), f'{path.relative_to(ROOT)}:{opened[3]}'))
      opened = None
  return found


ALL_BLOCKS = [b for path in MARKDOWN for b in blocks(path)]
SECTIONS = {}
for _section, _language, _marker, _text, _where in ALL_BLOCKS:
  if _marker == 'runnable':
    SECTIONS.setdefault(_section, []).append((_language, _text, _where))


def test_every_command_block_says_whether_it_runs():
  unmarked = [where for _, language, marker, text, where in ALL_BLOCKS
              if language != 'python' and not marker and SHELL_COMMAND.search(text)]
  assert not unmarked, ('Mark each block with <!-- runnable --> or <!-- not runnable: REASON '
                        '--> on the line before its fence (see this module\'s docstring)')
  assert len(SECTIONS) >= 6  # the examples a newcomer copies first run


def substitute(text, port):
  """A block's text as the test runs it (the module docstring's rules)."""
  def smoke(match):
    arg = match[2]
    return match[1] + (':smoke' if not arg else arg if 'smoke' in arg else f'{arg},smoke')
  text = re.sub(r'(--config=experiments/\w+\.py)(:[\w,]+)?', smoke, text)
  text = re.sub(r'^\s*pip install .*$', '', text, flags=re.M)
  text = re.sub(r'(?<![\w/.])/tmp/', 'tmp/', text)
  text = re.sub(r'\bjaxlab serve (?!.*--port)', 'jaxlab serve --port=8000 ', text)
  return re.sub(r'\b8000\b', str(port), text)


def test_substitution_rules():
  assert substitute('pip install x\njaxlab train --config=experiments/digits_cnn.py --workdir=w'
                    ' && curl http://127.0.0.1:8000/v1/model', 1234) == (
      '\njaxlab train --config=experiments/digits_cnn.py:smoke --workdir=w && '
      'curl http://127.0.0.1:1234/v1/model')
  assert substitute('jaxlab serve --export=e &\njaxlab serve --port=8000 --workdir=w', 7) == (
      'jaxlab serve --port=7 --export=e &\njaxlab serve --port=7 --workdir=w')
  assert substitute('--config=experiments/t.py:gru --out=/tmp/why', 1) == (
      '--config=experiments/t.py:gru,smoke --out=tmp/why')
  assert substitute('--config=experiments/t.py:smoke', 1) == '--config=experiments/t.py:smoke'


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _write_inputs(directory):
  digit = Image.open(ROOT / 'tests' / 'fixtures' / 'digit_3.png')
  for name in ('digit1.png', 'digit2.png', 'a.png'):
    digit.save(directory / name)
  for name in ('digit2.jpg', 'b.jpg'):
    digit.convert('RGB').save(directory / name, quality=95)
  for name in ('notes.txt', 'snippet.txt'):
    (directory / name).write_text(TEXT)
  with wave.open(str(directory / 'seven.wav'), 'wb') as out:
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(16000)
    time = np.arange(16000) / 16000
    out.writeframes((8000 * np.sin(2 * np.pi * 220 * time)).astype('<i2').tobytes())


BASH_PRELUDE = """\
stop_background() {
  status=$?
  for pid in $(jobs -p); do
    kill -TERM "$pid"
    wait "$pid" || { echo "the background job $pid exited $?" >&2; status=1; }
  done
  exit $status
}
trap stop_background EXIT
"""


@pytest.fixture(scope='module')
def directory(tmp_path_factory):
  """(path, environment) of the directory the examples run in, with their inputs and the
  smoke runs of the experiments they name."""
  tmp_path = tmp_path_factory.mktemp('docs_examples')  # the reader's checkout
  for link in ('experiments', 'tests'):
    (tmp_path / link).symlink_to(ROOT / link)
  (tmp_path / 'tmp').mkdir()
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'jaxlab').write_text(f'#!/bin/sh\nexec {sys.executable} -m jaxlab.main "$@"\n')
  (bin_dir / 'jaxlab').chmod(0o755)
  _write_inputs(tmp_path)
  names = sorted({name for blocks_ in SECTIONS.values() for _, text, _ in blocks_
                  for name in EXPERIMENT_WORKDIR.findall(text)
                  if (ROOT / 'experiments' / f'{name}.py').exists()})
  for name in names:
    run_cli('train', f'--config=experiments/{name}.py:smoke',
            f'--workdir={tmp_path / "runs" / name}', check=True)
  python_path = [str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])]
  return tmp_path, {**os.environ, 'PATH': f'{bin_dir}:{os.environ["PATH"]}',
                    'PYTHONPATH': os.pathsep.join(python_path)}


@pytest.mark.slow  # a few seconds per command: about 3 minutes in all
@pytest.mark.parametrize('section', list(SECTIONS))  # in the docs' order
def test_runnable_examples_run(section, directory):
  tmp_path, env = directory
  port = _free_port()
  texts = [substitute(text, port) for _, text, _ in SECTIONS[section]]
  for (language, _, where), text in zip(SECTIONS[section], texts):
    if language == 'python':
      argv = [sys.executable, '-c', text]
    else:
      argv = ['bash', '-euo', 'pipefail', '-c', BASH_PRELUDE + text]
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, (f'{where} exits {result.returncode} as the test runs it:\n'
                                    f'{text}\n--- stdout\n{result.stdout[-3000:]}\n'
                                    f'--- stderr\n{result.stderr[-5000:]}')
