"""Regression: inputs -> one number, the float32 'label' (`task.name=regression`).

The model has one output. It learns the label standardised, (y - mean) / std, with the
training split's mean and std where the data set gives them (tables:
DatasetInfo.preprocessing['table']['label']), so a label in the thousands trains like one
near 1; predictions and metrics are in the label's own units. The loss is the mean
squared error of the standardised label; eval adds RMSE, MAE and R² (1 - SSE / SST over
the test set).

Inputs: table rows ('numeric' and 'categorical', for `tabular_mlp`), or any one other
feature (images scaled by the pixel range; other floats as they are).
"""

import jax.numpy as jnp
import numpy as np

from jaxlab.errors import UserError
from jaxlab.tasks import base, table_inputs

LABEL = 'label'


class Regression(base.Task):
  metric_names = ('loss', 'rmse', 'mae', 'r2')

  def __init__(self, config, info, **kwargs):
    super().__init__(config, info, **kwargs)
    spec = info.spec()
    if LABEL not in spec or spec[LABEL][1].kind != 'f' or info.num_classes:
      raise UserError(f'The regression task learns a float {LABEL!r}; {info.name!r} has '
                      + (f'{info.num_classes} classes: use --config.task.name=classification.'
                         if info.num_classes else f'features {sorted(spec)}.'))
    self.table = table_inputs.is_table(info)
    inputs = [name for name in spec if name not in (LABEL, 'mask')]
    if not self.table and len(inputs) != 1:
      raise UserError(f'The regression task reads table rows or one input feature; {info.name!r} '
                      f'has {inputs}.')
    self.input = None if self.table else inputs[0]
    label = ((info.preprocessing or {}).get('table') or {}).get('label') or {}
    self.mean, self.std = float(label.get('mean', 0.0)), float(label.get('std', 1.0))

  def batch_spec(self):
    spec = self.info.spec()
    inputs = table_inputs.spec(self.info) if self.table else {self.input: spec[self.input]}
    return dict(inputs, label=spec[LABEL])

  def model_signature(self):
    if self.table:
      return table_inputs.signature(self.info, 1)
    return self.info.spec()[self.input][0], 1

  def model_inputs(self, batch, key, *, train):
    if self.table:
      return table_inputs.model_inputs(batch, self.compute_dtype)
    x = batch[self.input]
    if self.input == 'image':
      x = x.astype(jnp.float32) / self.info.pixel_max
    return (x.astype(self.compute_dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,), {}

  def _value(self, outputs):
    """The model's output in the label's units, [B]."""
    return outputs[:, 0].astype(jnp.float32) * self.std + self.mean

  def loss(self, outputs, batch):
    scaled_error = outputs[:, 0].astype(jnp.float32) - (batch[LABEL] - self.mean) / self.std
    squared = scaled_error ** 2
    rmse = jnp.sqrt(base.weighted_mean(squared, batch)) * self.std
    return base.weighted_mean(squared, batch), {'rmse': rmse}

  def eval_outputs(self, outputs, batch):
    return {'prediction': self._value(outputs), LABEL: batch[LABEL]}

  def eval_metrics(self, outputs):
    prediction = np.asarray(outputs['prediction'], np.float64)
    label = np.asarray(outputs[LABEL], np.float64)
    if not len(label):
      return dict(loss=float('nan'), rmse=float('nan'), mae=float('nan'), r2=float('nan'))
    error = prediction - label
    total = np.sum((label - label.mean()) ** 2)
    return dict(loss=float(np.mean((error / self.std) ** 2)),
                rmse=float(np.sqrt(np.mean(error ** 2))), mae=float(np.mean(np.abs(error))),
                r2=float(1 - np.sum(error ** 2) / total) if total > 0 else float('nan'))

  def eval_line(self, metrics):
    return (f'loss {metrics["loss"]:.4f}, rmse {metrics["rmse"]:.4g}, mae {metrics["mae"]:.4g}, '
            f'r2 {metrics["r2"]:.4f}')

  def predict_outputs(self, outputs, batch):
    return {'value': self._value(outputs)}

  def predict_spec(self):
    return table_inputs.spec(self.info) if self.table else super().predict_spec()

  def predict_inputs(self, paths):
    return table_inputs.read_files(paths, self.info) if self.table else \
        super().predict_inputs(paths)

  def json_inputs(self, instances):
    """A batch from JSON rows {column: value} (jaxlab serve, table models)."""
    if not self.table:
      raise ValueError('this model takes arrays shaped like its input, not table rows')
    return table_inputs.json_rows(instances, self.info)

  def predictions(self, outputs, top_k):
    del top_k
    return [{'value': float(v)} for v in outputs['value']]

  def prediction_line(self, prediction):
    name = (self.info.preprocessing or {}).get('table', {}).get('label', {}).get('column', 'value')
    return f'{name} {prediction["value"]:.6g}'
