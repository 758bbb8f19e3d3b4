"""jaxlab: train, evaluate and predict with Flax models from ml-collections configs.

Usage:
  jaxlab train   --config=experiments/digits_cnn.py[:smoke] --workdir=DIR [--config.KEY=VALUE ...]
  jaxlab train   --config=... --dry_run [--verbose]       # compile only: FLOPs, time, fits in memory?
  jaxlab eval    --workdir=DIR [--checkpoint=best|latest|STEP]
  jaxlab predict --workdir=DIR [--top_k=3] [--json] IMAGE [IMAGE ...]
  jaxlab sample  --workdir=DIR --prompt=TEXT [--max_tokens=200] [--temperature=0.8] [--top_k=40] [--top_p=0.9] [--seed=0]
  jaxlab export  --workdir=DIR --out=DIR [--checkpoint=best] [--format=stablehlo|savedmodel] [--platforms=cpu,cuda,tpu]
  jaxlab serve   --workdir=DIR | --export=DIR [--host=127.0.0.1] [--port=8000] [--max_batch=32] [--max_wait_ms=5]
  jaxlab bench   [--only=NAME] [--out=FILE.json]
  jaxlab sweep   --config=experiments/X.py --sweep=experiments/sweeps/Y.py --trials=N [--workers=K] [--workdir=DIR] [--storage=URL]
  jaxlab quantize --workdir=DIR [--checkpoint=best] [--mode=w8|w8a8] [--calibration_batches=10]
  jaxlab explain --workdir=DIR [--method=saliency|integrated_gradients|gradcam|hirescam] [--target=predicted] IMAGE [IMAGE ...]

`sample` continues a prompt with a trained language model, printing as it goes
(--temperature=0 is greedy; --top_k and --top_p default to keeping every token).
`sweep` searches the config fields the sweep file names with Optuna, each trial a
training run under DIR/trials/; rerunning it continues the same study.
`serve` answers POST /v1/predict (and /v1/generate for language models) over HTTP,
batching requests that arrive within --max_wait_ms (needs `pip install 'jaxlab[serve]'`).
The same as `python -m jaxlab.main ...`; without a command, `train` is meant.
Rerunning the same train command on the same workdir resumes it.
`quantize` writes an int8 copy of a trained model to DIR/quantized_<mode>, itself a
workdir for eval and predict, and compares it with the float model. `explain` writes
attribution overlays and a summary to DIR/explanations (or --out); --target is the
predicted class by default, or a class index or name.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxlab.errors import UserError

COMMANDS = ('train', 'eval', 'predict', 'sample', 'export', 'serve', 'quantize', 'explain',
            'sweep', 'bench')

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/digits_cnn.py[:smoke].',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, metrics and plots go (local or gs://).')
flags.DEFINE_bool('dry_run', False, 'train: compile the step without training and print '
                  'sizes, FLOPs, the estimated step time and whether it fits in memory.')
flags.DEFINE_bool('verbose', False, 'train --dry_run: also print the config and the '
                  'parameter sharding table (before the summary).')
flags.DEFINE_string('checkpoint', 'best', 'eval/predict/sample/export: best, latest, or a step '
                    'number.')
flags.DEFINE_integer('top_k', 3, 'predict: how many classes to print per image. sample: draw '
                     'only from the K most likely tokens (not given: from all of them).')
flags.DEFINE_string('prompt', None, 'sample: the text to continue.')
flags.DEFINE_integer('max_tokens', 200, 'sample: the most new tokens to generate (fewer if the '
                     'model ends the text or its context ends first).')
flags.DEFINE_float('temperature', 0.8, 'sample: softmax temperature; 0 picks the most likely '
                   'token (greedy).')
flags.DEFINE_float('top_p', 1.0, 'sample: draw from the smallest set of likeliest tokens whose '
                   'probability reaches P (nucleus sampling); 1 keeps all.')
flags.DEFINE_integer('seed', 0, 'sample: random seed; the same seed gives the same text.')
flags.DEFINE_string('sweep', None, 'sweep: the sweep file, experiments/sweeps/NAME.py[:smoke].')
flags.DEFINE_integer('trials', 20, 'sweep: finished trials to reach (a rerun counts those done).')
flags.DEFINE_integer('workers', 1, 'sweep: trials run at once, each in its own process.')
flags.DEFINE_string('storage', None, 'sweep: SQLAlchemy URL of the Optuna study (default: '
                    'SQLite in the workdir); one URL lets machines share a study.')
flags.DEFINE_bool('json', False, 'predict: print one JSON object per image.')
flags.DEFINE_string('out', None, 'export: the new (or empty) folder to write the model to. '
                    'explain: where overlays and the summary go (default WORKDIR/explanations).')
flags.DEFINE_string('format', 'stablehlo', 'export: stablehlo (jax.export, runs with jax alone) '
                    'or savedmodel (TensorFlow SavedModel for TF Serving / Vertex AI).')
flags.DEFINE_string('platforms', None, 'export: comma-separated platforms to compile for, of '
                    'cpu, cuda, rocm, tpu (default: cpu and this machine\'s backend).')
flags.DEFINE_string('export', None, 'serve: a directory written by `jaxlab export` (instead '
                    'of --workdir).')
flags.DEFINE_string('host', '127.0.0.1', 'serve: the address to listen on (0.0.0.0: every '
                    'interface).')
flags.DEFINE_integer('port', 8000, 'serve: the TCP port to listen on.')
flags.DEFINE_integer('max_batch', 32, 'serve: the most examples run in one batch; batches '
                     'are padded to a few sizes up to it (1, 2, 4, 8, 12, 16, 24, 32, ...), '
                     'each compiled at start-up.')
flags.DEFINE_float('max_wait_ms', 5.0, 'serve: how long the first request of a batch waits '
                   'for others to join it.')
flags.DEFINE_string('mode', 'w8', 'quantize: w8 (int8 weights) or w8a8 (int8 weights and '
                    'activations, with scales calibrated on training batches).')
flags.DEFINE_integer('calibration_batches', None, 'quantize --mode=w8a8: how many training '
                     'batches set the activation scales (default 10).')
flags.DEFINE_string('method', 'saliency',
                    'explain: saliency, integrated_gradients, gradcam or hirescam.')
flags.DEFINE_string('target', 'predicted', 'explain: the class to explain: predicted, or a '
                    'class index or name.')
flags.DEFINE_integer('steps', None, 'explain --method=integrated_gradients: integration '
                     'intervals (default 128; more: closer completeness).')
flags.DEFINE_bool('sanity_check', False, 'explain: also explain a randomly initialised model '
                  'and report the rank correlation with the trained one (low is good).')
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


def fail_now(message):
  """fail() for errors found once a command runs: the exit skips the interpreter's
  shutdown, where libraries' background threads (a failed checkpoint read leaves
  TensorStore reads behind) would print tracebacks after the message. Nothing is lost:
  checkpoints are written to a temporary folder and renamed when complete, so an exit
  at any moment leaves the saved ones intact."""
  print(f'jaxlab: error: {message}', file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(2)  # pylint: disable=protected-access


def _override_error(error, argv):
  """Turns config_flags' raw errors for an unknown key into the closest-keys message."""
  from jaxlab import config as config_lib
  config = _config_without_overrides(argv)
  unknown = [key for key in _override_keys(argv) if not config_lib.has_key(config, key)
             ] if config else []
  if unknown:
    return config_lib.unknown_key_error(config, unknown[0])
  return UserError(f'Invalid command line: {error}. Fix the flag named there '
                   '(see `jaxlab --help`).')


