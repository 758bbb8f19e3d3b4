"""Orbax checkpoints under <workdir>/checkpoints: the train state, the input's position
(`data`), metadata and digests.

Saves are atomic (Orbax writes to a temporary folder and renames it), so a kill at
any moment leaves the previous checkpoints intact. Damaged bytes are another matter:
each save also writes a digest of every array and of the metadata (the `integrity`
item), and every restore recomputes and compares them, so a damaged or unreadable
step raises `DamagedCheckpoint` instead of loading garbage. `set_aside` moves such a
step out of the checkpoint folder (never deleting it). Kept: the last `keep` and the
best by `best_metric`. Restores take an abstract target carrying the current
shardings, so a checkpoint moves between device counts and meshes. Inference
restores only the parameters and model state (`restore_variables`, an Orbax partial
restore): no optimizer state is read. Reading a checkpoint runs no code from it:
arrays go through TensorStore and the rest is JSON. s3:// and az:// workdirs are saved
in a local staging folder and uploaded step by step (jaxlab/checkpoint/staging.py);
reading a step downloads it first (`_fetch`).
"""

import dataclasses
import posixpath
import time

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxlab import storage
from jaxlab.checkpoint import staging as checkpoint_staging
from jaxlab.checkpoint import digest, failed_reads
from jaxlab.workdir import files as workdir_files
from jaxlab.errors import UserError
from jaxlab.parallel import multihost

DIRECTORY = workdir_files.CHECKPOINTS
DAMAGED_DIRECTORY = workdir_files.CHECKPOINTS_DAMAGED  # damaged steps, set aside


class DamagedCheckpoint(Exception):
  """A saved step that cannot be read, or whose contents do not match their digests."""

  def __init__(self, step, reason):
    super().__init__(f'the checkpoint at step {step} is damaged: {reason}')
    self.step = step
    self.reason = reason


