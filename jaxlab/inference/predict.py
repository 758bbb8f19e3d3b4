"""The model's prediction outputs for a host batch of any size, in chunks of at most
MAX_BATCH examples (what `jaxlab predict` prints)."""

import jax
import numpy as np

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
