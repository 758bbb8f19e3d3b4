"""Classification: one input (image, audio features, token sequence) -> one label.

The input is the data set's one feature besides 'label'. Images (the feature named
'image') are scaled by the data set's pixel range and augmented on the device; other
inputs reach the model as they are (floats cast to the compute dtype).
"""


import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab import metrics as metrics_lib
from jaxlab.data import augment
from jaxlab.errors import UserError
from jaxlab.tasks import base

LABEL = 'label'


class Classification(base.Task):
  metric_names = ('accuracy', 'loss', 'precision', 'recall', 'f1')

  def __init__(self, config, info, **kwargs):
    super().__init__(config, info, **kwargs)
    inputs = [name for name in info.features if name not in (LABEL, 'mask')]
    if LABEL not in info.features or len(inputs) != 1 or not info.num_classes:
      raise UserError(f'The classification task needs a data set with one input feature, a '
                      f'{LABEL!r} feature and classes; {info.name!r} has features '
                      f'{sorted(info.features)} and {info.num_classes} classes. Pick a '
                      'matching --config.task.name or --config.data.name.')
    self.input = inputs[0]
    self.augment = tuple(config.data.augment) if self.input == 'image' else ()

  def batch_spec(self):
    spec = self.info.spec()
    return {self.input: spec[self.input], LABEL: ((), np.dtype(np.int32))}

  def model_signature(self):
    return self.info.spec()[self.input][0], self.info.num_classes

  def model_inputs(self, batch, key, *, train):
    x = batch[self.input]
    if self.input == 'image':
      x = x.astype(jnp.float32) / self.info.pixel_max
      if train and key is not None and self.augment:
        x = augment.apply(self.augment, x, key)
    if jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(self.compute_dtype)
    return (x,), {}

  def loss(self, logits, batch):
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch[LABEL])
    correct = (jnp.argmax(logits, -1) == batch[LABEL]).astype(jnp.float32)
    return base.weighted_mean(losses, batch), {'accuracy': base.weighted_mean(correct, batch)}

  def eval_outputs(self, logits, batch):
    return {'prediction': jnp.argmax(logits, -1), LABEL: batch[LABEL],
            'loss': optax.softmax_cross_entropy_with_integer_labels(logits, batch[LABEL])}

  def eval_metrics(self, outputs):
    result = metrics_lib.classification_metrics(outputs[LABEL], outputs['prediction'],
                                                self.info.num_classes)
    result['loss'] = float(np.mean(outputs['loss'])) if len(outputs['loss']) else float('nan')
    return result

  def eval_line(self, metrics):
    return (f'loss {metrics["loss"]:.4f}, accuracy {metrics["accuracy"]:.4f}, '
            f'f1 {metrics["f1"]:.4f}')

  def predict_outputs(self, logits, batch):
    return {'probabilities': jax.nn.softmax(logits.astype(jnp.float32))}

  def predict_inputs(self, paths):
    if self.input == 'image':
      return super().predict_inputs(paths)  # image files
    if self.input == 'audio':
      from jaxlab.tasks import audio_inputs
      return audio_inputs.read_wavs(paths, self.info)
    from jaxlab.tasks import text_inputs
    return text_inputs.classification_inputs(self, paths)

  def predictions(self, outputs, top_k):
    result = []
    for probs in outputs['probabilities']:
      order = np.argsort(-probs)[:top_k]
      result.append({'top_k': [dict(label=int(i), name=self.info.label_name(int(i)),
                                    probability=float(probs[i])) for i in order]})
    return result

  def prediction_line(self, prediction):
    return ', '.join(f'{p["name"]} {p["probability"]:.3f}' for p in prediction['top_k'])