def _override_keys(argv):
  return [arg[len('--config.'):].split('=', 1)[0] for arg in argv if arg.startswith('--config.')]


def _config_spec(argv):
  """(path, arg or None) of the --config flag in argv, or None."""
  for arg in argv:
    if arg.startswith('--config='):
      path, *config_arg = arg.split('=', 1)[1].split(':', 1)
      return path, (config_arg[0] if config_arg else None)
  return None


def _config_without_overrides(argv):
  """The --config file named in argv, loaded as is; None if it does not load."""
  spec = _config_spec(argv)
  if spec is None:
    return None
  path, config_arg = spec
  try:
    module = config_flags.config_flags._LoadConfigModule('config', path)  # pylint: disable=protected-access
    return module.get_config(*([config_arg] if config_arg is not None else []))
  except Exception:  # pylint: disable=broad-except
    return None


def _config_load_error(error, argv, traceback_text=None):
  """One paragraph naming the config file, the line in it and the error."""
  import os
  import re
  import traceback
  spec = _config_spec(argv)
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


def parse_flags(argv):
  try:
    return FLAGS(argv)
  except flags.IllegalFlagValueError as error:
    text = str(error)
    if 'Traceback' in text:  # the config file itself failed; config_flags kept the traceback
      fail(_config_load_error(error, argv, traceback_text=text))
    fail(f'{text}. Give a value of the field\'s type, e.g. --config.optimizer.learning_rate=3e-3.')
  except flags.Error as error:
    fail(f'{error}. See `jaxlab --help` for the flags.')
  except (AttributeError, KeyError) as error:
    if _config_spec(argv) and _config_without_overrides(argv) is None:
      fail(_config_load_error(error, argv))
    fail(str(_override_error(error, argv)))
  except Exception as error:  # pylint: disable=broad-except
    # Anything else raised while parsing comes from executing the config file.
    fail(_config_load_error(error, argv))


