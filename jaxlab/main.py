"""jaxlab's command line: `jaxlab COMMAND [--flag=value ...]`, the same as
`python -m jaxlab.main ...`; without a command, `train` is meant.

`jaxlab --help` lists the commands (jaxlab/commands/table.py); `jaxlab COMMAND --help`
shows that command's flags. Each command is a module of jaxlab/commands/ that declares its
flags and `run(args)`; only the command that runs is imported. A user error is one
paragraph on stderr and exit code 2.
"""

import os
import sys

from jaxlab.errors import UserError

HELP = ('-h', '--help')


def fail(message):
  """Prints a user error as one paragraph and exits with code 2."""
  print(f'jaxlab: error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def fail_now(message):
  """fail() for errors found once a command runs: the exit skips the interpreter's
  shutdown, where libraries' background threads (a failed checkpoint read leaves
  TensorStore reads behind) would print tracebacks after the message. Nothing is lost:
  checkpoints are written to a temporary folder and renamed when complete, so an exit
  at any moment leaves the saved ones intact."""
  print(f'jaxlab: error: {message}', file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(2)  # pylint: disable=protected-access


def split_command(words):
  """(command, the words after it) of a command line without the program name."""
  from jaxlab.commands import table  # pylint: disable=g-import-not-at-top
  if words and not words[0].startswith('-'):
    if words[0] not in table.COMMANDS:
      raise UserError(f'Unknown command {words[0]!r}; use one of {", ".join(table.COMMANDS)} '
                      '(`jaxlab --help` says what each does).')
    return words[0], words[1:]
  return table.DEFAULT, list(words)


def parse_command_line(words):
  """(command name, its module, its Args) of `jaxlab WORDS...`; UserError if refused."""
  from jaxlab.commands import parsing, table  # pylint: disable=g-import-not-at-top
  name, rest = split_command(words)
  command = table.module(name)
  if getattr(command, 'PASS_THROUGH', False):
    return name, command, parsing.Args({}, set(), rest, rest)
  return name, command, parsing.parse(name, command, rest)


def help_text(words):
  """What `jaxlab WORDS...` prints when it asks for help, or None if it does not."""
  from jaxlab.commands import parsing, table  # pylint: disable=g-import-not-at-top
  if words[:1] == ['help']:
    words = [*words[1:2], '--help']
  if not any(word in HELP for word in words):
    return None
  if not words or words[0] in HELP or words[0] not in table.COMMANDS:
    return table.overview()
  command = table.module(words[0])
  if getattr(command, 'PASS_THROUGH', False):
    return None  # the command answers --help itself
  return parsing.help_text(words[0], command)


def _quiet_logging():
  """Orbax logs every save through absl; only errors are shown."""
  from absl import flags, logging  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # absl's own flags keep their defaults
  logging.use_absl_handler()
  logging.set_verbosity(logging.ERROR)


def main(argv):
  """Runs `jaxlab ARGV[1:]`; returns the exit code."""
  words = list(argv[1:])
  text = help_text(words)
  if text is not None:
    print(text)
    return 0
  try:
    _, command, args = parse_command_line(words)
  except UserError as error:
    fail(str(error))
  _quiet_logging()
  from jaxlab.commands import console  # pylint: disable=g-import-not-at-top
  console.show()
  try:
    return command.run(args)
  except UserError as error:
    fail_now(str(error))


def run():
  """Console-script entry point: `jaxlab ...`."""
  sys.exit(main(sys.argv))


if __name__ == '__main__':
  run()
