"""The int8 model of a float one, through qwix: the rules per mode, the quantized NNX
model, and its variables' layout, which `jaxlab.inference.trained_run.load` rebuilds from
a quantized workdir's quantization.json (see jaxlab.inference.quantize for the modes)."""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.errors import UserError
from jaxlab.models import modeling
from jaxlab.parallel import sharding

MODES = ('w8', 'w8a8')


def import_qwix():
  try:
    import qwix  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError('jaxlab quantize needs the qwix library: pip install "jaxlab[quantize]" '
                    '(or pip install qwix).') from None
  return qwix


def rules(mode):
  """qwix rules: convolutions quantize both sides (qwix's requirement); dense layers
  quantize activations only in w8a8."""
  qwix = import_qwix()
  static = mode == 'w8a8'
  conv = qwix.QtRule(module_path='.*', op_names=('conv_general_dilated',),
                     weight_qtype=jnp.int8, act_qtype=jnp.int8, act_static_scale=static)
  rest = qwix.QtRule(module_path='.*', weight_qtype=jnp.int8,
                     act_qtype=jnp.int8 if static else None,
                     act_static_scale=True if static else None)
  return [conv, rest]


def _with_plain_convolutions(model):
  """jaxlab's convolutions wrap lax's in a custom_vjp (a training-speed fix for CPUs),
  inside which qwix cannot update its statistics; inference needs no gradient, so the
  quantized model calls lax's convolution directly (the same numbers)."""
  for _, module in nnx.iter_modules(model):
    if isinstance(module, nnx.Conv):
      module.conv_general_dilated = jax.lax.conv_general_dilated
  return model


def _sample_inputs(task, batch_size=1):
  """(args, kwargs) of the model for a batch of zeros: what qwix traces the model with."""
  batch = {name: jnp.zeros((batch_size, *shape), dtype)
           for name, (shape, dtype) in task.batch_spec().items()}
  return task.model_inputs(batch, None, train=False)


def quantized_model(model, task, mode, calibration=()):
  """The PTQ model of a float NNX model (eval mode); `calibration` holds the (args,
  kwargs) of the batches that set w8a8's activation scales."""
  qwix = import_qwix()
  model = _with_plain_convolutions(model)
  args, kwargs = calibration[0] if calibration else _sample_inputs(task)
  if mode == 'w8a8' and calibration:
    # Eager calls: qwix updates its statistics inside a custom_vjp, which a jit trace
    # would reject; a few batches of a small model take well under a second.
    collecting = qwix.quantize_model(model, qwix.QtProvider(rules(mode)), *args, **kwargs)
    for batch_args, batch_kwargs in calibration:
      collecting(*batch_args, **batch_kwargs)
    model = collecting
  return qwix.quantize_model(model, qwix.PtqProvider(rules(mode)), *args, **kwargs)


def variables_layout(config, task, mesh, mode):
  """(ModelDef, Layout) of a quantized model, as modeling.variables_layout gives for the
  float one; the variables are replicated (inference is data-parallel)."""
  def build():
    with nnx.use_eager_sharding(False):
      model = modeling.build(config, task, jax.random.PRNGKey(0))
    model.eval()
    return quantized_model(model, task, mode)
  abstract = nnx.eval_shape(build)
  graph, params, rest = nnx.split(abstract, nnx.Param, ...)
  shapes = modeling.Variables(nnx.to_pure_dict(params), nnx.to_pure_dict(rest))
  replicated = sharding.replicated(mesh)
  shardings = jax.tree.map(lambda _: replicated, shapes)
  definition = modeling.ModelDef(graph, graph, accepts_rngs=False)
  return definition, modeling.Layout(shapes, shardings,
                                     sharding.table(shapes.params, shardings.params))
