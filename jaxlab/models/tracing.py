"""Keeps tracing a model linear in its size.

Under JAX 0.10, `getattr(tracer, 'sharding', None)` raises an AttributeError whose message
names the tracer's origin, and building that message walks every equation traced so far
(jax-ml/jax#40041, not in a release yet). Flax NNX probes `value.sharding` on every Variable
assignment, once per random draw while a model is built, so tracing a model's init (under
`eval_shape` or `jit`) was quadratic in its size: a quarter of the docs' dry runs (41 of
166 s; 21 of 37 s for the 16-block Conformer). `install` makes the probe raise the same
AttributeError without the walk; everything else about tracers is unchanged.
"""

from jax._src import core


def _sharding_unavailable(tracer):
  # The public behaviour: AttributeError, so that hasattr() and getattr() work.
  raise AttributeError(f"The 'sharding' attribute is not available on {tracer._error_repr()}.")  # pylint: disable=protected-access


def install():
  """Replaces `Tracer.sharding` where it builds the origin message (idempotent)."""
  current = getattr(core.Tracer, 'sharding', None)
  if isinstance(current, property) and 'Tracer.sharding' in current.fget.__qualname__:
    core.Tracer.sharding = property(_sharding_unavailable)
