"""Layer helpers shared by the model families: initialisers with logical axis names.

Parameters carry logical axis names ('embed', 'mlp', ...); `jaxlab.parallel.sharding`
maps them onto mesh axes, so models never mention a mesh.
"""

import jax
from flax import nnx

INITIALIZERS = {
    'glorot_uniform': nnx.initializers.glorot_uniform,  # Keras's default
    'lecun_normal': nnx.initializers.lecun_normal,  # Flax's default
    'he_normal': nnx.initializers.he_normal,
}

# Rematerialisation: which intermediate values a backward pass keeps (the rest it
# recomputes). Used per block by the transformer and on the whole loss by the train step.
REMAT_POLICIES = {
    'none': None,  # keep everything
    'full': jax.checkpoint_policies.nothing_saveable,  # keep only the inputs
    # keep the weight matmuls' outputs; recompute the rest (e.g. attention scores)
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


# A name scope for ops a model runs only to help the compiler (e.g. a copy made to
# stop a slow fusion): model FLOPs (jaxlab.perf.flops, hence MFU) leave them out.
NOT_MODEL_FLOPS = 'not_model_flops'


def kernel_init(name, logical_axes):
  return nnx.with_partitioning(INITIALIZERS[name](), logical_axes)


def bias_init(logical_axis):
  return nnx.with_partitioning(nnx.initializers.zeros_init(), (logical_axis,))


def dense(in_features, out_features, axes, *, init, dtype, rngs):
  """A Dense layer whose kernel is sharded along `axes` = (in_axis, out_axis)."""
  return nnx.Linear(in_features, out_features, kernel_init=kernel_init(init, axes),
                    bias_init=bias_init(axes[1]), dtype=dtype, rngs=rngs)


def hidden_axes(index):
  """Alternates (embed, mlp) and (mlp, embed) so consecutive dense layers shard
  like Megatron's column- then row-parallel pair under tensor parallelism."""
  return ('embed', 'mlp') if index % 2 == 0 else ('mlp', 'embed')


def classifier(in_features, widths, num_classes, *, init, dtype, rngs):
  """Hidden dense layers and the logits head: (nnx.List of hidden layers, head)."""
  hidden = nnx.List()
  for index, width in enumerate(widths):
    hidden.append(dense(in_features, width, hidden_axes(index), init=init, dtype=dtype,
                        rngs=rngs))
    in_features = width
  head_in = hidden_axes(len(widths) - 1)[1] if widths else 'embed'
  return hidden, dense(in_features, num_classes, (head_in, 'classes'), init=init, dtype=dtype,
                       rngs=rngs)


def classify(hidden, head, dropout, x_BxD, rngs=None):
  """Logits from features: [Dense -> relu -> dropout]* -> Dense."""
  for layer in hidden:
    x_BxD = dropout(jax.nn.relu(layer(x_BxD)), rngs=rngs)
  return head(x_BxD)


def check_options(model, options, *, sizes=(), counts=(), rates=(), choices=None):
  """Raises UserError naming each malformed config.model option of `model`.

  sizes: tuples of positive layer widths; counts: positive integers; rates: numbers
  in [0, 1); choices: {option: allowed names}.
  """
  from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
  positive = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0
  problems = []
  for name in sizes:
    if name in options and not (isinstance(options[name], (tuple, list))
                                and all(map(positive, options[name]))):
      problems.append(f'{name}={options[name]!r} must be a tuple of positive integers')
  problems += [f'{name}={options[name]!r} must be a positive integer' for name in counts
               if name in options and not positive(options[name])]
  problems += [f'{name}={options[name]!r} must be a number in [0, 1)' for name in rates
               if name in options and not (isinstance(options[name], (int, float))
                                           and 0 <= options[name] < 1)]
  problems += [f'{name}={options[name]!r} must be one of {", ".join(map(repr, allowed))}'
               for name, allowed in (choices or {}).items()
               if name in options and options[name] not in allowed]
  reject(model, problems)


def reject(model, problems):
  """Raises UserError naming every problem with `model`'s config.model options, if any."""
  from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
  if problems:
    raise UserError(f'Invalid options for model {model!r}: {"; ".join(problems)}. Fix them with '
                    '--config.model.OPTION=VALUE or in the experiment file.')