class Checkpointer:

  def __init__(self, workdir, *, keep=2, best_metric='eval/accuracy', best_mode='max',
               async_save=True, read_only=False, save_concurrent_gb=None):
    """save_concurrent_gb: the most GB of arrays Orbax copies to the host and writes at
    once, uncompressed (None: its defaults, unbounded and compressed); writing buffers a
    copy, so an import of a large model on a CPU host bounds it."""
    self.workdir = workdir
    self.best_metric = best_metric
    failed_reads.ignore_reads_completing_after_failure()
    policies = [checkpoint_managers.LatestN(keep)]
    if best_metric:
      policies.append(checkpoint_managers.BestN(
          get_metric_fn=lambda metrics: metrics[best_metric], reverse=best_mode == 'min', n=1,
          keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
        enable_async_checkpointing=async_save, cleanup_tmp_directories=not read_only,
        read_only=read_only, create=not read_only)
    # Read-only (inference) managers read the state as a plain tree, which allows a
    # partial restore; the bytes are the same as StandardCheckpointHandler's.
    # A bounded save (an import filling a CPU host's memory) also bounds the device-to-host
    # copies, which only the PyTree handler can (its arguments are the PyTree ones), and
    # writes uncompressed: zstd's buffers were a second copy of the model in flight (1.7x
    # its size at peak for a 1B import, 1.3x without), and float weights barely compress.
    if save_concurrent_gb:
      state_handler = ocp.PyTreeCheckpointHandler(
          save_concurrent_gb=save_concurrent_gb,
          save_device_host_concurrent_gb=save_concurrent_gb, use_compression=False)
      self._save_args = ocp.args.PyTreeSave
    elif read_only:
      state_handler = ocp.PyTreeCheckpointHandler()
      self._save_args = ocp.args.PyTreeSave
    else:
      state_handler = ocp.StandardCheckpointHandler()
      self._save_args = ocp.args.StandardSave
    directory = posixpath.join(workdir, DIRECTORY)
    self._staging = checkpoint_staging.StagedCheckpoints(directory, read_only=read_only) \
        if storage.is_staged(workdir) else None
    self._manager = ocp.CheckpointManager(self._staging.directory if self._staging else directory,
                                          options=options,
                                          item_handlers=dict(
                                              state=state_handler,
                                              meta=ocp.JsonCheckpointHandler(),
                                              data=ocp.JsonCheckpointHandler(),
                                              integrity=ocp.JsonCheckpointHandler()))

  def latest_step(self):
    return self._manager.latest_step()

  def best_step(self):
    return self._manager.best_step() if self.best_metric else None

  def all_steps(self):
    return list(self._manager.all_steps())

  def save(self, step, state, meta, data, metrics=None, state_digests=None):
    """Starts a save (asynchronous where enabled); `data` is the input's position (JSON),
    `metrics` rank the step for 'best'; `state_digests`: `digest.tree_digests(state)`
    where the caller computed it already (e.g. slice by slice, to save memory)."""
    if metrics and self.best_metric and self.best_metric not in metrics:
      metrics = None
    state_digests = state_digests or digest.tree_digests(state)
    integrity = dict(state=state_digests, meta=digest.json_digest(meta),
                     data=digest.json_digest(data))
    if self._staging:  # one upload in flight, as Orbax has one save in flight
      self._manager.wait_until_finished()  # raises if the previous save failed
      self._staging.wait()
    self._manager.save(int(step), args=ocp.args.Composite(
        state=self._save_args(state), meta=ocp.args.JsonSave(meta),
        data=ocp.args.JsonSave(data), integrity=ocp.args.JsonSave(integrity)),
        metrics=metrics, force=True)
    if self._staging:
      self._staging.upload(step)

  def restore(self, step, target_layout):
    """(state, meta, data) at `step`, each array placed with the target's sharding and
    checked against the digests saved with it; raises DamagedCheckpoint otherwise."""
    items = dict(state=ocp.args.StandardRestore(target_layout.abstract()))
    if self._has_item(step, 'data'):  # checkpoints written before inputs had a position
      items['data'] = ocp.args.JsonRestore()
    restored = self._restore_verified(step, target_layout.shapes.params, items)
    return restored.state, restored.meta, restored.get('data')

  def restore_variables(self, step, variables_layout):
    """(Variables, meta) at `step`: parameters and model state only (an Orbax partial
    restore; the optimizer state is never read), verified like `restore`."""
    from jaxlab.models import modeling
    abstract = variables_layout.abstract()
    target = dict(params=abstract.params, model_state=abstract.model_state)
    restore_args = jax.tree.map(lambda leaf: ocp.ArrayRestoreArgs(sharding=leaf.sharding), target)
    restored = self._restore_verified(step, abstract.params, dict(state=ocp.args.PyTreeRestore(
        item=target, restore_args=restore_args, partial_restore=True)))
    state = restored.state
    return modeling.Variables(state['params'], state.get('model_state') or {}), restored.meta

  def saved_shapes(self, step):
    """{'params/dense/0/kernel': shape, 'model_state/...': shape} of a saved step."""
    self._fetch(step)
    try:
      saved = self._manager.item_metadata(step).state
    except Exception as error:  # pylint: disable=broad-except
      raise DamagedCheckpoint(step, _first_line(error)) from None
    saved = saved.tree if hasattr(saved, 'tree') else saved
    return _shapes_by_path({name: saved[name] for name in ('params', 'model_state')
                            if name in saved})

  def restore_subset(self, step, target):
    """Some of the saved arrays: `target` is {'params': ..., 'model_state': ...} holding
    any subset of the saved leaves as ShapeDtypeStructs with shardings (an Orbax partial
    restore), verified against their digests."""
    restore_args = jax.tree.map(lambda leaf: ocp.ArrayRestoreArgs(sharding=leaf.sharding), target)
    restored = self._restore_verified(step, None, dict(state=ocp.args.PyTreeRestore(
        item=target, restore_args=restore_args, partial_restore=True)), subset=True)
    return restored.state

  def _fetch(self, step):
    if self._staging:
      self._staging.fetch(step)

  def _has_item(self, step, name):
    try:
      self._fetch(step)
      return self._manager.item_metadata(step).get(name) is not None
    except Exception:  # pylint: disable=broad-except
      return True  # let the restore itself report the damage

  def _restore_verified(self, step, target_params, items, subset=False):
    failure = None
    try:
      self._fetch(step)
      if target_params is not None:
        self._check_shapes(step, target_params)
      restored = self._manager.restore(step, args=ocp.args.Composite(
          **items, meta=ocp.args.JsonRestore(), integrity=ocp.args.JsonRestore()))
    except UserError:
      raise
    except ValueError as error:
      if 'do not match' in str(error) and 'Requested byte range' not in str(error):
        raise _optimizer_mismatch(step) from None
      failure = failed_reads.first_line(error)
    except Exception as error:  # pylint: disable=broad-except
      failure = failed_reads.first_line(error)
    if failure:
      failed_reads.collect_abandoned_reads()
    # Every process must agree before the digests' collective computation, or a
    # process whose read failed would leave the others waiting in it.
    if not multihost.all_agree(failure is None):
      raise DamagedCheckpoint(step, failure or 'another process could not read it')
    _verify(step, restored, subset)
    return restored

  def restore_meta(self, step):
    try:
      self._fetch(step)
      meta = self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore())).meta
    except Exception as error:  # pylint: disable=broad-except
      raise DamagedCheckpoint(step, failed_reads.first_line(error)) from None
    if not isinstance(meta, dict) or 'step' not in meta:
      raise DamagedCheckpoint(step, 'its metadata is incomplete')
    return meta

  def set_aside(self, step):
    """Moves a damaged step to <workdir>/checkpoints_damaged/ (kept for inspection)
    and returns where it went; the manager then no longer lists it."""
    source = posixpath.join(self.workdir, DIRECTORY, str(step))
    target = posixpath.join(self.workdir, DAMAGED_DIRECTORY,
                            f'{step}-{time.strftime("%Y%m%d-%H%M%S")}')
    if self._staging:
      self._staging.forget(step)
    if jax.process_index() == 0:
      storage.move_tree(source, target)
    multihost.barrier('jaxlab_checkpoint_set_aside')
    self._manager.reload()
    if step in self.all_steps():
      raise UserError(f'Could not move the damaged checkpoint {source} aside to {target}. Move '
                      'or delete it by hand, then rerun.')
    return target

  def wait(self):
    self._manager.wait_until_finished()
    if self._staging:
      self._staging.wait()

  def close(self):
    self._manager.close()
    if self._staging:
      self._staging.close()

  def _check_shapes(self, step, target_params):
    """A checkpoint of another model is an error naming the parameters that differ."""
    saved = self._manager.item_metadata(step).state  # raises if the step is damaged
    saved = saved.tree if hasattr(saved, 'tree') else saved
    saved_params = _shapes_by_path(saved['params'])
    target_params = _shapes_by_path(target_params)
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


