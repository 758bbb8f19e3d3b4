"""Makes a Python process behave as on a machine where TensorFlow is not installed.

Put this folder first on PYTHONPATH (`tests.test_tfds_without_tensorflow.ENV` does), and
every process started with it, Grain's and the decode pool's workers included, hides
`tensorflow` and its submodules from the import system before anything imports:
`import tensorflow` raises ModuleNotFoundError and `importlib.util.find_spec('tensorflow')`
is None, exactly as when it is missing. At exit, a process that loaded TensorFlow anyway
exits with code 3.
"""

import atexit
import importlib.machinery
import os
import sys

HIDDEN = ('tensorflow',)


class _PathFinderWithoutTensorflow:
  """Python's path finder, blind to the HIDDEN packages."""

  @classmethod
  def find_spec(cls, name, path=None, target=None):
    if name.partition('.')[0] in HIDDEN:
      return None
    return importlib.machinery.PathFinder.find_spec(name, path, target)

  @classmethod
  def invalidate_caches(cls):
    importlib.machinery.PathFinder.invalidate_caches()


def _check_not_loaded():
  loaded = sorted(name for name in sys.modules if name.partition('.')[0] in HIDDEN)
  if loaded:
    print(f'without_tensorflow: loaded anyway: {loaded[:5]}', file=sys.stderr, flush=True)
    os._exit(3)  # pylint: disable=protected-access  # overrides the exit code already set


sys.meta_path[:] = [_PathFinderWithoutTensorflow if finder is importlib.machinery.PathFinder
                    else finder for finder in sys.meta_path]
atexit.register(_check_not_loaded)
