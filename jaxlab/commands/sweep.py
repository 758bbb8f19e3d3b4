"""Searches the config fields the sweep file names with Optuna, each trial a training run
under WORKDIR/trials/; rerunning it continues the same study. Prints the report (best
trial, importances) and writes it to the workdir."""

import os

from jaxlab.commands import options
from jaxlab.commands.options import Flag
from jaxlab.errors import UserError

USAGE = ('jaxlab sweep --config=experiments/X.py --sweep=experiments/sweeps/Y.py --trials=N '
         '[--workers=K] [--workdir=DIR] [--storage=URL]',)
FLAGS = (
    options.CONFIG,
    Flag('workdir', 'string', None, 'Where the study\'s trials and report go (default '
         '/tmp/jaxlab/sweep_<config>_<sweep>); local, gs://, s3:// or az://.'),
    Flag('sweep', 'string', None, 'The sweep file, experiments/sweeps/NAME.py[:smoke].'),
    Flag('trials', 'integer', 20, 'Finished trials to reach (a rerun counts those done).'),
    Flag('workers', 'integer', 1, 'Trials run at once, each in its own process.'),
    Flag('storage', 'string', None, 'SQLAlchemy URL of the Optuna study (default: SQLite in '
         'the workdir); one URL, e.g. postgresql://user:password@host/db, lets machines share a '
         'study (docs/tracking.md).'),
)
POSITIONAL = None


def run(args):
  if args.positional:
    raise UserError(f'sweep takes no positional arguments, got {args.positional}.')
  if not args.sweep:
    raise UserError('sweep needs a sweep file: --sweep=experiments/sweeps/digits_cnn.py.')
  if args.trials < 1 or args.workers < 1:
    raise UserError(f'--trials={args.trials} and --workers={args.workers} must be at least 1.')
  try:
    import optuna  # pylint: disable=unused-import,import-outside-toplevel
  except ImportError:
    raise UserError('jaxlab sweep needs Optuna: pip install \'jaxlab[sweep]\' (or pip install '
                    'optuna).') from None
  from jaxlab.config import command_line  # pylint: disable=g-import-not-at-top
  config = command_line.loaded(args.config)
  config_spec = ':'.join(p for p in command_line.config_spec(args.argv) if p is not None)
  from jaxlab.sweep import report, runner, space  # pylint: disable=g-import-not-at-top
  sweep = space.load(args.sweep)
  stem = lambda spec: os.path.splitext(os.path.basename(spec.partition(':')[0]))[0]
  workdir = args.workdir or f'/tmp/jaxlab/sweep_{stem(config_spec)}_{stem(args.sweep)}'
  from jaxlab.commands import console  # pylint: disable=g-import-not-at-top
  _, _, study = runner.run(config, config_spec, sweep, args.sweep, workdir, args.trials,
                           args.workers, args.storage, show_messages=console.show)
  print(report.write(study, sweep, config, config_spec, workdir), flush=True)
  return 0
