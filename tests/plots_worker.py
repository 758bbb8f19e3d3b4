"""matplotlib's background import (plots.prepare) held or broken part-way, in a process
of its own so that the half-imported matplotlib stays out of the test process.

  python -m tests.plots_worker held WORKDIR
      holds the background import of matplotlib.pyplot until the main thread asks for
      the plots, then draws them; prints one JSON line {'waited_s': ...}.
  python -m tests.plots_worker broken WORKDIR
      fails the background import part-way (ImportError on a submodule that pyplot
      imports after matplotlib's registries have begun to fill), then runs
      `jaxlab train` on WORKDIR with the digits smoke experiment. A second import of
      pyplot after this one fails too (AttributeError: module 'matplotlib' has no
      attribute '_docstring'): the run's end crashed so before, as with the reported
      KeyError: 'Rectangle:kwdoc'.

Started by tests/test_plots.py.
"""

import importlib.abc
import json
import sys
import threading
import time

BACKGROUND_THREAD = 'jaxlab-import-matplotlib'
BROKEN_MODULE = 'matplotlib.artist'  # after matplotlib._docstring, before pyplot is done


class HeldImport(importlib.abc.MetaPathFinder):
  """Blocks the background thread's import of `module` (holding its import lock, as a
  slow import does) until `release` is set."""

  def __init__(self, module):
    self.module = module
    self.holding = threading.Event()
    self.release = threading.Event()

  def find_spec(self, name, path=None, target=None):
    if name == self.module and threading.current_thread().name == BACKGROUND_THREAD:
      self.holding.set()
      self.release.wait()
    return None  # the ordinary finders import it


class BrokenImport(importlib.abc.MetaPathFinder):
  """Fails the background thread's import of `module`, leaving what it imported before."""

  def __init__(self, module):
    self.module = module

  def find_spec(self, name, path=None, target=None):
    if name == self.module and threading.current_thread().name == BACKGROUND_THREAD:
      raise ImportError(f'{name} failed part-way (injected by tests/plots_worker.py)')
    return None


def held(workdir):
  from jaxlab.workdir import plots
  finder = HeldImport('matplotlib.pyplot')
  sys.meta_path.insert(0, finder)
  plots.prepare()
  assert finder.holding.wait(60), 'the background import never reached matplotlib.pyplot'
  started = time.perf_counter()
  threading.Timer(0.5, finder.release.set).start()
  records = [{'step': s, 'train/loss': 1.0 / s} for s in range(1, 5)]
  records.append({'step': 4, 'eval/loss': 0.3, 'eval/accuracy': 0.7})
  curves = plots.training_curves(records, workdir)
  matrix = plots.confusion_matrix([[3, 1], [0, 4]], ('a', 'b'), workdir, 4)
  print(json.dumps(dict(waited_s=time.perf_counter() - started, released=finder.release.is_set(),
                        paths=[curves, matrix])), flush=True)


def broken(workdir):
  sys.meta_path.insert(0, BrokenImport(BROKEN_MODULE))
  sys.argv = ['jaxlab', 'train', '--config=experiments/digits_cnn.py:smoke',
              f'--workdir={workdir}', '--config.progress=False']
  from jaxlab import main
  main.run()


if __name__ == '__main__':
  {'held': held, 'broken': broken}[sys.argv[1]](sys.argv[2])
