"""Tracing a model stays linear in its size (jaxlab.models.tracing), and the train state's
layout comes from one trace of the model yet equals what its init returns."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from jax._src.interpreters import partial_eval

from jaxlab import models, tasks
from jaxlab.models import modeling
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.perf import dry_run
from jaxlab.train import optimizer, state as state_lib
from tests.conftest import load_config


def test_tracing_a_model_build_never_walks_the_trace_for_an_error_message(monkeypatch):
  walks = []
  original = partial_eval.DynamicJaxprTracer._origin_msg  # pylint: disable=protected-access
  monkeypatch.setattr(partial_eval.DynamicJaxprTracer, '_origin_msg',
                      lambda self: walks.append(1) or original(self))
  config = load_config('python_docs_lm')
  model = nnx.eval_shape(lambda: models.build(config.model, (16,), 64, nnx.Rngs(0), jnp.float32,
                                              vocab_size=64))
  assert nnx.state(model, nnx.Param)  # it was built, with its parameters
  assert walks == []


def test_a_tracer_still_has_no_sharding_attribute():
  seen = {}

  @jax.jit
  def probe(x):
    seen['hasattr'] = hasattr(x, 'sharding')
    with pytest.raises(AttributeError, match=r"'sharding' attribute is not available on "
                                             r'traced array with shape float32\[3\]'):
      x.sharding  # pylint: disable=pointless-statement
    return x

  probe(jnp.zeros(3))
  assert seen == {'hasattr': False}


@pytest.mark.parametrize('name,arg', [('cifar10_resnet18', 'smoke'), ('python_docs_lm', 'smoke'),
                                      ('finetune_digits', 'lora')])
def test_train_state_layout_equals_the_shapes_its_init_returns(name, arg):
  config = load_config(name, arg)
  info, _ = dry_run.shape_info(config.data)
  task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config))
  tx, _ = optimizer.create(config.optimizer, 10)
  _, layout = state_lib.layout(config, task, tx, mesh_lib.create(config.mesh))
  initialised = jax.eval_shape(state_lib._init(config, task, tx))  # pylint: disable=protected-access
  described = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), tree)
  assert jax.tree.structure(layout.shapes) == jax.tree.structure(initialised)
  assert described(layout.shapes) == described(initialised)
  if name == 'cifar10_resnet18':
    assert jax.tree.leaves(layout.shapes.model_state)  # its batch statistics
