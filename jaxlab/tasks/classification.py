"""Classification: one input (image, audio features, token sequence) -> one label.

The input is the data set's one feature besides 'label'. Images (the feature named
'image') are scaled by the data set's pixel range and augmented on the device; other
inputs reach the model as they are (floats cast to the compute dtype).

Training options: `task.label_smoothing` (eps) trains towards (1 - eps) one_hot + eps / C;
`data.mixup_alpha` (Zhang et al. 2018, big_vision's form) mixes each training batch with
itself rolled by one example, with one weight r ~ Beta(alpha, alpha) per batch: inputs
r x + (1 - r) x_rolled (after augmentation) and targets r y + (1 - r) y_rolled. The
training accuracy of a mixed batch is measured against each example's dominant label
(its own if r >= 0.5, else its partner's). Eval and predict see unmixed inputs.
"""


import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.tasks import metrics as metrics_lib
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
    if 'scale_jitter' in self.augment:
      raise UserError('--config.data.augment: scale_jitter moves boxes (task.name=detection); '
                      "a classifier's augmentations are 'crop' and 'flip'.")
    self.mixup_alpha = float(config.data.mixup_alpha)
    self.label_smoothing = float(config.task.label_smoothing)
    if self.mixup_alpha and not np.issubdtype(info.spec()[self.input][1], np.number):
      raise UserError(f'--config.data.mixup_alpha={self.mixup_alpha} mixes numeric inputs, but '
                      f'{info.name!r}\'s {self.input!r} is not numeric; set it to 0.')

  def batch_spec(self):
    spec = self.info.spec()
    return {self.input: spec[self.input], LABEL: ((), np.dtype(np.int32))}

  def model_signature(self):
    return self.info.spec()[self.input][0], self.info.num_classes

  def train_batch(self, batch, key):
    """Adds mixup's weight (the same for every example) as batch['mixup_ratio']."""
    if not self.mixup_alpha:
      return batch
    ratio = jax.random.beta(key, self.mixup_alpha, self.mixup_alpha)
    return dict(batch, mixup_ratio=jnp.full(batch[LABEL].shape, ratio, jnp.float32))

  def model_inputs(self, batch, key, *, train):
    x = batch[self.input]
    if self.input == 'image':
      x = x.astype(jnp.float32) / self.info.pixel_max
      if train and key is not None and self.augment:
        x = augment.apply(self.augment, x, key)
    if 'mixup_ratio' in batch:
      x = mix(x.astype(jnp.float32), batch['mixup_ratio'])
    if jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(self.compute_dtype)
    return (x,), {}

  def loss(self, logits, batch):
    if 'mixup_ratio' in batch or self.label_smoothing:
      losses = optax.softmax_cross_entropy(logits, self.targets(batch, logits.shape[-1]))
    else:  # hard labels: the integer form needs no one-hot array
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch[LABEL])
    label = batch[LABEL]
    if 'mixup_ratio' in batch:  # accuracy against the dominant label of each mixture
      label = jnp.where(batch['mixup_ratio'] >= 0.5, label, jnp.roll(label, 1, axis=0))
    correct = (jnp.argmax(logits, -1) == label).astype(jnp.float32)
    return base.weighted_mean(losses, batch), {'accuracy': base.weighted_mean(correct, batch)}

  def targets(self, batch, num_classes):
    """B x C training targets: one-hot labels, mixed by mixup, smoothed."""
    targets_BxC = jax.nn.one_hot(batch[LABEL], num_classes, dtype=jnp.float32)
    if 'mixup_ratio' in batch:
      targets_BxC = mix(targets_BxC, batch['mixup_ratio'])
    if self.label_smoothing:
      targets_BxC = optax.smooth_labels(targets_BxC, self.label_smoothing)
    return targets_BxC

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

  def predict_spec(self):
    shape, dtype = self.info.spec()[self.input]
    return {self.input: (shape, np.dtype(np.float32) if self.input == 'image' else dtype)}

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


def mix(x_Bx___, ratio_B):
  """ratio x + (1 - ratio) x rolled by one example along the batch (mixup's pairs)."""
  ratio = ratio_B.reshape(ratio_B.shape + (1,) * (x_Bx___.ndim - 1)).astype(x_Bx___.dtype)
  return ratio * x_Bx___ + (1 - ratio) * jnp.roll(x_Bx___, 1, axis=0)
