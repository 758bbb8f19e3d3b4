"""Runs the benchmark suite: jaxlab against Keras, PyTorch and a Flax-examples loop, side
by side (`jaxlab bench --help` shows the suite's own flags). The suite is not installed
with jaxlab: it runs from a source checkout (git clone), whose benchmarks/ folder sits
beside jaxlab/."""

import pathlib
import sys

from jaxlab.errors import UserError

USAGE = ('jaxlab bench [--only=NAME] [--out=FILE.json]',)
FLAGS = ()  # the suite parses its own (benchmarks/run.py); they pass through
POSITIONAL = 'the suite\'s flags'
PASS_THROUGH = True


def suite_root(package_file=None):
  """The checkout that holds benchmarks/run.py beside this jaxlab, or UserError."""
  root = pathlib.Path(package_file or __file__).resolve().parents[2]
  if not (root / 'benchmarks' / 'run.py').is_file():
    raise UserError(f'jaxlab bench runs the benchmark suite from a source checkout, and '
                    f'{root} has no benchmarks/run.py (a pip-installed jaxlab does not '
                    'carry it). Clone the repository, `pip install -e \'.[bench]\'` there, '
                    'and run `jaxlab bench` (or `python -m benchmarks.run`) in it.')
  return root


def run(args):
  root = suite_root()
  if str(root) not in sys.path:
    sys.path.insert(0, str(root))
  from benchmarks import run as suite  # pylint: disable=g-import-not-at-top
  return suite.main(args.positional)
