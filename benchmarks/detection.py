"""The detector on the offline shapes set: COCO mAP after a full training, images/s of
training and inference, and the share of an eval step that post-processing takes.

  python -m benchmarks.detection --out=benchmarks/detection_cpu.json [--workdir=DIR]

Trains experiments/shapes_detection.py (its full recipe) with `jaxlab train` in a fresh
process, timing the whole command (start-up, drawing the set on a first run, compiling,
training and the evaluations), unless --workdir holds a finished run already (then it
reports that run's). It then times, at batch 32 on that run's model, the compiled eval
step (the model's forward pass plus decoding: score threshold, top-k, class-wise NMS,
fixed-size outputs) against the forward pass alone and the decoding alone, each the
median of --repeats calls after one warm-up, and writes the figures as JSON. The quality
bound (mAP > 0.5 in under 15 minutes) is checked and reported, not asserted.
"""

import argparse
import json
import os
import platform
import tempfile

from benchmarks import trained_runs

EXPERIMENT = 'experiments/shapes_detection.py'
BATCH = 32


def eval_step_timings(workdir, repeats):
  """Seconds per batch of 32 of the eval step, the forward pass and the decoding."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxlab import data as data_lib  # pylint: disable=import-outside-toplevel
  from jaxlab.data import sources  # pylint: disable=import-outside-toplevel
  from jaxlab.inference import forward, trained_run  # pylint: disable=import-outside-toplevel
  run = trained_run.load(workdir)
  test = data_lib.load(run.config.data, workdir).test
  rows = sources.read_rows(test, 0, BATCH)
  batch = {k: jnp.asarray(np.asarray(v)) for k, v in rows.items() if k in run.task.batch_spec()}
  model, task = run.programs.model, run.task
  step = jax.jit(lambda v, b: forward.eval_outputs(v, b, model=model, task=task))
  logits = jax.jit(lambda v, b: forward.logits(v, b, model=model, task=task))
  decode = jax.jit(task.detections)
  outputs = logits(run.variables, batch)
  return dict(eval_step=trained_runs.median_seconds(step, (run.variables, batch), repeats),
              forward=trained_runs.median_seconds(logits, (run.variables, batch), repeats),
              decoding=trained_runs.median_seconds(decode, (outputs,), repeats))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default='benchmarks/detection_cpu.json')
  parser.add_argument('--workdir', default='')
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args(argv)
  workdir = args.workdir or tempfile.mkdtemp(prefix='jaxlab_detection_')
  train_seconds = trained_runs.train(EXPERIMENT, workdir)
  evaluation, training = trained_runs.last_records(workdir, 'eval/mAP',
                                                        'train/examples_per_second')
  timings = eval_step_timings(workdir, args.repeats)
  result = dict(
      experiment=EXPERIMENT, workdir=workdir, machine=platform.processor() or platform.machine(),
      cpus=len(os.sched_getaffinity(0)), train_command_seconds=train_seconds,
      step=evaluation['step'], **{k.split('/')[1]: v for k, v in evaluation.items() if '/' in k},
      train_images_per_second=training['train/examples_per_second'],
      eval_batch=BATCH, eval_step_seconds=timings['eval_step'],
      forward_seconds=timings['forward'], decoding_seconds=timings['decoding'],
      inference_images_per_second=BATCH / timings['eval_step'],
      postprocessing_share=timings['decoding'] / timings['eval_step'])
  result['meets_map_bound'] = bool(result['mAP'] > 0.5 and (train_seconds or 0) < 15 * 60)
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
