"""Layer helpers shared by the model families: initialisers with logical axis names.

Parameters carry logical axis names ('embed', 'mlp', ...); `jaxlab.parallel.sharding`
maps them onto mesh axes, so models never mention a mesh.
"""

from flax import nnx

INITIALIZERS = {
    'glorot_uniform': nnx.initializers.glorot_uniform,  # Keras's default
    'lecun_normal': nnx.initializers.lecun_normal,  # Flax's default
    'he_normal': nnx.initializers.he_normal,
}


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
