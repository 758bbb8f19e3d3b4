"""The task interface: what a batch holds, what the model sees, the loss, the metrics
and how `predict` reads inputs and shows outputs.

A batch is a dict of named arrays with a leading batch axis: the features of the data
set (`DatasetInfo.features`, e.g. 'image' and 'label', or 'tokens', 'segment_ids' and
'positions'), plus 'mask' (float32, 1 for a real example, 0 for padding or a skipped
bad record) where the input can hold such examples. The trainer, eval, predict and the
dry run call only these methods; nothing else in jaxlab knows what a batch holds.

Methods marked *compiled* run inside `jax.jit` and must be pure functions of their
array arguments. The others run on the host, on numpy arrays.

A task of your own: subclass `Task` in your package and pass
`--config.task.name=my_pkg.tasks:MyTask`; it is built as
`MyTask(config, info, compute_dtype=..., workdir=...)` (the whole experiment config).
"""

import jax.numpy as jnp
import numpy as np


class Task:
  """Base class of tasks; subclass it and define the methods that raise
  NotImplementedError (the others have working defaults).

  `config` is the whole experiment config, `info` the data set's `DatasetInfo`,
  `compute_dtype` the dtype the model computes in, and `workdir` the run's folder (where a
  trained tokenizer is kept). `metric_names` lists what `eval_metrics` returns, so that
  `checkpoint.best_metric` can be checked before training.
  """

  metric_names = ('loss',)  # what eval_metrics returns: checkpoint.best_metric picks one

  def __init__(self, config, info, *, compute_dtype=jnp.float32, workdir=None):
    self.config = config
    self.info = info
    self.compute_dtype = compute_dtype
    self.workdir = workdir  # where a trained tokenizer is kept

  # --- shapes (host) -----------------------------------------------------------------

  def batch_spec(self):
    """{feature: (shape of one example, numpy dtype)} that a batch must hold: checked
    against the data before anything compiles."""
    raise NotImplementedError

  def model_signature(self):
    """(input_shape, num_outputs) passed to the model's factory."""
    raise NotImplementedError

  # --- on the device (compiled) ------------------------------------------------------

  def train_batch(self, batch, key):
    """*compiled* The training batch as the loss and the model should see it, called once
    per step (per micro-batch) before `model_inputs`; `key` is the step's. Identity by
    default; classification adds mixup's draw here, so inputs and targets share it."""
    del key
    return batch

  def model_inputs(self, batch, key, *, train):
    """(args, kwargs) for the model's __call__, from a batch; `key` (None at eval) is for
    on-device augmentation."""
    raise NotImplementedError

  def loss(self, outputs, batch):
    """(scalar loss to minimise, {name: scalar} training metrics of this step)."""
    raise NotImplementedError

  def eval_outputs(self, outputs, batch):
    """{name: per-example array} that the host turns into eval metrics."""
    raise NotImplementedError

  # --- on the host -------------------------------------------------------------------

  def eval_metrics(self, outputs):
    """{metric: value} from the concatenated eval outputs of the real examples."""
    raise NotImplementedError

  def eval_line(self, metrics):
    """One line for the log, e.g. 'loss 0.31, accuracy 0.9120'."""
    return f'loss {metrics["loss"]:.4f}'

  def predict_outputs(self, outputs, batch):
    """*compiled* {name: per-example array} that `predictions` reads."""
    raise NotImplementedError

  def predict_spec(self):
    """{feature: (shape of one example, numpy dtype)} of the batch that `predict_inputs`
    makes and `predict_outputs` reads: an exported model's inputs. By default float32
    images in the data set's raw pixel range, as `predict_inputs` reads them."""
    if 'image' in self.info.features:
      return {'image': (self.info.image_shape, np.dtype(np.float32))}
    from jaxlab.errors import UserError
    raise UserError(f'The task {type(self).__name__} does not say what its predictions take: '
                    'define its predict_spec() (see jaxlab.tasks.base).')

  def predict_inputs(self, paths):
    """(batch dict of stacked numpy inputs, readable paths, {path: error}) from files.
    By default image files, for data sets of images."""
    if 'image' in self.info.features:
      from jaxlab.tasks import image_inputs
      return image_inputs.read_images(paths, self.info)
    from jaxlab.errors import UserError
    raise UserError(f'The task {type(self).__name__} does not say how to read input files '
                    'for predict: define its predict_inputs(paths).')

  def predictions(self, outputs, top_k):
    """Per example of `predict_outputs` (numpy): a JSON-able dict of the prediction."""
    raise NotImplementedError

  def prediction_line(self, prediction):
    """How one prediction is printed (without --json)."""
    return str(prediction)


def weighted_mean(values_B, batch):
  """The mean over the batch's real examples (all of them when it carries no mask)."""
  if 'mask' not in batch:
    return values_B.mean()
  mask = batch['mask'].astype(values_B.dtype)
  return (values_B * mask).sum() / jnp.maximum(mask.sum(), 1)
