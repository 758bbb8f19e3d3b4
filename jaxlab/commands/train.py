"""Trains the experiment that --config names into --workdir; rerunning the same command
on the same workdir resumes it. With --dry_run, compiles one training block without data
and reports sizes, FLOPs, the estimated time and cost, and whether it fits in memory."""

import sys

from jaxlab.commands import common, options
from jaxlab.commands.options import Flag
from jaxlab.errors import UserError

USAGE = ('jaxlab train --config=experiments/digits_cnn.py[:smoke] --workdir=DIR '
         '[--config.KEY=VALUE ...]',
         'jaxlab train --config=... --dry_run [--verbose]       # compile only: FLOPs, time, '
         'fits in memory?')
FLAGS = (
    options.CONFIG, options.WORKDIR,
    Flag('dry_run', 'bool', False, 'Compile the step without training and print sizes, '
         'FLOPs, the estimated step time and whether it fits in memory.'),
    Flag('verbose', 'bool', False, 'With --dry_run: also print the config and the parameter '
         'sharding table (before the summary).'),
    *options.MULTI_HOST,
)
POSITIONAL = None


def run(args):
  common.no_positional('train', args)
  from jaxlab.config import command_line  # pylint: disable=g-import-not-at-top
  config = command_line.loaded(args.config)  # inputs are checked before the runtime starts
  workdir = None if args.dry_run else common.workdir(args)
  if args.verbose and not args.dry_run:
    raise UserError('--verbose applies to `jaxlab train --dry_run` only (it adds the config '
                    'and the parameter sharding table to the report); drop it or add --dry_run.')
  common.start_runtime(args)
  if args.dry_run:
    dry_run_report(config, verbose=args.verbose)
    return 0
  from jaxlab.train import loop  # pylint: disable=g-import-not-at-top
  try:
    summary = loop.run(config, workdir)
  except loop.TrainingDiverged as error:
    print(f'jaxlab: {error}', file=sys.stderr, flush=True)
    return 1
  if summary['eval'] and summary['status'] == 'finished':
    from jaxlab.privacy import accounting  # pylint: disable=g-import-not-at-top
    spent = summary.get('privacy')
    budget = f', {accounting.describe(spent)}' if spent else ''
    shown = final_metrics(summary['eval'], summary.get('test_split', ''))
    print(f'Done: step {summary["step"]}, {shown}{budget}. Outputs in {workdir}.', flush=True)
  return 0


def dry_run_report(config, verbose=False):
  """Prints the --dry_run report; returns jaxlab.perf.dry_run.analyse()'s dict."""
  from jaxlab.perf import dry_run  # pylint: disable=g-import-not-at-top
  result = dry_run.analyse(config)
  for line in dry_run.report_lines(config, result, verbose):
    print(line)
  return result


def final_metrics(metrics, test_split=''):
  if 'accuracy' in metrics:
    held_out = f' ({test_split})' if test_split else ''
    return f'test accuracy{held_out} {metrics["accuracy"]:.4f}'
  if 'mAP' in metrics:  # detection: COCO's evaluator
    return f'test mAP {metrics["mAP"]:.4f}, AP50 {metrics["AP50"]:.4f}, AP75 {metrics["AP75"]:.4f}'
  shown = f'test loss {metrics["loss"]:.4f}'
  if 'rmse' in metrics:  # regression
    return shown + f', rmse {metrics["rmse"]:.4g}, r2 {metrics["r2"]:.4f}'
  return shown + (f', perplexity {metrics["perplexity"]:.2f}' if 'perplexity' in metrics else '')
