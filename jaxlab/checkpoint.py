"""Orbax checkpoints under <workdir>/checkpoints: the train state plus metadata.

Saves are atomic (Orbax writes to a temporary folder and renames it), so a kill at
any moment leaves the previous checkpoints intact. Kept: the last `keep` and the
best by `best_metric`. Restores take an abstract target carrying the current
shardings, so a checkpoint moves between device counts and meshes.
"""

import posixpath

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxlab.errors import UserError

DIRECTORY = 'checkpoints'


class Checkpointer:

  def __init__(self, workdir, *, keep=2, best_metric='eval/accuracy', best_mode='max',
               async_save=True, read_only=False):
    self.best_metric = best_metric
    policies = [checkpoint_managers.LatestN(keep)]
    if best_metric:
      policies.append(checkpoint_managers.BestN(
          get_metric_fn=lambda metrics: metrics[best_metric], reverse=best_mode == 'min', n=1,
          keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
        enable_async_checkpointing=async_save, cleanup_tmp_directories=not read_only,
        read_only=read_only, create=not read_only)
    self._manager = ocp.CheckpointManager(posixpath.join(workdir, DIRECTORY), options=options,
                                          item_handlers=dict(
                                              state=ocp.StandardCheckpointHandler(),
                                              meta=ocp.JsonCheckpointHandler()))

  def latest_step(self):
    return self._manager.latest_step()

  def best_step(self):
    return self._manager.best_step() if self.best_metric else None

  def all_steps(self):
    return list(self._manager.all_steps())

  def save(self, step, state, meta, metrics=None):
    """Starts a save (asynchronous where enabled); `metrics` rank it for 'best'."""
    if metrics and self.best_metric and self.best_metric not in metrics:
      metrics = None
    self._manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        metrics=metrics, force=True)

  def restore(self, step, target_layout):
    """(state, meta) at `step`, each array placed with the target's sharding."""
    self._check_shapes(step, target_layout.shapes)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target_layout.abstract()),
          meta=ocp.args.JsonRestore()))
    except ValueError as error:
      if 'do not match' not in str(error):
        raise
      raise UserError(
          f'The checkpoint at step {step} has the same parameters but a different optimizer '
          'state than the configured optimizer (was --config.optimizer.name or gradient '
          'clipping/weight decay changed?). Resume with the optimizer settings of the '
          'workdir\'s config.json, or start a fresh run in a new --workdir.') from None
    return restored.state, restored.meta

  def restore_meta(self, step):
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.close()

  def _check_shapes(self, step, target_shapes):
    """A checkpoint of another model is an error naming the parameters that differ."""
    saved = self._manager.item_metadata(step).state.tree
    saved_params = _shapes_by_path(saved['params'])
    target_params = _shapes_by_path(target_shapes.params)
    problems = [f'{path}: checkpoint {saved_params.get(path)} vs model {shape}'
                for path, shape in target_params.items() if saved_params.get(path) != shape]
    problems += [f'{path}: in checkpoint {shape}, not in model'
                 for path, shape in saved_params.items() if path not in target_params]
    if problems:
      listed = '; '.join(problems[:10]) + (' ...' if len(problems) > 10 else '')
      raise UserError(
          f'The checkpoint at step {step} does not match the configured model: {listed}. '
          'Use the config the checkpoint was trained with (the workdir\'s config.json), '
          'or start a fresh run in a new --workdir.')


def _shapes_by_path(tree):
  """{'dense/0/kernel': (256, 128), ...} for a tree of arrays or array metadata."""
  leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): tuple(leaf.shape)
          for path, leaf in leaves}
