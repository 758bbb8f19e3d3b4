"""The model of an experiment, used functionally: its static half (`ModelDef`) and its
variables (parameters and model state, pure dicts), with their shapes and shardings.

Inference needs only this; training adds the optimizer (`jaxlab.train.state`).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct

from jaxlab import models
from jaxlab.finetune import lora
from jaxlab.parallel import sharding


@struct.dataclass
class Variables:
  """What a trained model is: parameters and non-parameter state (e.g. batch statistics)."""
  params: Any
  model_state: Any


@dataclasses.dataclass(frozen=True)
class ModelDef:
  """The static half of a model: what `nnx.merge` needs besides the arrays."""
  train_graph: Any
  eval_graph: Any
  accepts_rngs: bool

  def apply(self, params, model_state, args, kwargs, *, train, rngs=None):
    """Returns (outputs, new model_state): a pure function of its inputs."""
    model = nnx.merge(self.train_graph if train else self.eval_graph, params, model_state)
    if self.accepts_rngs and rngs is not None:
      kwargs = dict(kwargs, rngs=rngs)
    outputs = model(*args, **kwargs)
    return outputs, nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.Param)))


def compute_dtype(config):
  """The dtype of activations and matmuls; parameters always stay float32.

  'auto' is mixed precision where the matrix units are built for it (GPU, TPU) and
  float32 on CPUs, where bfloat16 measured slower.
  """
  name = config.compute_dtype
  if name == 'auto':
    name = 'float32' if jax.default_backend() == 'cpu' else 'bfloat16'
  return jnp.dtype(name)


def seed_keys(seed):
  root = jax.random.PRNGKey(seed)
  return dict(params=jax.random.fold_in(root, 0), data=jax.random.fold_in(root, 1),
              steps=jax.random.fold_in(root, 2))


def build(config, task, key):
  """The NNX model that config.model names, shaped for the task."""
  input_shape, num_outputs = task.model_signature()
  model = models.build(config.model, input_shape, num_outputs, nnx.Rngs(params=key, dropout=key),
                       compute_dtype(config), vocab_size=task.info.vocab_size)
  if lora.enabled(config):  # adapters on chosen layers (jaxlab.finetune.lora)
    model = lora.adapt(config, task, model, jax.random.fold_in(key, 1))
  return model


def model_def(config, task):
  """The ModelDef and the abstract parameter State (with logical axis metadata)."""
  definition, abstract_params, _ = _abstract_model(config, task)
  return definition, abstract_params


def _abstract_model(config, task):
  """(ModelDef, abstract parameter State, Variables of ShapeDtypeStructs), from one trace of
  `build` (tracing a large model takes seconds: trace it once)."""
  with nnx.use_eager_sharding(False):
    abstract_model = nnx.eval_shape(lambda: build(config, task, jax.random.PRNGKey(0)))
  train_graph, abstract_params, rest = nnx.split(abstract_model, nnx.Param, ...)
  abstract_model.eval()
  eval_graph, _, _ = nnx.split(abstract_model, nnx.Param, ...)
  shape = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=x.weak_type)
  shapes = jax.tree.map(shape, Variables(nnx.to_pure_dict(abstract_params),
                                         nnx.to_pure_dict(rest)))
  definition = ModelDef(train_graph, eval_graph, models.accepts_rngs(abstract_model))
  return definition, abstract_params, shapes


def init_variables(config, task):
  """Variables of a freshly initialised model (a pure function: compiled by the caller)."""
  with nnx.use_eager_sharding(False):
    model = build(config, task, seed_keys(config.seed)['params'])
  _, params, rest = nnx.split(model, nnx.Param, ...)
  return Variables(nnx.to_pure_dict(params), nnx.to_pure_dict(rest))


def variable_shardings(config, abstract_params, shapes, mesh):
  """Shardings of Variables: parameters by their logical axes and the config's rules;
  model state replicated."""
  rules = tuple(tuple(rule) for rule in config.sharding_rules)
  logical = sharding.logical_specs(abstract_params)
  params = sharding.param_shardings(logical, shapes.params, mesh, rules)
  replicated = sharding.replicated(mesh)
  return Variables(params, jax.tree.map(lambda _: replicated, shapes.model_state))


@dataclasses.dataclass(frozen=True)
class Layout:
  """Shapes and shardings of a tree of arrays (Variables or the whole train state)."""
  shapes: Any  # of jax.ShapeDtypeStruct
  shardings: Any  # of NamedSharding
  param_table: list  # rows (path, shape, PartitionSpec)

  def abstract(self):
    """ShapeDtypeStructs carrying the shardings: the target for a checkpoint restore."""
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        self.shapes, self.shardings)


def variables_layout(config, task, mesh):
  """(ModelDef, Layout of Variables), computed without allocating anything."""
  definition, abstract_params, shapes = _abstract_model(config, task)
  shardings = variable_shardings(config, abstract_params, shapes, mesh)
  return definition, Layout(shapes, shardings, sharding.table(shapes.params, shardings.params))
