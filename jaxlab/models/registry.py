"""The model registry: names -> factories, or a user's own 'package.module:Class', and
building the model a config names (see jaxlab.models for what a model is)."""

import inspect

from flax import nnx

from jaxlab.config import registry
from jaxlab.errors import UserError
from jaxlab.models import cnn, fcos, mlp, resnet, rnn, speech, tabular, text_encoder, transformer, vit
from jaxlab.models import speech_ctc
from jaxlab.models import transformer_seq2seq

#: Model names accepted by ``--config.model.name`` -> factories, each called as
#: ``factory(input_shape, num_outputs, rngs=..., **other config.model fields)``.
REGISTRY = {
    'mlp': mlp.create,
    'cnn': cnn.create,
    'transformer_lm': transformer.create,
    'speech_cnn': speech.create_cnn,
    'speech_gru': speech.create_gru,
    'resnet18': resnet.factory(18),
    'resnet34': resnet.factory(34),
    'resnet50': resnet.factory(50),
    'vit': vit.create,
    'lstm': rnn.create_for('lstm'),
    'gru': rnn.create_for('gru'),
    'transformer_encoder': text_encoder.create,
    'tabular_mlp': tabular.create,
    'fcos': fcos.create,  # detection (task.name=detection): ResNet + feature pyramid + FCOS head
    'speech_ctc': speech_ctc.create,  # speech recognition: log-mel, 4x conv subsampling, Conformer/Transformer/GRU, CTC head
    'transformer_seq2seq': transformer_seq2seq.create,  # seq2seq: encoder-decoder Transformer
}


def resolve(name):
  """The factory for a registered name or a 'package.module:Class' path.

  A path is imported as given (the module must be importable from the current directory
  or PYTHONPATH); an unknown name, a failed import or a missing attribute raises
  UserError naming the registered models or what the module defines.
  """
  return registry.resolve(REGISTRY, name, 'model', '--config.model.name')


def build(model_config, input_shape, num_classes, rngs, dtype, vocab_size=0):
  """Builds the model that `model_config.name` names, with the rest as keyword arguments.

  `input_shape` (one example's, without the batch axis) and `num_classes` come from the
  task's `model_signature()`. `dtype` (the compute dtype) is passed when the factory
  accepts it, and `vocab_size` when it names that parameter. A factory that rejects a
  field raises UserError naming it.
  """
  factory = resolve(model_config.name)
  kwargs = {k: _plain(v) for k, v in model_config.items() if k != 'name'}
  if _accepts(factory, 'dtype'):
    kwargs['dtype'] = dtype
  if _names(factory, 'vocab_size'):
    kwargs['vocab_size'] = vocab_size
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


def _names(function, name):
  """Whether `function` declares parameter `name` itself (not through **kwargs)."""
  try:
    return name in inspect.signature(function).parameters
  except (TypeError, ValueError):
    return False


def _plain(value):
  return tuple(value) if isinstance(value, list) else value
