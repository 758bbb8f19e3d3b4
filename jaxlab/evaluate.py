"""`jaxlab eval`: the metrics of a saved checkpoint on the test set."""

import json
import posixpath

import jax
import numpy as np

from jaxlab import data as data_lib
from jaxlab import inference
from jaxlab import metrics as metrics_lib
from jaxlab import storage
from jaxlab.data import pipeline
from jaxlab.parallel import sharding
from jaxlab.train import session as session_lib


def evaluate(run):
  """Metrics of `run` on its configured test set."""
  dataset = data_lib.load(run.config.data, local_rows=lambda n: (0, 0))  # the test set only
  eval_batch = session_lib.eval_batch_size(run.config, run.model.mesh)
  replicated = sharding.replicated(run.model.mesh)
  images = pipeline.place(pipeline.pad_to_multiple(dataset.test_images, eval_batch), replicated)
  labels = pipeline.place(pipeline.pad_to_multiple(dataset.test_labels, eval_batch), replicated)
  predictions, losses = jax.device_get(run.model.eval_function(eval_batch)(run.state, images,
                                                                          labels))
  count = len(dataset.test_labels)
  result = metrics_lib.classification_metrics(dataset.test_labels, predictions[:count],
                                              dataset.info.num_classes)
  result['loss'] = float(np.mean(losses[:count]))
  return dict(step=run.step, num_examples=count, **result)


def main(workdir, which):
  run = inference.load(workdir, which)
  result = evaluate(run)
  print(metrics_lib.format_table(result, title=f'eval of {workdir} at step {run.step}'))
  path = posixpath.join(workdir, f'eval_{run.step}.json')
  storage.write_text(path, json.dumps(result, indent=2) + '\n')
  print(f'Wrote {path}')
  return result
