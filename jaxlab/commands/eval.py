"""Evaluates the checkpoint that --checkpoint names on the workdir's test set: prints the
task's metrics and writes them to WORKDIR/eval_<step>.json; for sequence outputs also the
worst-scoring test examples, to WORKDIR/eval_<step>_worst.jsonl (speech recognition) or
_worst.txt (seq2seq, a readable report)."""

import json

from jaxlab.commands import common, options

USAGE = ('jaxlab eval --workdir=DIR [--checkpoint=best|latest|STEP]',)
FLAGS = (options.WORKDIR, options.CHECKPOINT, *options.MULTI_HOST)
POSITIONAL = None


def run(args):
  common.no_positional('eval', args, '; it evaluates the checkpoint that --checkpoint names '
                       'on the workdir\'s test set')
  workdir = common.workdir(args)
  common.start_runtime(args)
  main(workdir, args.checkpoint)
  return 0


def main(workdir, which):
  """Prints the metrics table and writes eval_<step>.json; returns the metrics."""
  from jaxlab import storage  # pylint: disable=g-import-not-at-top
  from jaxlab.inference import evaluate  # pylint: disable=g-import-not-at-top
  from jaxlab.tasks import metrics  # pylint: disable=g-import-not-at-top
  from jaxlab.workdir import files  # pylint: disable=g-import-not-at-top
  result, step = evaluate.evaluate_workdir(workdir, which)
  print(metrics.format_table(result, title=f'eval of {workdir} at step {step}'))
  for line in evaluate.what_was_evaluated(result):
    print(line)
  if result.get('worst_examples'):
    print(f'Wrote the worst-scoring test examples to {result["worst_examples"]}')
  path = files.path(workdir, files.eval_result(step))
  storage.write_text(path, json.dumps(result, indent=2) + '\n')
  print(f'Wrote {path}')
  return result