def _command(argv):
  args = list(argv[1:])
  if args and args[0] in COMMANDS:
    return args[0], args[1:]
  if args:
    raise UserError(f'Unknown command {args[0]!r}; use one of {", ".join(COMMANDS)}.')
  return 'train', []


def _config():
  """The experiment config, loaded and validated (before JAX starts: errors come fast)."""
  try:
    config = _CONFIG.value
    if config is None:
      raise UserError('No experiment config given: pass --config=experiments/NAME.py '
                      '(e.g. experiments/digits_cnn.py).')
    config.keys()  # a file that failed to load raises here
  except (AttributeError, OSError, ImportError, ValueError, TypeError) as error:
    reason = str(error).strip().splitlines()[-1].strip()
    raise UserError(f'Could not load --config ({reason}). Give the path of an experiment '
                    'file, e.g. --config=experiments/digits_cnn.py[:smoke].') from None
  import ml_collections
  if not isinstance(config, ml_collections.ConfigDict):
    raise UserError(f'The config file\'s get_config() returned a {type(config).__name__}, not an '
                    'ml_collections.ConfigDict. Start it from jaxlab.config.defaults() (see '
                    'experiments/digits_cnn.py).')
  from jaxlab import config as config_lib
  config_lib.validate(config)
  return config


def _workdir():
  if not FLAGS.workdir:
    raise UserError('No --workdir given: pass --workdir=DIR (a local folder, gs://bucket/path, '
                    's3://bucket/path or az://container/path) for checkpoints, metrics and plots.')
  from jaxlab import storage
  try:
    storage.validate_workdir(FLAGS.workdir)  # a bad bucket fails now, not after compiling
  except storage.StorageError as error:
    raise UserError(str(error)) from None
  return FLAGS.workdir


def _final_metrics(metrics, test_split=''):
  if 'accuracy' in metrics:
    held_out = f' ({test_split})' if test_split else ''
    return f'test accuracy{held_out} {metrics["accuracy"]:.4f}'
  shown = f'test loss {metrics["loss"]:.4f}'
  return shown + (f', perplexity {metrics["perplexity"]:.2f}' if 'perplexity' in metrics else '')


def run_command(command, args):
  """Dispatches one command; returns the process exit code."""
  if command == 'train':  # inputs are checked before the runtime starts
    if args:
      raise UserError(f'train takes no positional arguments, got {args}.')
    config = _config()
    workdir = None if FLAGS.dry_run else _workdir()
  elif command == 'sweep':
    return _sweep(args)
  elif FLAGS.dry_run:
    raise UserError(f'--dry_run applies to `jaxlab train` only, not to `jaxlab {command}`.')
  if FLAGS.verbose and not (command == 'train' and FLAGS.dry_run):
    raise UserError('--verbose applies to `jaxlab train --dry_run` only (it adds the config '
                    'and the parameter sharding table to the report); drop it or add --dry_run.')
  if command == 'serve':  # binds its port before the runtime starts
    return _serve(args)
  _start_runtime()
  if command == 'train':
    if FLAGS.dry_run:
      from jaxlab.perf import dry_run
      dry_run.report(config, verbose=FLAGS.verbose)
      return 0
    from jaxlab.privacy import accounting as privacy
    from jaxlab.train import loop
    try:
      summary = loop.run(config, workdir)
    except loop.TrainingDiverged as error:
      print(f'jaxlab: {error}', file=sys.stderr, flush=True)
      return 1
    if summary['eval'] and summary['status'] == 'finished':
      spent = summary.get('privacy')
      budget = f', {privacy.describe(spent)}' if spent else ''
      shown = _final_metrics(summary['eval'], summary.get('test_split', ''))
      print(f'Done: step {summary["step"]}, {shown}{budget}. '
            f'Outputs in {FLAGS.workdir}.', flush=True)
    return 0
  if command == 'eval':
    if args:
      raise UserError(f'eval takes no positional arguments, got {args}; it evaluates the '
                      'checkpoint that --checkpoint names on the workdir\'s test set.')
    from jaxlab.inference import evaluate
    evaluate.main(_workdir(), FLAGS.checkpoint)
    return 0
  if command == 'predict':
    from jaxlab.inference import predict
    return predict.main(_workdir(), args, checkpoint=FLAGS.checkpoint, top_k_count=FLAGS.top_k,
                        as_json=FLAGS.json)
  if command == 'sample':
    return _sample(args)
  if command == 'export':
    if args:
      raise UserError(f'export takes no positional arguments, got {args}.')
    from jaxlab.export import program as export
    export.main(_workdir(), FLAGS.out, checkpoint=FLAGS.checkpoint, fmt=FLAGS.format,
                platforms=FLAGS.platforms)
    return 0
  if command == 'quantize':
    if args:
      raise UserError(f'quantize takes no positional arguments, got {args}.')
    from jaxlab.inference import quantize
    quantize.main(_workdir(), FLAGS.checkpoint, FLAGS.mode, FLAGS.calibration_batches)
    return 0
  if command == 'explain':
    from jaxlab.inference import attributions as explain
    return explain.main(_workdir(), args, FLAGS.checkpoint, method=FLAGS.method,
                        target=FLAGS.target, out=FLAGS.out, steps=FLAGS.steps,
                        sanity_check=FLAGS.sanity_check)
  from benchmarks import run as bench
  return bench.main(args)


