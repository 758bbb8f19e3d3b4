"""Failures of the machine rather than of a record: a missing module or image codec met
while decoding.

Such a failure would recur on every record, so it is never a "bad record" to skip and
count: it becomes a `MissingDependency` (a UserError: the run stops, exit 2) naming what
is missing and the `pip install` that supplies it.
"""

import re

from jaxlab.errors import UserError

# Modules whose pip package has another name.
PIP_PACKAGES = {'tensorflow': 'tensorflow-cpu', 'PIL': 'pillow', 'cv2': 'opencv-python-headless',
                'array_record': 'array-record', 'google.protobuf': 'protobuf'}
_MISSING_CODEC = re.compile(r'(?:de|en)coder (\S+) not available')


class MissingDependency(UserError):
  """Decoding needs a module or codec that this Python environment lacks."""


def missing_dependency(error, what):
  """The MissingDependency that `error`, raised while reading `what`, reveals; else None."""
  if isinstance(error, ImportError):
    module = error.name or _module_in(str(error)) or '?'
    package = PIP_PACKAGES.get(module, PIP_PACKAGES.get(module.split('.')[0], module.split('.')[0]))
    return MissingDependency(
        f'Reading {what} needs the Python module {module!r}, which is not installed here '
        f'({type(error).__name__}: {error}). Install it (`pip install {package}`) and rerun; '
        'this is not a bad record (every record would fail alike), so nothing was skipped.')
  codec = _MISSING_CODEC.search(str(error)) if isinstance(error, OSError) else None
  if codec:
    return MissingDependency(
        f'Reading {what} needs the {codec.group(1)} codec, which this Pillow was built without '
        f'({error}). Install a Pillow wheel that has it (`pip install --force-reinstall '
        'pillow`) and rerun; this is not a bad record, so nothing was skipped.')
  return None


def _module_in(message):
  found = re.search(r"No module named '([^']+)'", message)
  return found.group(1) if found else None
