"""Models by name, or a user's own module by import path ('my_pkg.my_module:MyNet').

A model is a Flax NNX module built as `Model(input_shape, num_classes, rngs=...,
**config.model)` whose `__call__(x_BxHxWxC)` returns logits; it may accept a
`rngs=` keyword for dropout.
"""

import importlib
import inspect

from flax import nnx

from jaxlab.errors import UserError
from jaxlab.models import cnn, mlp

REGISTRY = {
    'mlp': mlp.create,
    'cnn': cnn.create,
}


def resolve(name):
  """The factory for a registered name or a 'package.module:Class' path."""
  if name in REGISTRY:
    return REGISTRY[name]
  if ':' not in name:
    raise UserError(
        f'Unknown model {name!r} in --config.model.name. Registered models: '
        f'{", ".join(sorted(REGISTRY))}; or give your own module as '
        '"package.module:ClassName" (importable from the current directory or PYTHONPATH).')
  module_name, attribute = name.split(':', 1)
  try:
    module = importlib.import_module(module_name)
  except ImportError as error:
    raise UserError(f'Cannot import model module {module_name!r} from --config.model.name='
                    f'{name}: {error}. Check the spelling and that it is on PYTHONPATH.') from None
  if not hasattr(module, attribute):
    raise UserError(f'Module {module_name!r} has no {attribute!r} (from --config.model.name='
                    f'{name}). Names it defines: {", ".join(_public_names(module))}.')
  return getattr(module, attribute)


def build(model_config, input_shape, num_classes, rngs, dtype):
  """Builds the model that `model_config.name` names, with the rest as keyword arguments."""
  factory = resolve(model_config.name)
  kwargs = {k: _plain(v) for k, v in model_config.items() if k != 'name'}
  if _accepts(factory, 'dtype'):
    kwargs['dtype'] = dtype
  try:
    # jaxlab places parameters itself (jaxlab.parallel.sharding), from their logical axes.
    with nnx.use_eager_sharding(False):
      return factory(tuple(input_shape), num_classes, rngs=rngs, **kwargs)
  except TypeError as error:
    raise UserError(f'Model {model_config.name!r} rejected its config: {error}. '
                    'Every field of config.model except `name` is passed to it as a '
                    'keyword argument; rename or remove the field.') from None


def accepts_rngs(model):
  return _accepts(type(model).__call__, 'rngs')


def _accepts(function, name):
  if inspect.isclass(function):
    function = function.__init__
  try:
    parameters = inspect.signature(function).parameters
  except (TypeError, ValueError):
    return False
  return name in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())


def _plain(value):
  return tuple(value) if isinstance(value, list) else value


def _public_names(module):
  return sorted(n for n in vars(module) if not n.startswith('_'))[:20]
