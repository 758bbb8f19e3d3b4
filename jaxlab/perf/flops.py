"""Model FLOPs of one training step (global batch; a multiply-add counts 2).

"Model FLOPs" are the matmuls and convolutions that one forward and backward pass of
the model needs: not the work a particular run does. Rematerialisation (recomputed
activations) and gradient accumulation (several micro-batches) change how the step is
computed, not its model FLOPs, so neither enters the count; element-wise work
(activations, norms, softmax, the optimizer) is left out, as it does not run on the
matrix units whose peak MFU compares against (PaLM, appendix B).

Two ways, by model name:
- `ANALYTIC[name](config, task, batch_size)`: a closed formula (today the LM's).
- every other model: `traced_flops` walks the jaxpr of the train step and adds up its
  dot_general and conv_general_dilated FLOPs, a scan's body times its length, a
  shard_map's body times its shards. A model that rematerialises inside itself (e.g.
  nnx.remat around its blocks) has its recomputed forward counted too: give such a
  model an ANALYTIC formula.
  (XLA's own cost analysis counts a while loop's body once: a 10-step scan of a matmul
  reports the FLOPs of one. Layer stacks under nnx.scan, RNNs over time and gradient
  accumulation are all such loops, so it cannot be the count.)
"""

import math

import jax
from jax.extend import core as jax_core

from jaxlab.models import layers
from jaxlab.models import transformer


def transformer_lm_flops(settings, vocab_size, seq_len, batch_size):
  """Train-step FLOPs of `transformer_lm` from its `resolve`d settings.

  PaLM's convention (appendix B; Chinchilla's differs only by the element-wise terms):
  6 N + 12 L D T per token, where N counts the weights of every matmul (q, k, v, out,
  the three SwiGLU matrices, and the logits head, which is a matmul also when tied to
  the embedding; the embedding lookup itself is free) and 12 L D T is the attention
  scores and the weighted values, forward (4 L D T) and backward (twice that). No
  causal halving: XLA's attention computes the whole T x T scores and masks them.
  Tokens are batch x seq_len, padding included (the model computes them).
  """
  d, layers = settings['embed_dim'], settings['num_layers']
  head_dim = settings.get('head_dim') or d // settings['num_heads']
  q_width, kv_width = settings['num_heads'] * head_dim, settings['num_kv_heads'] * head_dim
  per_layer = 2 * d * q_width + 2 * d * kv_width + 3 * d * settings['mlp_dim']
  matmul_weights = layers * per_layer + d * vocab_size
  per_token = 6 * matmul_weights + 12 * layers * q_width * seq_len
  return float(per_token * batch_size * seq_len)


def _transformer_lm(config, task, batch_size):
  (seq_len,), vocab_size = task.model_signature()
  options = {k: v for k, v in config.model.items() if k != 'name'}
  settings = transformer.resolve((seq_len,), options)
  return transformer_lm_flops(settings, vocab_size, seq_len, batch_size)


# Model name -> (config, task, global batch size) -> FLOPs of one train step.
ANALYTIC = {
    'transformer_lm': _transformer_lm,
}


def analytic_flops(config, task, batch_size):
  """The closed formula's count, or None where the model has none."""
  formula = ANALYTIC.get(config.model.name)
  return formula(config, task, batch_size) if formula else None


def traced_flops(function, *args):
  """Matmul and convolution FLOPs of `function(*args)` (args may be ShapeDtypeStructs),
  after dead code is removed: autodiff also traces gradients nobody uses (e.g. with
  respect to the input images), which XLA drops."""
  return closed_jaxpr_flops(jax.make_jaxpr(function)(*args))


def closed_jaxpr_flops(closed_jaxpr):
  """Matmul and convolution FLOPs of a traced function (e.g. a jit's `.trace().jaxpr`),
  after dead code is removed."""
  return float(jaxpr_flops(_without_dead_code(closed_jaxpr.jaxpr)))


def _without_dead_code(jaxpr):
  try:  # JAX's own pass (private, hence the guard): it also prunes inside jit and scan.
    from jax._src.interpreters import partial_eval  # pylint: disable=import-outside-toplevel
    return partial_eval.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))[0]
  except (ImportError, AttributeError, TypeError):
    return jaxpr


def jaxpr_flops(jaxpr):
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if layers.NOT_MODEL_FLOPS in str(eqn.source_info.name_stack):
      continue
    if name == 'dot_general':
      total += _dot_flops(eqn)
    elif name == 'conv_general_dilated':
      total += _conv_flops(eqn)
    elif name == 'cond':  # one branch runs
      total += max(jaxpr_flops(branch.jaxpr) for branch in eqn.params['branches'])
    else:  # a while loop's trip count is unknown: its body counts once
      inner = sum(jaxpr_flops(sub) for sub in _sub_jaxprs(eqn.params))
      total += inner * _repeats(eqn)
  return total


def _repeats(eqn):
  """How many times a sub-jaxpr runs: a scan's length; a shard_map body once per shard."""
  if eqn.primitive.name == 'scan':
    return eqn.params['length']
  if eqn.primitive.name == 'shard_map':
    mesh, params = eqn.params['mesh'], eqn.params
    axes = params.get('newly_manual_axes') or params.get('manual_axes') or mesh.axis_names
    return math.prod(mesh.shape[axis] for axis in axes)
  return 1


def _sub_jaxprs(params):
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jax_core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, jax_core.Jaxpr):
        yield item


def _dot_flops(eqn):
  lhs, rhs = (v.aval.shape for v in eqn.invars)
  (_, rhs_contract), (_, rhs_batch) = eqn.params['dimension_numbers']
  rhs_free = [size for i, size in enumerate(rhs) if i not in rhs_contract and i not in rhs_batch]
  return 2 * math.prod(lhs) * math.prod(rhs_free)


def _conv_flops(eqn):
  """2 x output elements x (kernel window x input features per group). The backward
  pass of a strided convolution dilates its input with zeros (lhs_dilation): only
  1/dilation of each window meets real inputs, so only those count."""
  rhs = eqn.invars[1].aval.shape
  _, rhs_spec, _ = eqn.params['dimension_numbers']
  window = math.prod(rhs[i] for i in rhs_spec[2:])
  dilation = math.prod(eqn.params['lhs_dilation'] or (1,))
  return 2 * math.prod(eqn.outvars[0].aval.shape) * window * rhs[rhs_spec[1]] // dilation
