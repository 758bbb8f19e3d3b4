"""Next-token prediction over packed token sequences.

A batch holds 'tokens', 'segment_ids' and 'positions' (int32, batch x seq_len), as
`jaxlab.data.packing` packs documents: segment 0 is padding, and a new segment starts at
each document (and where a document continues into the next row). The model predicts
token t+1 from tokens 0..t of the same segment; that target counts in the loss iff
segment_ids[t+1] == segment_ids[t] != 0, so padding and document boundaries are masked.
Metrics: loss (nats per token), perplexity, token accuracy.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.errors import UserError
from jaxlab.tasks import base

FEATURES = ('tokens', 'segment_ids', 'positions')


def target_mask(segment_ids_BxL):
  """[B, L-1]: which next-token targets count (same, non-padding segment)."""
  following = segment_ids_BxL[:, 1:]
  return (following == segment_ids_BxL[:, :-1]) & (following > 0)


def token_losses(logits_BxLxV, batch):
  """(per-target losses [B, L-1], per-target correct [B, L-1], weights [B, L-1])."""
  logits = logits_BxLxV[:, :-1].astype(jnp.float32)
  targets = batch['tokens'][:, 1:]
  weights = target_mask(batch['segment_ids']).astype(jnp.float32)
  if 'mask' in batch:
    weights = weights * batch['mask'][:, None].astype(jnp.float32)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return losses, correct, weights


class LanguageModel(base.Task):
  metric_names = ('loss', 'perplexity', 'token_accuracy')

  def __init__(self, config, info, **kwargs):
    super().__init__(config, info, **kwargs)
    missing = [name for name in FEATURES if name not in info.features]
    if missing or not info.vocab_size:
      raise UserError(f'The language_model task needs token sequences ({", ".join(FEATURES)}) '
                      f'and a vocabulary; {info.name!r} has features {sorted(info.features)}. '
                      'Use a text data set (e.g. --config.data.name=python_docs).')
    self.seq_len = info.spec()['tokens'][0][0]

  def batch_spec(self):
    return {name: ((self.seq_len,), np.dtype(np.int32)) for name in FEATURES}

  def model_signature(self):
    return (self.seq_len,), self.info.vocab_size

  def model_inputs(self, batch, key, *, train):
    return (batch['tokens'],), dict(segment_ids=batch['segment_ids'],
                                    positions=batch['positions'])

  def loss(self, logits, batch):
    losses, correct, weights = token_losses(logits, batch)
    count = jnp.maximum(weights.sum(), 1.0)
    loss = (losses * weights).sum() / count
    return loss, {'token_accuracy': (correct * weights).sum() / count,
                  'perplexity': jnp.exp(loss)}

  def eval_outputs(self, logits, batch):
    losses, correct, weights = token_losses(logits, batch)
    return {'loss_sum': (losses * weights).sum(-1), 'correct': (correct * weights).sum(-1),
            'targets': weights.sum(-1)}

  def eval_metrics(self, outputs):
    targets = float(np.sum(outputs['targets']))
    loss = float(np.sum(outputs['loss_sum'])) / max(targets, 1.0)
    return {'loss': loss, 'perplexity': math.exp(min(loss, 700.0)),
            'token_accuracy': float(np.sum(outputs['correct'])) / max(targets, 1.0),
            'bits_per_token': loss / math.log(2), 'num_targets': int(targets)}

  def eval_line(self, metrics):
    return (f'loss {metrics["loss"]:.4f}, perplexity {metrics["perplexity"]:.2f}, '
            f'token accuracy {metrics["token_accuracy"]:.4f}')

  def predict_outputs(self, logits, batch):
    losses, _, weights = token_losses(logits, batch)
    last = jnp.maximum(jnp.sum(batch['segment_ids'] > 0, -1) - 1, 0)  # last real token
    next_logits = jnp.take_along_axis(logits, last[:, None, None], axis=1)[:, 0]
    return {'loss_sum': (losses * weights).sum(-1), 'targets': weights.sum(-1),
            'next_token': jax.nn.softmax(next_logits.astype(jnp.float32))}

  def predict_spec(self):
    return self.batch_spec()

  def predict_inputs(self, paths):
    from jaxlab.tasks import text_inputs
    return text_inputs.language_model_inputs(self, paths)

  def predictions(self, outputs, top_k):
    from jaxlab.tasks import text_inputs
    tokenizer = text_inputs.tokenizer(self)
    result = []
    for loss_sum, targets, probs in zip(outputs['loss_sum'], outputs['targets'],
                                        outputs['next_token']):
      loss = float(loss_sum) / max(float(targets), 1.0)
      order = np.argsort(-probs)[:top_k]
      result.append(dict(loss=loss, perplexity=math.exp(min(loss, 700.0)), tokens=int(targets) + 1,
                         next_tokens=[dict(token=int(i), text=tokenizer.decode([int(i)]),
                                           probability=float(probs[i])) for i in order]))
    return result

  def prediction_line(self, prediction):
    shown = ', '.join(f'{p["text"]!r} {p["probability"]:.3f}' for p in prediction['next_tokens'])
    return (f'perplexity {prediction["perplexity"]:.2f} over {prediction["tokens"]} tokens; '
            f'next: {shown}')
