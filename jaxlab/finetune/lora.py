"""LoRA adapters (Hu et al. 2021) on chosen layers, through qwix (`config.lora`).

qwix's `LoraProvider` intercepts the matmuls and convolutions of the layers its rule
names and adds `x @ A @ B * alpha / rank` beside the frozen weight; it creates A and B
(`nnx.LoRAParam`, a kind of `nnx.Param`) on a first call of the model, so they sit in
the parameter tree next to their weight: 'dense/0/kernel_lora_a', '..._lora_b'. B starts
at zero, so the adapted model starts equal to the base one. `jaxlab.finetune.trainable`
freezes everything else.

Adapted layers: the nnx.Linear, nnx.Einsum and nnx.Conv modules whose '/'-joined path
`lora.modules` matches in full. Those layers call lax's and numpy's own ops rather than
jaxlab's CPU fast paths (jaxlab/models/dense.py, conv.py), which wrap the op in a
custom_vjp where qwix cannot see the weight (its convolution rule then fails, its dense
rule silently adds nothing). The numbers are the same.

`merged_variables` folds each adapter into its weight (W + A @ B * alpha / rank, in W's
layout) for `jaxlab export --merge_lora`.
"""

import re

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.errors import UserError

SUFFIXES = ('_lora_a', '_lora_b')
ADAPTABLE = (nnx.Linear, nnx.Einsum, nnx.Conv)


def enabled(config):
  return config.get('lora') is not None and int(config.lora.rank) > 0


def is_adapter(name):
  return name.endswith(SUFFIXES)


def scale(config):
  return float(config.lora.alpha) / int(config.lora.rank)


def _qwix():
  try:
    import qwix  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError('--config.lora.rank needs the qwix library: pip install "jaxlab[lora]" '
                    '(or pip install qwix).') from None
  return qwix


def _path(path):
  return '/'.join(map(str, path))


def adaptable_layers(model):
  return [_path(path) for path, module in nnx.iter_modules(model)
          if isinstance(module, ADAPTABLE) and path]


def _chosen_layers(model, config):
  pattern = config.lora.modules
  chosen = [name for name in adaptable_layers(model) if re.fullmatch(pattern, name)]
  if not chosen:
    raise UserError(f'--config.lora.modules={pattern!r} matches none of the layers LoRA can '
                    f'adapt (Linear, Einsum and Conv layers, by \'/\'-joined path): '
                    f'{", ".join(adaptable_layers(model)) or "none"}. Pass a regular '
                    "expression matching some of them, e.g. --config.lora.modules='dense/.*'.")
  if config.model.get('scan_layers'):
    raise UserError('--config.lora.rank needs --config.model.scan_layers=False: qwix creates '
                    'the adapters on the model\'s first call, which it cannot do inside the '
                    'nnx.scan that runs stacked layers.')
  return chosen


def _use_plain_ops(model, chosen):
  """The chosen layers call the ops qwix intercepts (see the module docstring)."""
  for path, module in nnx.iter_modules(model):
    if _path(path) not in chosen:
      continue
    if isinstance(module, nnx.Linear):
      module.dot_general = jax.lax.dot_general
    elif isinstance(module, nnx.Einsum):
      module.einsum_op = jnp.einsum
    elif isinstance(module, nnx.Conv):
      module.conv_general_dilated = jax.lax.conv_general_dilated


def _sample_inputs(task):
  """(args, kwargs) of the model for one example of zeros: what qwix traces it with."""
  batch = {name: jnp.zeros((1, *shape), dtype)
           for name, (shape, dtype) in task.batch_spec().items()}
  return task.model_inputs(batch, None, train=False)


def adapt(config, task, model, key):
  """`model` with LoRA adapters on the layers config.lora.modules names (a pure function
  of `key` for the adapters' initial values)."""
  qwix = _qwix()
  chosen = _chosen_layers(model, config)
  _use_plain_ops(model, chosen)
  rule = qwix.LoraRule(module_path='|'.join(f'(?:{re.escape(name)})' for name in chosen),
                       rank=int(config.lora.rank), alpha=float(config.lora.alpha))
  args, kwargs = _sample_inputs(task)
  model.eval()  # the tracing call must not update batch statistics
  adapted = qwix.apply_lora_to_model(model, qwix.LoraProvider([rule]), *args,
                                     rngs=nnx.Rngs(params=key), **kwargs)
  adapted.train()
  return adapted


def merged_variables(model_def, variables, config):
  """modeling.Variables of the plain model: each adapter folded into its weight."""
  model = nnx.merge(model_def.eval_graph, variables.params, variables.model_state)
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  factor = scale(config)
  for path, module in nnx.iter_modules(model):
    if not isinstance(module, ADAPTABLE):
      continue
    node = params
    for key in path:
      node = node[key]
    for name in [n for n in list(node) if isinstance(n, str) and n.endswith('_lora_a')]:
      weight = name[:-len('_lora_a')]
      a, b = node.pop(name), node.pop(weight + '_lora_b')
      node[weight] = node[weight] + _delta(module, weight, a, b).astype(node[weight].dtype) * factor
  return type(variables)(params, variables.model_state)


def _delta(module, weight, a, b):
  """A @ B laid out like the weight (qwix's shapes for each kind of layer)."""
  kernel = getattr(module, weight)[...]
  if isinstance(module, nnx.Einsum):  # 'lhs,A,B->out': A and B's letters are the weight's
    _, a_b = getattr(module, weight + '_lora_einsum_str').split('->')[0].split(',', 1)
    rhs = module.einsum_str.replace(' ', '').split('->')[0].split(',')[1]
    return jnp.einsum(f'{a_b}->{rhs}', a, b)
  if isinstance(module, nnx.Conv):  # A: (*kernel window, in, rank), B: (rank, out)
    return (a.reshape(-1, a.shape[-1]) @ b).reshape(kernel.shape)
  if isinstance(module, nnx.Linear) and kernel.ndim == 2:  # A: (in, rank), B: (rank, out)
    return a @ b
  raise UserError(f'Cannot merge the LoRA adapter of {type(module).__name__} weight '
                  f'{weight!r} of shape {kernel.shape}; export without --merge_lora.')
