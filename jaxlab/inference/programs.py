"""The compiled inference functions of a (task, model, mesh): evaluation of a
device-resident set or of one batch, and prediction. Training adds its own
(`jaxlab.train.programs`) on top of these."""

import functools

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxlab.inference import forward
from jaxlab.parallel import sharding


class Programs:

  def __init__(self, task, model, mesh, variables_layout):
    self.task = task
    self.model = model  # modeling.ModelDef
    self.mesh = mesh
    self.variables_layout = variables_layout
    self.batch_sharding = sharding.batch_sharding(mesh)
    self._cache = {}

  def _compiled(self, key, make):
    if key not in self._cache:
      self._cache[key] = make()
    return self._cache[key]

  def eval_resident(self, eval_batch_size):
    """(variables, arrays) -> per-example outputs, for a set held whole on every device."""
    replicated = sharding.replicated(self.mesh)
    return self._compiled(('eval_resident', eval_batch_size), lambda: jax.jit(
        functools.partial(forward.eval_outputs_resident, eval_batch_size=eval_batch_size,
                          model=self.model, task=self.task, batch_sharding=self.batch_sharding),
        in_shardings=(self.variables_layout.shardings, replicated), out_shardings=replicated))

  def eval_batch(self):
    """(variables, batch split over the devices) -> per-example outputs (replicated)."""
    return self._compiled('eval_batch', lambda: jax.jit(
        functools.partial(forward.eval_outputs, model=self.model, task=self.task,
                          batch_sharding=self.batch_sharding),
        in_shardings=(self.variables_layout.shardings, self.batch_sharding),
        out_shardings=sharding.replicated(self.mesh)))

  def predict(self):
    """(variables, batch) -> the task's per-example prediction outputs (replicated)."""
    replicated = sharding.replicated(self.mesh)
    return self._compiled('predict', lambda: jax.jit(
        functools.partial(forward.predict_outputs, model=self.model, task=self.task,
                          batch_sharding=self.batch_sharding),
        in_shardings=(self.variables_layout.shardings, replicated), out_shardings=replicated))


def block_sharding(mesh):
  """Stacked batches [steps, batch, ...]: the batch axis split over the data axes."""
  return NamedSharding(mesh, P(None, sharding.BATCH_AXES))
