"""Names -> factories: a registry dict, or 'package.module:Name' for a user's own."""

import importlib

from jaxlab.errors import UserError


def resolve(registry, name, what, flag):
  """The factory for a registered name or an import path; UserError naming the fix."""
  if name in registry:
    return registry[name]
  if ':' not in name:
    raise UserError(
        f'Unknown {what} {name!r} in {flag}. Registered {what}s: {", ".join(sorted(registry))}; or give '
        f'your own as "package.module:Name" (importable from the current directory or '
        'PYTHONPATH).')
  module_name, attribute = name.split(':', 1)
  try:
    module = importlib.import_module(module_name)
  except ImportError as error:
    raise UserError(f'Cannot import {what} module {module_name!r} from {flag}={name}: {error}. '
                    'Check the spelling and that it is on PYTHONPATH.') from None
  if not hasattr(module, attribute):
    names = sorted(n for n in vars(module) if not n.startswith('_'))[:20]
    raise UserError(f'Module {module_name!r} has no {attribute!r} (from {flag}={name}). Names '
                    f'it defines: {", ".join(names)}.')
  return getattr(module, attribute)
