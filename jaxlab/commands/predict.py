"""Prints the model's predictions for input files, read as the task says (images for
image classifiers, text files for text models, WAV files for speech): the --top_k likeliest
classes of each, or one JSON object per file with --json. A detector's boxes are also drawn
on each image, a PNG each in --out (default WORKDIR/predictions, or ./predictions for a
workdir in a bucket). Exit 1 if a file could
not be read (the others are still predicted)."""

import json
import os
import sys

from jaxlab.commands import common, options
from jaxlab.commands.options import Flag

USAGE = ('jaxlab predict --workdir=DIR [--top_k=3] [--json] [--out=DIR] [--min_score=0] FILE [FILE ...]',)
FLAGS = (
    options.WORKDIR, options.CHECKPOINT,
    Flag('top_k', 'integer', 3, 'How many of the likeliest classes to print per file.'),
    Flag('json', 'bool', False, 'Print one JSON object per file.'),
    Flag('out', 'string', None, 'Detectors: the folder of the PNGs with the boxes drawn '
         '(default WORKDIR/predictions).'),
    Flag('min_score', 'float', 0.0, 'Detectors: show only boxes scoring at least this '
         '(0: every box above the run\'s task.score_threshold).'),
    *options.MULTI_HOST,
)
POSITIONAL = 'FILE ...'


def run(args):
  workdir = common.workdir(args)
  common.start_runtime(args)
  return main(workdir, args.positional, checkpoint=args.checkpoint, top_k_count=args.top_k,
              as_json=args.json, out=args.out, min_score=args.min_score)


def main(workdir, paths, checkpoint='best', top_k_count=3, as_json=False, out=None,
         min_score=0.0):
  """Prints predictions; returns 1 if any file could not be read, else 0."""
  if not paths:
    print('jaxlab: error: predict needs input files: jaxlab predict --workdir=DIR FILE ...',
          file=sys.stderr)
    return 2
  from jaxlab.inference import predict  # pylint: disable=g-import-not-at-top
  from jaxlab.inference import trained_run  # pylint: disable=g-import-not-at-top
  run_ = trained_run.load(workdir, checkpoint)
  batch, readable, errors = run_.task.predict_inputs(paths)
  for path, error in errors.items():
    print(f'jaxlab: cannot read {path}: {error}', file=sys.stderr, flush=True)
  if readable:
    outputs = predict.outputs(run_, batch)
    for path, prediction in zip(readable, run_.task.predictions(outputs, top_k_count)):
      if 'detections' in prediction and min_score:
        prediction = dict(prediction, detections=[d for d in prediction['detections']
                                                  if d['score'] >= min_score])
      drawn = _draw(run_.task, path, prediction, out or _default_out(workdir))
      if as_json:
        print(json.dumps(dict(file=path, **prediction, **drawn)), flush=True)
      else:
        print(f'{path}: {run_.task.prediction_line(prediction)}'
              + (f' (drawn: {drawn["drawn"]})' if drawn else ''), flush=True)
  return 1 if errors else 0


def _default_out(workdir):
  """WORKDIR/predictions, or ./predictions for a workdir in a bucket (gs://, s3://)."""
  return 'predictions' if '://' in str(workdir) else os.path.join(workdir, 'predictions')


def _draw(task, path, prediction, folder):
  """{'drawn': PNG path} where the task draws its predictions (detectors), else {}."""
  if not hasattr(task, 'draw'):
    return {}
  stem = os.path.splitext(os.path.basename(path))[0]
  return {'drawn': task.draw(path, prediction, os.path.join(folder, f'{stem}.png'))}
