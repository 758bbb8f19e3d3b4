"""`init.from_workdir`: a new run starts from another run's parameters and model state (e.g.
batch statistics) at step 0, with a fresh optimizer.

The source is a jaxlab workdir (one that `jaxlab train` or `jaxlab import` wrote);
`init.checkpoint` picks its step (best, latest or a number). Every array of the new
model must be in the source with the same shape, except those that `init.reset`
matches (regexes over '/'-joined paths, e.g. 'head/.*') and LoRA's adapters, which keep
this model's fresh initial values. Source arrays the new model lacks are refused unless
`init.reset` matches them too (then they are left behind). The arrays are read with an
Orbax partial restore whose target carries this run's shardings, so a source saved on
any number of devices loads onto this mesh, each device reading its own shards.
"""

import dataclasses

from jaxlab.checkpoint import manager as checkpoint_lib
from jaxlab import config as config_lib
from jaxlab import storage
from jaxlab.errors import UserError
from jaxlab.finetune import lora, patterns

PARTS = ('params', 'model_state')
BACKBONE = 'backbone'  # where a detector keeps its ResNet (model.backbone_init)
CLASSIFIER_HEAD = ('head/.*',)  # what a classifier has and a backbone lacks


@dataclasses.dataclass(frozen=True)
class Plan:
  """Which arrays (by 'params/...' or 'model_state/...' path) come from the source."""
  restored: tuple
  fresh: tuple
  left_behind: tuple


def source_workdir(config):
  return config.init.from_workdir


def backbone_workdir(config):
  """model.backbone_init: a classifier's workdir whose ResNet starts this model's backbone."""
  return config.model.get('backbone_init', '') or ''


def plan(saved, target, reset):
  """The Plan for source shapes `saved` and this model's `target` ({path: shape}), or a
  UserError naming the first arrays that differ."""
  def is_reset(path):
    return patterns.matches(path.split('/', 1)[1], reset)

  restored, fresh, mismatched = [], [], []
  for path, shape in target.items():
    if is_reset(path) or (path not in saved and lora.is_adapter(path)):
      fresh.append(path)
    elif saved.get(path) == shape:
      restored.append(path)
    else:
      mismatched.append((path, saved.get(path), shape))
  left_behind = [path for path in saved if path not in target]
  mismatched += [(path, saved[path], None) for path in left_behind if not is_reset(path)]
  if mismatched:
    raise _mismatch_error(mismatched)
  return Plan(tuple(restored), tuple(fresh), tuple(left_behind))


def _mismatch_error(mismatched):
  shown = lambda shape: 'absent' if shape is None else str(tuple(shape))
  listed = '; '.join(f'{path}: source {shown(a)}, this model {shown(b)}'
                     for path, a, b in mismatched[:5])
  more = f' (and {len(mismatched) - 5} more)' if len(mismatched) > 5 else ''
  first = mismatched[0][0].split('/')[1:]
  suggestion = '/'.join(first[:-1] or first) + '/.*'
  return UserError(
      f'--config.init.from_workdir: {len(mismatched)} array(s) of the source do not fit this model: '
      f'{listed}{more}. Start them fresh from this model\'s initialisation with '
      f"--config.init.reset='{suggestion}' (regular expressions over '/'-joined parameter "
      'paths, comma-separated), or configure the model as the source was (its config.json).')


def _subset(tree, keep, prefix=''):
  """The nested dict `tree` with only the leaves whose path is in `keep` (None if none)."""
  if isinstance(tree, dict):
    kept = {key: sub for key, value in tree.items()
            if (sub := _subset(value, keep, f'{prefix}{key}/')) is not None}
    return kept or None
  return tree if prefix[:-1] in keep else None


def _resolve_step(checkpointer, which, workdir):
  from jaxlab.inference import trained_run as inference  # pylint: disable=g-import-not-at-top
  try:
    return inference.resolve_step(checkpointer, which, workdir)
  except UserError as error:
    raise UserError(f'--config.init.from_workdir={workdir}: {error} (Pick the step with '
                    '--config.init.checkpoint=best|latest|STEP.)') from None


def load(config, state, layout, under=''):
  """(state with the source's arrays in place of this run's fresh ones, Plan, step).
  `under` ('backbone'): the source fills only that subtree of this model (its classifier
  head left behind), from model.backbone_init."""
  workdir = storage.absolute(backbone_workdir(config) if under else source_workdir(config))
  try:
    source_config = config_lib.load_from_workdir(workdir)
  except UserError as error:
    raise UserError(f'--config.init.from_workdir={workdir} is not a run to start from: {error}') from None
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, best_metric=source_config.checkpoint.best_metric,
      best_mode=source_config.checkpoint.best_mode, read_only=True)
  try:
    step = _resolve_step(checkpointer, config.init.checkpoint, workdir)
    abstract = layout.abstract()
    target = {part: _below(getattr(abstract, part), under) for part in PARTS}
    reset = CLASSIFIER_HEAD if under else patterns.parse(config.init.reset)
    try:
      the_plan = plan(checkpointer.saved_shapes(step), patterns_shapes(target), reset)
    except UserError as error:
      if not under:
        raise
      raise UserError(f'--config.model.backbone_init={workdir} is not a classifier of this '
                      f'backbone: {str(error).split(": ", 1)[1].split(". Start")[0]}. Train the '
                      'classifier with the same model.backbone, width and stem, or leave '
                      'backbone_init empty.') from None
    subset = _subset(target, set(the_plan.restored)) or {}
    restored = checkpointer.restore_subset(step, subset) if subset else {}
    if under:
      restored = {part: {under: tree} for part, tree in restored.items()}
  except checkpoint_lib.DamagedCheckpoint as error:
    raise UserError(f'--config.init.from_workdir={workdir}: {error}. Pick another step with '
                    '--config.init.checkpoint=STEP.') from None
  finally:
    checkpointer.close()
  return _replace(state, restored), the_plan, step


def _below(tree, under):
  return tree.get(under, {}) if under else tree


def patterns_shapes(tree):
  """{path: shape} of a tree of arrays or ShapeDtypeStructs."""
  import jax  # pylint: disable=g-import-not-at-top
  leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))
  return {patterns.path_name(path): tuple(leaf.shape) for path, leaf in leaves}


def _replace(state, restored):
  """`state` whose leaves found in `restored` (by path) are taken from it."""
  def pick(part, tree):
    source = restored.get(part) or {}
    def take(name, leaf):
      node = source
      for key in name.split('/'):
        node = node.get(key, node.get(int(key)) if key.isdigit() else None) \
            if isinstance(node, dict) else None
        if node is None:
          return leaf
      return node
    return patterns.map_with_names(take, tree)
  return state.replace(params=pick('params', state.params),
                       model_state=pick('model_state', state.model_state))


def describe(the_plan, step, workdir):
  fresh = [p.split('/', 1)[1] for p in the_plan.fresh]
  shown = ', '.join(fresh[:6]) + (' ...' if len(fresh) > 6 else '')
  return (f'Initialised from step {step} of {workdir}: {len(the_plan.restored)} arrays restored'
          + (f', {len(fresh)} fresh ({shown})' if fresh else '')
          + (f', {len(the_plan.left_behind)} of the source left behind'
             if the_plan.left_behind else '') + '.')

