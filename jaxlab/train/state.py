"""The train state and its sharded initialisation (shapes first, then init in place)."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from jaxlab import models
from jaxlab.parallel import sharding


@struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken
  params: Any  # pure dict of arrays
  opt_state: Any
  model_state: Any  # non-parameter variables (e.g. batch statistics), pure dict
  rng: jax.Array  # uint32[2]; the key for step t is fold_in(rng, t)


@dataclasses.dataclass(frozen=True)
class ModelDef:
  """The static half of a model: what `nnx.merge` needs besides the arrays."""
  train_graph: Any
  eval_graph: Any
  accepts_rngs: bool

  def apply(self, params, model_state, x, *, train, rngs=None):
    """Returns (logits, new model_state): a pure function of its inputs."""
    model = nnx.merge(self.train_graph if train else self.eval_graph, params, model_state)
    logits = model(x, rngs=rngs) if (self.accepts_rngs and rngs is not None) else model(x)
    return logits, nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.Param)))


@dataclasses.dataclass(frozen=True)
class Layout:
  """Shapes and shardings of every part of the train state."""
  shapes: TrainState  # of jax.ShapeDtypeStruct
  shardings: TrainState  # of NamedSharding
  param_table: list  # rows (path, shape, PartitionSpec)

  def abstract(self):
    """ShapeDtypeStructs carrying the shardings: the target for a checkpoint restore."""
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        self.shapes, self.shardings)


def seed_keys(seed):
  root = jax.random.PRNGKey(seed)
  return dict(params=jax.random.fold_in(root, 0), data=jax.random.fold_in(root, 1),
              steps=jax.random.fold_in(root, 2))


def compute_dtype(config):
  """The dtype of activations and matmuls; parameters always stay float32.

  'auto' is mixed precision where the matrix units are built for it (GPU, TPU) and
  float32 on CPUs, where bfloat16 measured slower.
  """
  name = config.get('compute_dtype', 'auto')
  if name == 'auto':
    name = 'float32' if jax.default_backend() == 'cpu' else 'bfloat16'
  return jnp.dtype(name)


def _build(config, info, key):
  dtype = compute_dtype(config)
  return models.build(config.model, info.image_shape, info.num_classes,
                      nnx.Rngs(params=key, dropout=key), dtype)


def model_def(config, info):
  """The ModelDef and the abstract parameter State (with logical axis metadata)."""
  with nnx.use_eager_sharding(False):
    abstract_model = nnx.eval_shape(lambda: _build(config, info, jax.random.PRNGKey(0)))
  train_graph, abstract_params, _ = nnx.split(abstract_model, nnx.Param, ...)
  abstract_model.eval()
  eval_graph, _, _ = nnx.split(abstract_model, nnx.Param, ...)
  return ModelDef(train_graph, eval_graph, models.accepts_rngs(abstract_model)), abstract_params


def _init(config, info, tx):
  """A pure function creating the whole TrainState; compiled with output shardings."""
  def init():
    keys = seed_keys(config.seed)
    with nnx.use_eager_sharding(False):
      model = _build(config, info, keys['params'])
    _, params, rest = nnx.split(model, nnx.Param, ...)
    params = nnx.to_pure_dict(params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      model_state=nnx.to_pure_dict(rest), rng=keys['steps'])
  return init


def layout(config, info, tx, mesh):
  """Shapes and shardings of the state, computed without allocating it."""
  _, abstract_params = model_def(config, info)
  shapes = jax.eval_shape(_init(config, info, tx))
  rules = tuple(tuple(rule) for rule in config.get('sharding_rules', sharding.DEFAULT_RULES))
  logical = sharding.logical_specs(abstract_params)
  param_shardings = sharding.param_shardings(logical, shapes.params, mesh, rules)
  replicated = sharding.replicated(mesh)
  opt_shardings = optax.tree_map_params(
      tx, lambda _, s: s, shapes.opt_state, param_shardings,
      transform_non_params=lambda _: replicated, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
  shardings = TrainState(step=replicated, params=param_shardings, opt_state=opt_shardings,
                         model_state=jax.tree.map(lambda _: replicated, shapes.model_state),
                         rng=replicated)
  return Layout(shapes, shardings, sharding.table(shapes.params, param_shardings))


def create(config, info, tx, state_layout):
  """The initial TrainState, each array created directly with its sharding."""
  init = jax.jit(_init(config, info, tx), out_shardings=state_layout.shardings)
  if jax.default_backend() != 'cpu':
    return init()
  # It runs once, so compile it for compile time: at LLVM's -O1 XLA:CPU builds the random
  # initialisers 3-4x faster than at its default -O2 (the MLP's: 2 s -> 0.5 s on 2 cores).
  return init.lower().compile(compiler_options={'xla_backend_optimization_level': 1})()
