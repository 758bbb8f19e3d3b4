"""Sequence to sequence on the offline sets: quality after a full training beside trivial
baselines, and decoding speed with and without the decoder's key/value cache.

  python -m benchmarks.seq2seq --out=benchmarks/seq2seq_cpu.json [--freedict_workdir=DIR] [--stdlib_workdir=DIR]

Trains experiments/freedict_de_en.py and experiments/stdlib_summaries.py (their full
recipes) with `jaxlab train` in fresh processes, timing each whole command, unless the
workdir given holds a finished run already (then it reports that run's). Each run's
final eval (BLEU, chrF, ROUGE on the held-out pairs it decodes) stands beside two trivial
baselines scored by the same functions on the same references: copying the source, and
the most frequent training target. Then, on the FreeDict model, it times the compiled
decoding of a batch of --batch held-out sources for beam sizes 1 and 4, with and without
the cache (the median of --repeats calls after a warm-up), as output tokens per second
(tokens of the returned outputs, end-of-sequence included, over the batch's seconds).
The bounds of issue 23 (chrF > 40, ROUGE-L > 25, each within 15 minutes on 2 cores) are
reported, not asserted.
"""

import argparse
import collections
import json
import os
import platform
import statistics
import tempfile
import time

from benchmarks import trained_runs

EXPERIMENTS = {'freedict_de_en': ('experiments/freedict_de_en.py', 'chrf', 40.0),
               'stdlib_summaries': ('experiments/stdlib_summaries.py', 'rougeL', 25.0)}


def final_eval(workdir):
  found, = trained_runs.last_records(workdir, 'eval/chrf')
  return {k.split('/', 1)[1]: v for k, v in found.items() if k.startswith('eval/')}


def baselines(run):
  """Scores of copying the source and of the most frequent training target, against the
  references eval decodes (the test pairs as the run's data holds them)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxlab import data as data_lib  # pylint: disable=import-outside-toplevel
  from jaxlab.data import sources  # pylint: disable=import-outside-toplevel
  from jaxlab.tasks import seq2seq_metrics  # pylint: disable=import-outside-toplevel
  splits = data_lib.load(run.config.data, run.workdir)
  source_tokenizer, target_tokenizer = run.task.tokenizers()
  test = sources.read_resident(splits.test, 0, len(splits.test))
  train = sources.read_resident(splits.train, 0, len(splits.train))
  texts = lambda tokenizer, rows: [tokenizer.decode(row) for row in np.asarray(rows)]
  references = texts(target_tokenizer, test['target'])
  frequent, count = collections.Counter(texts(target_tokenizer, train['target'])).most_common(1)[0]
  return dict(copy_source=seq2seq_metrics.corpus_scores(texts(source_tokenizer, test['source']),
                                                        references),
              most_frequent_output=dict(seq2seq_metrics.corpus_scores(
                  [frequent] * len(references), references), output=frequent, count=count))


def decoding_speed(run, batch_size, repeats):
  """{f'beam{K}_{cache|no_cache}': output tokens per second} on held-out sources."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from jaxlab import data as data_lib  # pylint: disable=import-outside-toplevel
  from jaxlab.data import sources  # pylint: disable=import-outside-toplevel
  from jaxlab.inference import seq2seq_decoding  # pylint: disable=import-outside-toplevel
  test = data_lib.load(run.config.data, run.workdir).test
  source = jax.numpy.asarray(np.asarray(sources.read_resident(test, 0, batch_size)['source']))
  model = nnx.merge(run.programs.model.eval_graph, run.variables.params, run.variables.model_state)
  speeds = {}
  for beams in (1, 4):
    for cache in (True, False):
      settings = dataclasses.replace(run.task.decoding, beam_size=beams, use_cache=cache)
      decode = jax.jit(lambda s, settings=settings: seq2seq_decoding.decode(model, s, settings))
      outputs = jax.block_until_ready(decode(source))
      times = []
      for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(decode(source))
        times.append(time.perf_counter() - started)
      tokens = int(np.sum(np.asarray(outputs['lengths']) + 1))
      speeds[f'beam{beams}_{"cache" if cache else "no_cache"}'] = dict(
          tokens_per_second=tokens / statistics.median(times), seconds=statistics.median(times),
          output_tokens=tokens)
  return speeds


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default='benchmarks/seq2seq_cpu.json')
  parser.add_argument('--freedict_workdir', default='')
  parser.add_argument('--stdlib_workdir', default='')
  parser.add_argument('--only', default='', help='freedict_de_en or stdlib_summaries: run '
                      'that one, keeping the other\'s entry of --out')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args(argv)
  from jaxlab.inference import trained_run  # pylint: disable=import-outside-toplevel
  workdirs = {'freedict_de_en': args.freedict_workdir, 'stdlib_summaries': args.stdlib_workdir}
  result = dict(machine=platform.processor() or platform.machine(),
                cpus=len(os.sched_getaffinity(0)), load_average=os.getloadavg()[0])
  if args.only and os.path.isfile(args.out):  # keep the other experiment's entry
    with open(args.out) as f:
      result = {**json.load(f), **result}
  for name, (experiment, metric, bound) in EXPERIMENTS.items():
    if args.only and name != args.only:
      continue
    workdir = workdirs[name] or tempfile.mkdtemp(prefix=f'jaxlab_{name}_')
    load_before = os.getloadavg()[0]
    seconds = trained_runs.train(experiment, workdir)
    load_after = os.getloadavg()[0]
    evaluation = final_eval(workdir)
    run = trained_run.load(workdir)
    entry = dict(experiment=experiment, workdir=workdir, train_command_seconds=seconds,
                 eval=evaluation, baselines=baselines(run), bound=f'{metric} > {bound:g}',
                 meets_bound=bool(evaluation[metric] > bound and (seconds or 0) < 15 * 60),
                 load_average_before_and_after=[load_before, load_after])
    if name == 'freedict_de_en':
      entry['decoding'] = dict(batch=args.batch, **decoding_speed(run, args.batch, args.repeats))
    result[name] = entry
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
