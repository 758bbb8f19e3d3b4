"""The model's forward pass in eval mode, for evaluation and prediction: pure
functions of (variables, batch), compiled by `jaxlab.inference.programs`. Nothing here knows
about training or optimizers."""

import jax
import jax.numpy as jnp
from jax import lax


def constrain(batch, batch_sharding):
  """Pins each array of a batch to be split over the data-parallel devices."""
  if batch_sharding is None:
    return batch
  return {k: lax.with_sharding_constraint(v, batch_sharding) for k, v in batch.items()}


def logits(variables, batch, *, model, task):
  args, kwargs = task.model_inputs(batch, None, train=False)
  outputs, _ = model.apply(variables.params, variables.model_state, args, kwargs, train=False)
  # A model may return several arrays (a seq2seq model: logits and decoded tokens).
  return jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating)
                      else x, outputs)


def eval_outputs(variables, batch, *, model, task, batch_sharding=None):
  """Per-example eval outputs of one batch."""
  batch = constrain(batch, batch_sharding)
  outputs = task.eval_outputs(logits(variables, batch, model=model, task=task), batch)
  if 'mask' in batch:  # which rows are real examples, for the host
    outputs = dict(outputs, mask=batch['mask'])
  return outputs


def eval_outputs_resident(variables, arrays, *, eval_batch_size, model, task,
                          batch_sharding=None):
  """Per-example eval outputs of a whole device-resident set (its length a multiple of
  eval_batch_size), a batch at a time inside one compiled call."""
  batches = jax.tree.map(lambda a: a.reshape(-1, eval_batch_size, *a.shape[1:]), arrays)
  outputs = lax.map(lambda batch: eval_outputs(variables, batch, model=model, task=task,
                                               batch_sharding=batch_sharding), batches)
  return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), outputs)


def predict_outputs(variables, batch, *, model, task, batch_sharding=None):
  batch = constrain(batch, batch_sharding)
  return task.predict_outputs(logits(variables, batch, model=model, task=task), batch)


def export_outputs(variables, batch, *, model, task):
  """What an exported model returns: the logits and the task's prediction outputs (only
  the latter for a model whose outputs are several arrays, e.g. decoded tokens)."""
  logits_ = logits(variables, batch, model=model, task=task)
  outputs = task.predict_outputs(logits_, batch)
  return outputs if isinstance(logits_, dict) else dict(outputs, logits=logits_)
