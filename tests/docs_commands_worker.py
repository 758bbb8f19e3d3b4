"""Checks command lines with jaxlab's own flag parser and config loader, in one process.

Started by tests/test_docs_commands.py with a JSON list of checks on stdin; prints one
JSON result per check, as a list, on its last line. A check is

  {"kind": "jaxlab", "argv": [...], "complete": bool}  parse as `jaxlab ARGV` would
  {"kind": "dry_run", "argv": [...]}                    `jaxlab train ARGV --dry_run`, lowered
  {"kind": "bench", "argv": [...]}                      parse as `jaxlab bench ARGV` would

Parsing goes through jaxlab.main.parse_command_line (the command table and the command's
own flags), so a check fails exactly where the CLI would: an unknown command, flag or config key,
a value of the wrong type, a config file that does not load. `complete` also asks for
what the command needs to run (a config for train; a workdir unless --dry_run).
"""

import contextlib
import io
import json
import sys
import traceback

INPUT_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp', '.txt', '.wav', '.csv',
                  '.parquet', '.py')  # .py: code to summarize (seq2seq)  # images, text, audio, table rows


class _Rejected(Exception):
  """The command line is one the CLI refuses; the message is what it prints."""


def _parse(argv):
  """(command, Args) as jaxlab.main sees them; raises _Rejected."""
  from jaxlab import main
  from jaxlab.errors import UserError
  stderr = io.StringIO()
  try:
    with contextlib.redirect_stderr(stderr):
      name, _, args = main.parse_command_line(argv)
      return name, args
  except SystemExit:
    raise _Rejected(stderr.getvalue().strip()) from None
  except UserError as error:
    raise _Rejected(f'jaxlab: error: {error}') from None


def check_help(argv):
  """jaxlab.main.run() answers help itself, before any flag parsing: run it."""
  from jaxlab import main
  sys.argv = ['jaxlab', *argv]
  stdout = io.StringIO()
  try:
    with contextlib.redirect_stdout(stdout):
      main.run()
  except SystemExit as exit_:
    return dict(ok=exit_.code in (0, None) and 'Usage:' in stdout.getvalue(), command='help',
                error=f'exit {exit_.code}')
  return dict(ok=False, command='help', error='no usage printed')


def check_jaxlab(argv, complete):
  from jaxlab.config import command_line
  from jaxlab.errors import UserError
  if argv[:1] == ['help'] or any(a in ('-h', '--help') for a in argv):
    return check_help(argv)
  command, parsed = _parse(argv)
  args = parsed.positional
  flag = lambda name: getattr(parsed, name, None)
  problems = []
  if command in ('train', 'eval', 'sample') and args:
    problems.append(f'{command} takes no positional arguments, got {args}')
  if command == 'predict':
    problems += [f'{a!r} is not an image, text or WAV file name' for a in args
                 if not a.lower().endswith(INPUT_SUFFIXES) and a != '-']  # '-': stdin's lines
  if command == 'train' and (complete or flag('config') is not None):
    try:
      command_line.loaded(flag('config'))
    except UserError as error:
      raise _Rejected(f'jaxlab: error: {error}') from None
  if complete and command in ('train', 'eval', 'predict', 'sample') and not flag('workdir') \
      and not (command == 'train' and flag('dry_run')):
    problems.append(f'{command} needs --workdir=DIR')
  if complete and command == 'predict' and not args:
    problems.append('predict needs at least one input FILE')
  if complete and command == 'sample' and flag('prompt') is None:
    problems.append('sample needs --prompt=TEXT')
  return dict(ok=not problems, command=command, error='; '.join(problems))


def dry_run(argv):
  """`jaxlab train ARGV --dry_run` up to XLA's compile: the config is loaded as train loads
  it and its training block traced and lowered onto its mesh (jaxlab.perf.dry_run.lower).
  Compiling too would add a minute of XLA time per distinct model and check XLA, not
  the docs; tests/test_memory_fit.py and tests/test_mfu.py compile and report."""
  from jaxlab.commands import common
  from jaxlab.config import command_line
  from jaxlab.perf import dry_run as dry_run_lib
  command, args = _parse([*argv, '--dry_run'])
  assert command == 'train' and not args.positional, (command, args.positional)
  config = command_line.loaded(args.config)
  common.start_runtime(args)
  lowered = dry_run_lib.lower(config)
  text = lowered.block.as_text()
  return dict(ok='func.func public @main' in text, error='no lowered module')


def check_bench(argv):
  from benchmarks import run as bench
  from benchmarks.peers import common
  stderr = io.StringIO()
  try:
    with contextlib.redirect_stderr(stderr):
      args = bench.parse(argv)
  except SystemExit:
    raise _Rejected(stderr.getvalue().strip()) from None
  unknown = [w for w in args.only.split(',') if w and w not in common.WORKLOADS]
  return dict(ok=not unknown, error=f'unknown workloads {unknown}' if unknown else '')


def run_check(check):
  try:
    if check['kind'] == 'jaxlab':
      return check_jaxlab(check['argv'], check.get('complete', False))
    if check['kind'] == 'dry_run':
      return dry_run(check['argv'])
    return check_bench(check['argv'])
  except _Rejected as rejected:
    return dict(ok=False, error=str(rejected))
  except Exception:  # pylint: disable=broad-except
    return dict(ok=False, error=traceback.format_exc()[-3000:])


if __name__ == '__main__':
  results = [run_check(check) for check in json.load(sys.stdin)]
  print(json.dumps(results))
