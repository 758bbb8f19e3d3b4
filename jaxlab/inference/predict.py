"""`jaxlab predict`: the model's predictions for input files, read as the task says
(images for image classifiers, text files for text models)."""

import json
import sys

import jax
import numpy as np

from jaxlab.inference import trained_run as inference
from jaxlab.data import pipeline
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.parallel import sharding

MAX_BATCH = 256


def outputs(run, batch):
  """The task's prediction outputs for a host batch (any number of examples)."""
  count = len(next(iter(batch.values())))
  size = mesh_lib.round_up_to_shards(min(count, MAX_BATCH), run.programs.mesh)
  predict = run.programs.predict()
  replicated = sharding.replicated(run.programs.mesh)
  parts = []
  for start in range(0, count, size):
    chunk = {k: pipeline.pad_to_multiple(np.asarray(v[start:start + size]), size)
             for k, v in batch.items()}
    placed = {k: pipeline.place(v, replicated) for k, v in chunk.items()}
    parts.append(jax.device_get(predict(run.variables, placed)))
  return {k: np.concatenate([np.asarray(p[k]) for p in parts])[:count] for k in parts[0]}


def main(workdir, paths, checkpoint='best', top_k_count=3, as_json=False):
  """Prints predictions; returns 1 if any file could not be read, else 0."""
  if not paths:
    print('jaxlab: error: predict needs input files: jaxlab predict --workdir=DIR FILE ...',
          file=sys.stderr)
    return 2
  run = inference.load(workdir, checkpoint)
  batch, readable, errors = run.task.predict_inputs(paths)
  for path, error in errors.items():
    print(f'jaxlab: cannot read {path}: {error}', file=sys.stderr, flush=True)
  if readable:
    for path, prediction in zip(readable, run.task.predictions(outputs(run, batch), top_k_count)):
      if as_json:
        print(json.dumps(dict(file=path, **prediction)), flush=True)
      else:
        print(f'{path}: {run.task.prediction_line(prediction)}', flush=True)
  return 1 if errors else 0
