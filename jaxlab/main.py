"""jaxlab: train, evaluate and predict with Flax models from ml-collections configs.

Usage:
  jaxlab train   --config=experiments/digits_cnn.py[:smoke] --workdir=DIR [--config.KEY=VALUE ...]
  jaxlab train   --config=... --workdir=DIR --dry_run     # compile only: sizes, FLOPs, memory
  jaxlab eval    --workdir=DIR [--checkpoint=best|latest|STEP]
  jaxlab predict --workdir=DIR [--top_k=3] [--json] IMAGE [IMAGE ...]
  jaxlab bench   [--only=NAME] [--out=FILE.json]

The same as `python -m jaxlab.main ...`; without a command, `train` is meant.
Rerunning the same train command on the same workdir resumes it.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxlab.errors import UserError

COMMANDS = ('train', 'eval', 'predict', 'bench')

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/digits_cnn.py[:smoke].',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, metrics and plots go (local or gs://).')
flags.DEFINE_bool('dry_run', False, 'train: compile the step and print sizes, FLOPs, memory '
                  'and the parameter sharding table, without training.')
flags.DEFINE_string('checkpoint', 'best', 'eval/predict: best, latest, or a step number.')
flags.DEFINE_integer('top_k', 3, 'predict: how many classes to print per image.')
flags.DEFINE_bool('json', False, 'predict: print one JSON object per image.')
flags.DEFINE_bool('jax_distributed', False, 'Call jax.distributed.initialize() first '
                  '(auto-detected on Cloud TPU and SLURM); also JAXLAB_DISTRIBUTED=1.')
flags.DEFINE_string('coordinator_address', None, 'Multi-host: HOST:PORT of process 0.')
flags.DEFINE_integer('num_processes', None, 'Multi-host: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-host: this process\'s index.')
flags.DEFINE_integer('distributed_timeout', 300, 'Multi-host: seconds to wait for all '
                     'processes to join before failing.')
FLAGS = flags.FLAGS


def fail(message):
  """Prints a user error as one paragraph and exits with code 2."""
  print(f'jaxlab: error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def _override_error(error, argv):
  """Turns config_flags' raw errors for an unknown key into the closest-keys message."""
  config = _config_without_overrides(argv)
  unknown = [key for key in _override_keys(argv) if not _has_key(config, key)] if config else []
  if unknown:
    from jaxlab import config as config_lib
    return config_lib.unknown_key_error(config, unknown[0])
  return UserError(f'Invalid command line: {error}. Fix the flag named there '
                   '(see `jaxlab --help`).')


def _override_keys(argv):
  return [arg[len('--config.'):].split('=', 1)[0] for arg in argv if arg.startswith('--config.')]


def _config_without_overrides(argv):
  """The --config file named in argv, loaded as is; None if it does not load."""
  for arg in argv:
    if arg.startswith('--config='):
      path, *config_arg = arg.split('=', 1)[1].split(':', 1)
      try:
        return config_flags.config_flags._LoadConfigModule(  # pylint: disable=protected-access
            'config', path).get_config(*config_arg)
      except Exception:  # pylint: disable=broad-except
        return None
  return None


def _has_key(config, dotted):
  node = config
  for part in dotted.split('.'):
    if not hasattr(node, 'keys') or part not in node.keys():
      return False
    node = node[part]
  return True


def parse_flags(argv):
  try:
    return FLAGS(argv)
  except flags.IllegalFlagValueError as error:
    text = str(error)
    if 'Traceback' in text:  # the config file itself failed: keep its own last words
      fail(f'Could not load the config: {text.strip().splitlines()[-1].strip()} '
           '(from --config=path/to/experiment.py[:arg]).')
    fail(f'{text}. Give a value of the field\'s type, e.g. --config.optimizer.learning_rate=3e-3.')
  except flags.Error as error:
    fail(f'{error}. See `jaxlab --help` for the flags.')
  except (AttributeError, KeyError) as error:
    fail(str(_override_error(error, argv)))
  except (FileNotFoundError, ImportError, ValueError, TypeError) as error:
    fail(f'Could not load the config: {error}. Check --config=path/to/experiment.py[:arg].')