def _verify(step, restored, subset=False):
  """Raises DamagedCheckpoint unless the restored state and meta match their digests
  (`subset`: the restored arrays only)."""
  integrity = restored.integrity
  if not isinstance(integrity, dict) or not isinstance(integrity.get('state'), dict):
    raise DamagedCheckpoint(step, 'its digests are missing or unreadable')
  actual = digest.tree_digests(restored.state)
  expected = {path: value for path, value in integrity['state'].items()
              if path.split('/', 1)[0] in _top_level(restored.state)  # a partial restore
              and (not subset or path in actual)}
  differing = digest.mismatches(expected, actual)
  if differing:
    listed = ', '.join(differing[:5]) + (' ...' if len(differing) > 5 else '')
    raise DamagedCheckpoint(step, f'{len(differing)} array(s) differ from their saved '
                            f'digests ({listed})')
  if integrity.get('meta') != digest.json_digest(restored.meta):
    raise DamagedCheckpoint(step, 'its metadata differs from its saved digest')
  data = restored.get('data')
  if data is not None and integrity.get('data') != digest.json_digest(data):
    raise DamagedCheckpoint(step, 'its input position differs from its saved digest')


def _top_level(tree):
  """The names of a restored state's top-level fields ('params', 'opt_state', ...)."""
  if isinstance(tree, dict):
    return set(tree)
  return {field.name for field in dataclasses.fields(tree)}


def _optimizer_mismatch(step):
  return UserError(
      f'The checkpoint at step {step} has the same parameters but a different optimizer '
      'state than the configured optimizer (was --config.optimizer.name or gradient '
      'clipping/weight decay changed?). Resume with the optimizer settings of the '
      'workdir\'s config.json, or start a fresh run in a new --workdir.')


def _shapes_by_path(tree):
  """{'dense/0/kernel': (256, 128), ...} for a tree of arrays or array metadata."""
  leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): tuple(leaf.shape)
          for path, leaf in leaves}
