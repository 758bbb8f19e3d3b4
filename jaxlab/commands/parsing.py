"""One command's command line: its own absl FlagValues, holding only the flags the command
declares, so a flag it does not take is an error that names the ones it does. The
config flag is ml_collections' (with --config.KEY=VALUE overrides, locked)."""

import textwrap

from jaxlab.errors import UserError


class Args:
  """A command's parsed flags, as attributes; `positional` holds the rest of the line."""

  def __init__(self, values, present, positional, argv=()):
    self.__dict__.update(values)
    self.positional = list(positional)
    self.argv = list(argv)  # the command line after the command's name
    self._present = present

  def given(self, name):
    """Whether the flag was on the command line (not only its default)."""
    return name in self._present


def _define(flag, values, argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  if flag.kind == 'config':
    from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
    config_flags.DEFINE_config_file(flag.name, flag.default, flag.help, flag_values=values,
                                    lock_config=True, sys_argv=argv)
    return
  define = dict(string=flags.DEFINE_string, integer=flags.DEFINE_integer,
                float=flags.DEFINE_float, bool=flags.DEFINE_bool)[flag.kind]
  define(flag.name, flag.default, flag.help, flag_values=values)


def flag_names(command):
  return ', '.join(f'--{flag.name}' for flag in command.FLAGS) or 'none'


def parse(name, command, argv):
  """Args of `jaxlab NAME ARGV...` (argv without the program and the command)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  full = ['jaxlab', *argv]
  values = flags.FlagValues()
  for flag in command.FLAGS:
    _define(flag, values, full)
  try:
    positional = values(full)[1:]
  except flags.UnrecognizedFlagError as error:
    raise UserError(f'`jaxlab {name}` does not take --{error.flagname}. It takes '
                    f'{flag_names(command)} (see `jaxlab {name} --help`).') from None
  except Exception as error:  # pylint: disable=broad-except
    raise UserError(_parse_error(name, command, error, full)) from None
  present = {flag.name for flag in command.FLAGS if values[flag.name].present}
  return Args({flag.name: values[flag.name].value for flag in command.FLAGS}, present,
              positional, argv)


def _parse_error(name, command, error, argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  takes_config = any(flag.kind == 'config' for flag in command.FLAGS)
  about_config = not isinstance(error, flags.Error) or '--config' in str(error) or (
      isinstance(error, flags.IllegalFlagValueError) and 'config' in str(error))
  if takes_config and about_config:
    from jaxlab.config import command_line  # pylint: disable=g-import-not-at-top
    message = command_line.parse_error(error, argv)
    if message:
      return message
  if not isinstance(error, flags.Error):
    raise error
  return f'{error}. See `jaxlab {name} --help` for its flags.'


def help_text(name, command):
  """`jaxlab NAME --help`: the synopsis, what the command does, and its flags only."""
  doc = (command.__doc__ or '').strip()
  lines = ['Usage:', *(f'  {line}' for line in command.USAGE), '', doc, '']
  if command.FLAGS:
    lines.append('Flags:')
    for flag in command.FLAGS:
      default = '' if flag.default in (None, False) or flag.kind == 'config' else (
          f' (default: {flag.default})')
      lines.append(f'  --{flag.name}')
      lines += textwrap.wrap(flag.help + default, 88, initial_indent='      ',
                             subsequent_indent='      ')
  return '\n'.join(lines).rstrip()
