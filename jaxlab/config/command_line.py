"""The --config flag's errors as one paragraph: a config file that does not load (the
line in it and the reason), an unknown --config.KEY (with the closest valid keys), a
value of the wrong type; and the loaded config, validated before JAX starts."""

import os
import re
import traceback

from jaxlab.errors import UserError


def override_keys(argv):
  return [arg[len('--config.'):].split('=', 1)[0] for arg in argv if arg.startswith('--config.')]


def config_spec(argv):
  """(path, arg or None) of the --config flag in argv, or None."""
  for arg in argv:
    if arg.startswith('--config='):
      path, *config_arg = arg.split('=', 1)[1].split(':', 1)
      return path, (config_arg[0] if config_arg else None)
  return None


def config_without_overrides(argv):
  """The --config file named in argv, loaded as is; None if it does not load."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  spec = config_spec(argv)
  if spec is None:
    return None
  path, config_arg = spec
  try:
    module = config_flags.config_flags._LoadConfigModule('config', path)  # pylint: disable=protected-access
    return module.get_config(*([config_arg] if config_arg is not None else []))
  except Exception:  # pylint: disable=broad-except
    return None


def override_error(error, argv):
  """config_flags' raw error for an unknown key, as the closest-keys message."""
  from jaxlab.config import keys  # pylint: disable=g-import-not-at-top
  config = config_without_overrides(argv)
  unknown = [key for key in override_keys(argv) if not keys.has_key(config, key)
             ] if config else []
  if unknown:
    return str(keys.unknown_key_error(config, unknown[0]))
  return (f'Invalid command line: {error}. Fix the flag named there '
          '(see `jaxlab --help`).')


def load_error(error, argv, traceback_text=None):
  """One paragraph naming the config file, the line in it and the error."""
  spec = config_spec(argv)
  path = spec[0] if spec else '(none)'
  if isinstance(error, SyntaxError) and error.filename:
    reason = f'{type(error).__name__}: {error.msg}'
    lines = [error.lineno] if error.lineno else []
  elif traceback_text:  # "File ".../x.py", line 12, in get_config" ... "ValueError: why"
    reason = traceback_text.strip().splitlines()[-1].strip()
    lines = [int(line) for file, line in re.findall(r'File "([^"]+)", line (\d+)', traceback_text)
             if os.path.abspath(file) == os.path.abspath(path)]
  else:
    text = str(error).strip().splitlines()
    reason = f'{type(error).__name__}: {text[-1].strip() if text else ""}'
    lines = [f.lineno for f in traceback.extract_tb(error.__traceback__)
             if os.path.abspath(f.filename) == os.path.abspath(path)]
  if isinstance(error, AttributeError) and 'get_config' in str(error):
    reason = 'it defines no get_config(arg=None) function'
  where = f'line {lines[-1]}: ' if lines else ''
  return (f'Could not load the config file {path} ({where}{reason}). An experiment file is Python '
          'defining get_config(arg=None) that returns an ml_collections.ConfigDict; fix it, or '
          'pass another one, e.g. --config=experiments/digits_cnn.py[:smoke].')


def parse_error(error, argv):
  """The message for an exception raised while parsing a command line that has --config,
  or None if it is not about the config."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if isinstance(error, flags.IllegalFlagValueError):
    text = str(error)
    if 'Traceback' in text:  # the config file itself failed; config_flags kept the traceback
      return load_error(error, argv, traceback_text=text)
    return (f'{text}. Give a value of the field\'s type, e.g. '
            '--config.optimizer.learning_rate=3e-3.')
  if isinstance(error, flags.Error):
    return None
  if isinstance(error, (AttributeError, KeyError)):
    if config_spec(argv) and config_without_overrides(argv) is None:
      return load_error(error, argv)
    return override_error(error, argv)
  # Anything else raised while parsing comes from executing the config file.
  return load_error(error, argv)


def loaded(config):
  """The --config flag's value, checked: loaded, a ConfigDict, every field valid."""
  try:
    if config is None:
      raise UserError('No experiment config given: pass --config=experiments/NAME.py '
                      '(e.g. experiments/digits_cnn.py).')
    config.keys()  # a file that failed to load raises here
  except (AttributeError, OSError, ImportError, ValueError, TypeError) as error:
    reason = str(error).strip().splitlines()[-1].strip()
    raise UserError(f'Could not load --config ({reason}). Give the path of an experiment '
                    'file, e.g. --config=experiments/digits_cnn.py[:smoke].') from None
  import ml_collections  # pylint: disable=g-import-not-at-top
  if not isinstance(config, ml_collections.ConfigDict):
    raise UserError(f'The config file\'s get_config() returned a {type(config).__name__}, not an '
                    'ml_collections.ConfigDict. Start it from jaxlab.config.defaults() (see '
                    'experiments/digits_cnn.py).')
  from jaxlab.config import validation  # pylint: disable=g-import-not-at-top
  validation.validate(config)
  return config