def _sweep(args):
  if args:
    raise UserError(f'sweep takes no positional arguments, got {args}.')
  if not FLAGS.sweep:
    raise UserError('sweep needs a sweep file: --sweep=experiments/sweeps/digits_cnn.py.')
  if FLAGS.trials < 1 or FLAGS.workers < 1:
    raise UserError(f'--trials={FLAGS.trials} and --workers={FLAGS.workers} must be at least 1.')
  try:
    import optuna  # pylint: disable=unused-import,import-outside-toplevel
  except ImportError:
    raise UserError('jaxlab sweep needs Optuna: pip install \'jaxlab[sweep]\' (or pip install '
                    'optuna).') from None
  config = _config()
  config_spec = _config_spec(sys.argv)
  config_spec = ':'.join(p for p in config_spec if p is not None)
  from jaxlab.sweep import space
  sweep = space.load(FLAGS.sweep)
  stem = lambda spec: os.path.splitext(os.path.basename(spec.partition(':')[0]))[0]
  workdir = FLAGS.workdir or f'/tmp/jaxlab/sweep_{stem(config_spec)}_{stem(FLAGS.sweep)}'
  from jaxlab.sweep import report, runner
  _, _, study = runner.run(config, config_spec, sweep, FLAGS.sweep, workdir, FLAGS.trials,
                           FLAGS.workers, FLAGS.storage)
  print(report.write(study, sweep, config, config_spec, workdir), flush=True)
  return 0


def _sample(args):
  if args:
    raise UserError(f'sample takes no positional arguments, got {args}; give the text with '
                    '--prompt="...".')
  if FLAGS.prompt is None:
    raise UserError('sample needs a prompt: jaxlab sample --workdir=DIR --prompt="Once upon".')
  from jaxlab.inference import lm_sampler as sample
  # --top_k is shared with predict (default 3 classes there); for sampling only an explicit
  # value limits the tokens drawn from.
  top_k = FLAGS.top_k if FLAGS['top_k'].present else 0
  return sample.main(_workdir(), FLAGS.prompt, checkpoint=FLAGS.checkpoint,
                     max_tokens=FLAGS.max_tokens, temperature=FLAGS.temperature, top_k=top_k,
                     top_p=FLAGS.top_p, seed=FLAGS.seed)


def _start_runtime():
  from jaxlab.runtime import setup as runtime
  runtime.setup(distributed=FLAGS.jax_distributed, coordinator=FLAGS.coordinator_address,
                num_processes=FLAGS.num_processes, process_id=FLAGS.process_id,
                timeout=FLAGS.distributed_timeout)


def _serve(args):
  """Checks the flags and binds the port first: a port in use fails at once, not after
  the model has loaded and compiled."""
  if args:
    raise UserError(f'serve takes no positional arguments, got {args}.')
  from jaxlab import serve
  from jaxlab.serve import listener
  serve.require_stack()
  serve.check_options(FLAGS.max_batch, FLAGS.max_wait_ms)
  workdir = FLAGS.workdir and _workdir()
  sock = listener.bind(FLAGS.host, FLAGS.port)
  _start_runtime()
  return serve.main(workdir=workdir, export=FLAGS.export, checkpoint=FLAGS.checkpoint,
                    host=FLAGS.host, port=FLAGS.port, max_batch=FLAGS.max_batch,
                    max_wait_ms=FLAGS.max_wait_ms, sock=sock)


def main(argv):
  if not any(a.startswith(('--verbosity', '-v')) for a in argv):
    logging.set_verbosity(logging.ERROR)  # Orbax logs every save; -v/--verbosity to see it
  try:
    command, args = _command(argv)
    return run_command(command, args)
  except UserError as error:
    fail_now(str(error))


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