def _command(argv):
  args = list(argv[1:])
  if args and args[0] in COMMANDS:
    return args[0], args[1:]
  if args:
    raise UserError(f'Unknown command {args[0]!r}; use one of {", ".join(COMMANDS)}.')
  return 'train', []


def _config():
  try:
    config = _CONFIG.value
    if config is None:
      raise UserError('No experiment config given: pass --config=experiments/NAME.py '
                      '(e.g. experiments/digits_cnn.py).')
    config.keys()  # a file that failed to load raises here
    return config
  except (AttributeError, OSError, ImportError, ValueError, TypeError) as error:
    reason = str(error).strip().splitlines()[-1].strip()
    raise UserError(f'Could not load --config ({reason}). Give the path of an experiment '
                    'file, e.g. --config=experiments/digits_cnn.py[:smoke].') from None


def _workdir():
  if not FLAGS.workdir:
    raise UserError('No --workdir given: pass --workdir=DIR (a local folder or gs://bucket/path) '
                    'for checkpoints, metrics and plots.')
  from jaxlab import storage
  try:
    storage.validate_workdir(FLAGS.workdir)  # a bad bucket fails now, not after compiling
  except storage.StorageError as error:
    raise UserError(str(error)) from None
  return FLAGS.workdir


def run_command(command, args):
  """Dispatches one command; returns the process exit code."""
  from jaxlab import runtime
  runtime.setup(distributed=FLAGS.jax_distributed, coordinator=FLAGS.coordinator_address,
                num_processes=FLAGS.num_processes, process_id=FLAGS.process_id,
                timeout=FLAGS.distributed_timeout)
  if command == 'train':
    if args:
      raise UserError(f'train takes no positional arguments, got {args}.')
    config = _config()
    workdir = None if FLAGS.dry_run else _workdir()
    if FLAGS.dry_run:
      from jaxlab import dry_run
      dry_run.report(config)
      return 0
    from jaxlab.train import loop
    try:
      summary = loop.run(config, workdir)
    except loop.TrainingDiverged as error:
      print(f'jaxlab: {error}', file=sys.stderr, flush=True)
      return 1
    if summary['eval'] and summary['status'] == 'finished':
      print(f'Done: step {summary["step"]}, test accuracy {summary["eval"]["accuracy"]:.4f}. '
            f'Outputs in {FLAGS.workdir}.', flush=True)
    return 0
  if command == 'eval':
    from jaxlab import evaluate
    evaluate.main(_workdir(), FLAGS.checkpoint)
    return 0
  if command == 'predict':
    from jaxlab import predict
    return predict.main(_workdir(), args, checkpoint=FLAGS.checkpoint, top_k_count=FLAGS.top_k,
                        as_json=FLAGS.json)
  from benchmarks import run as bench
  return bench.main(args)


def main(argv):
  if not any(a.startswith(('--verbosity', '-v')) for a in argv):
    logging.set_verbosity(logging.ERROR)  # Orbax logs every save; -v/--verbosity to see it
  try:
    command, args = _command(argv)
    return run_command(command, args)
  except UserError as error:
    fail(str(error))


def run():
  """Console-script entry point: `jaxlab ...`."""
  argv = sys.argv
  if len(argv) > 1 and argv[1] == 'bench':  # the benchmark suite parses its own flags
    from benchmarks import run as bench
    sys.exit(bench.main(argv[2:]))
  if argv[1:2] == ['help'] or any(arg in ('-h', '--help') for arg in argv[1:]):
    print(__doc__)
    print(FLAGS.module_help(FLAGS.find_module_defining_flag('workdir')))
    sys.exit(0)
  app.run(main, argv=argv, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
