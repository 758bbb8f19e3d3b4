"""Speech recognition on the offline spoken_sentences set: WER and CER on held-out
voices, greedy and with CTC prefix beam search, beside a trivial baseline, after a full
training; and utterances/s of both decoders.

  python -m benchmarks.speech_recognition --out=benchmarks/speech_recognition_cpu.json [--workdir=DIR]

Trains experiments/spoken_sentences_ctc.py (its full recipe) with `jaxlab train` in a
fresh process, timing the whole command (start-up, speaking the set on a first run,
compiling, training and the evaluations), unless --workdir holds a finished run already
(then it reports that run's). Its last evaluation gives WER and CER with 4-beam prefix
beam search and greedy decoding, on the same model and test set. The trivial baseline
answers every test utterance with the most frequent training transcript. It then times,
at batch 16 on that run's model, the forward pass, greedy decoding and beam search, each
the median of --repeats calls after one warm-up. The quality bound (greedy WER < 25% and
beam search better than greedy, in under 15 minutes) is checked and reported, not
asserted.
"""

import argparse
import collections
import json
import os
import platform
import tempfile

from benchmarks import trained_runs

EXPERIMENT = 'experiments/spoken_sentences_ctc.py'
BATCH = 16


def baseline_and_timings(workdir, repeats):
  """(the most-frequent-transcript baseline's scores, seconds per batch of the forward
  pass, greedy decoding and beam search)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxlab import data as data_lib  # pylint: disable=import-outside-toplevel
  from jaxlab.data import sources  # pylint: disable=import-outside-toplevel
  from jaxlab.inference import forward, trained_run  # pylint: disable=import-outside-toplevel
  from jaxlab.tasks import asr_metrics, ctc_decoding  # pylint: disable=import-outside-toplevel
  run = trained_run.load(workdir)
  task = run.task
  splits = data_lib.load(run.config.data, workdir)
  texts = lambda rows: task.texts(np.asarray(rows['labels']), np.asarray(rows['label_length']))
  train_texts = texts(sources.read_rows(splits.train, 0, len(splits.train)))
  test_texts = texts(sources.read_rows(splits.test, 0, len(splits.test)))
  most_frequent, _ = collections.Counter(train_texts).most_common(1)[0]
  baseline = asr_metrics.scores(test_texts, [most_frequent] * len(test_texts))
  rows = sources.read_rows(splits.test, 0, BATCH)
  batch = {k: jnp.asarray(np.asarray(v)) for k, v in rows.items() if k in task.batch_spec()}
  logits = jax.jit(lambda v, b: forward.logits(v, b, model=run.programs.model, task=task))
  outputs = logits(run.variables, batch)
  log_probs, lengths = task.frames(outputs, batch)
  greedy = jax.jit(ctc_decoding.greedy)
  beam = jax.jit(ctc_decoding.beam_search, static_argnums=2)
  timings = dict(forward=trained_runs.median_seconds(logits, (run.variables, batch), repeats),
                 greedy=trained_runs.median_seconds(greedy, (log_probs, lengths), repeats),
                 beam=trained_runs.median_seconds(beam, (log_probs, lengths, task.beam_size), repeats))
  return dict(transcript=most_frequent, **baseline), timings, len(splits.train), len(splits.test)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default='benchmarks/speech_recognition_cpu.json')
  parser.add_argument('--workdir', default='')
  parser.add_argument('--repeats', type=int, default=10)
  args, overrides = parser.parse_known_args(argv)  # --config.KEY=VALUE: to jaxlab train
  args.overrides = [o for o in overrides if o.startswith('--config.')]
  if len(args.overrides) != len(overrides):
    parser.error(f'unrecognized arguments: {set(overrides) - set(args.overrides)}')
  workdir = args.workdir or tempfile.mkdtemp(prefix='jaxlab_speech_recognition_')
  train_seconds = trained_runs.train(EXPERIMENT, workdir, args.overrides)
  evaluation, training = trained_runs.last_records(workdir, 'eval/wer',
                                                        'train/examples_per_second')
  baseline, timings, num_train, num_test = baseline_and_timings(workdir, args.repeats)
  measured = {k.split('/')[1]: v for k, v in evaluation.items() if '/' in k}
  result = dict(
      experiment=EXPERIMENT, overrides=args.overrides, workdir=workdir,
      machine=platform.processor() or platform.machine(), cpus=len(os.sched_getaffinity(0)),
      load_average=os.getloadavg(), train_command_seconds=train_seconds, step=evaluation['step'],
      train_utterances=num_train, test_utterances=num_test, test_split='held-out voices',
      beam_size=4, **measured, baseline_most_frequent_transcript=baseline,
      train_utterances_per_second=training['train/examples_per_second'], eval_batch=BATCH,
      forward_seconds=timings['forward'], greedy_seconds=timings['greedy'],
      beam_seconds=timings['beam'],
      greedy_utterances_per_second=BATCH / (timings['forward'] + timings['greedy']),
      beam_utterances_per_second=BATCH / (timings['forward'] + timings['beam']))
  result['meets_wer_bound'] = bool(result['greedy_wer'] < 0.25 and result['wer'] <
                                   result['greedy_wer'] and (train_seconds or 0) < 15 * 60)
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
