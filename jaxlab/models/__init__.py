"""Models by name, or a user's own module by import path ('my_pkg.my_module:MyNet').

A model is a Flax NNX module built as `Model(input_shape, num_outputs, rngs=...,
**config.model)`, where the task gives input_shape and num_outputs (classes, or the
vocabulary of a language model); a factory that names a `vocab_size` parameter also gets
the data set's vocabulary (text classifiers embed tokens but output classes). Its
`__call__` takes what the task's `model_inputs` returns (an image batch; or tokens with
segment_ids= and positions=) and returns logits; it may accept a `rngs=` keyword for dropout.

This package re-exports the registry (registry.py); one file per model family.
"""

from jaxlab.models import registry as _registry
from jaxlab.models import tracing as _tracing
from jaxlab.models.registry import accepts_rngs, build, resolve

#: Model names accepted by ``--config.model.name`` -> factories, each called as
#: ``factory(input_shape, num_outputs, rngs=..., **other config.model fields)``.
REGISTRY = _registry.REGISTRY

_tracing.install()  # before any model is traced
