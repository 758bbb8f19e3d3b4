"""Writes attribution overlays of image files and a summary to WORKDIR/explanations (or
--out), and prints one paragraph per file: which pixels the prediction rests on.
--target is the predicted class by default, or a class index or name. Exit 1 if a file
could not be read."""

import sys

from jaxlab.commands import common, options
from jaxlab.commands.options import Flag
from jaxlab.errors import UserError

USAGE = ('jaxlab explain --workdir=DIR [--method=saliency|integrated_gradients|gradcam|hirescam] '
         '[--target=predicted] IMAGE [IMAGE ...]',)
FLAGS = (
    options.WORKDIR, options.CHECKPOINT,
    Flag('method', 'string', 'saliency', 'saliency, integrated_gradients, gradcam or hirescam.'),
    Flag('target', 'string', 'predicted', 'The class to explain: predicted, or a class index '
         'or name.'),
    Flag('steps', 'integer', None, 'With --method=integrated_gradients: integration intervals '
         '(default 128; more: closer completeness).'),
    Flag('sanity_check', 'bool', False, 'Also explain a randomly initialised model and report '
         'the rank correlation with the trained one (low is good).'),
    Flag('out', 'string', None, 'Where overlays and the summary go (default '
         'WORKDIR/explanations).'),
    *options.MULTI_HOST,
)
POSITIONAL = 'IMAGE ...'


def run(args):
  workdir = common.workdir(args)
  common.start_runtime(args)
  return main(workdir, args.positional, args.checkpoint, method=args.method,
              target=args.target, out=args.out, steps=args.steps,
              sanity_check=args.sanity_check)


def main(workdir, paths, which='best', method='saliency', target='predicted', out=None,
         steps=None, sanity_check=False):
  """Prints the summary; returns 1 if any file could not be read, else 0."""
  if not paths:
    raise UserError('explain needs image files: jaxlab explain --workdir=DIR IMAGE ...')
  from jaxlab.inference import explanations  # pylint: disable=g-import-not-at-top
  records, errors = explanations.explain(workdir, paths, which, method, target, out, steps,
                                         sanity_check)
  for path, error in errors.items():
    print(f'jaxlab: cannot read {path}: {error}', file=sys.stderr, flush=True)
  for record in records:
    print(explanations.summary_line(record), flush=True)
  return 1 if errors else 0
