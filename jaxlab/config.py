"""Loading, checking and saving experiment configs (ml_collections.ConfigDict)."""

import difflib
import json
import math
import posixpath

import ml_collections

from jaxlab import storage
from jaxlab.errors import UserError

CONFIG_FILE_NAME = 'config.json'


def flat_keys(config, prefix=''):
  """All dotted leaf keys of a (nested) ConfigDict, e.g. 'optimizer.learning_rate'."""
  keys = []
  for name, value in config.items():
    key = f'{prefix}{name}'
    if isinstance(value, ml_collections.ConfigDict):
      keys.extend(flat_keys(value, key + '.'))
    else:
      keys.append(key)
  return keys


def closest_keys(config, key, n=3):
  """The valid keys closest to a mistyped one, best first."""
  keys = flat_keys(config)
  leaf = key.rsplit('.', 1)[-1]
  by_full = difflib.get_close_matches(key, keys, n=n, cutoff=0.5)
  by_leaf = [k for k in keys if difflib.get_close_matches(leaf, [k.rsplit('.', 1)[-1]], cutoff=0.7)]
  return list(dict.fromkeys(by_full + by_leaf))[:n]


def unknown_key_error(config, key):
  suggestions = closest_keys(config, key)
  hint = ', '.join(f'--config.{k}' for k in suggestions) or 'none close'
  return UserError(
      f'Unknown config key --config.{key}: the experiment has no such field. '
      f'Closest valid keys: {hint}. Run with --config.<key>=<value> using one of '
      'them, or print every field with `jaxlab train --config=... --dry_run`.')


def total_steps(config, steps_per_epoch):
  """Training length in steps, from num_steps if set, else from num_epochs."""
  if config.get('num_steps'):
    return int(config.num_steps)
  return int(math.ceil(config.num_epochs * steps_per_epoch))


def warmup_steps(optimizer_config, num_steps):
  """Warmup in steps, from warmup_steps if set, else from warmup_percent."""
  if optimizer_config.get('warmup_steps'):
    return int(optimizer_config.warmup_steps)
  return int(num_steps * optimizer_config.get('warmup_percent', 0.0) / 100)


def save(config, workdir):
  """Writes the resolved config as JSON into the workdir."""
  storage.write_text(posixpath.join(workdir, CONFIG_FILE_NAME),
                     config.to_json_best_effort(indent=2, sort_keys=True) + '\n')


def load_from_workdir(workdir):
  """The config a run in this workdir was trained with."""
  path = posixpath.join(workdir, CONFIG_FILE_NAME)
  if not storage.exists(path):
    raise UserError(
        f'No {CONFIG_FILE_NAME} in workdir {workdir}: it is not a jaxlab training '
        'directory. Train first with `jaxlab train --config=... '
        f'--workdir={workdir}`, or point --workdir at an existing run.')
  return ml_collections.ConfigDict(json.loads(storage.read_text(path)))


def defaults():
  """The fields every experiment shares, with the same names everywhere, so that one
  override (--config.data.batch_size=64) works on any experiment."""
  placeholder = ml_collections.config_dict.placeholder
  c = ml_collections.ConfigDict()
  c.seed = 0  # seeds parameters, data order and dropout

  c.data = ml_collections.ConfigDict()
  c.data.name = 'digits'  # digits | mnist | fashion_mnist | cifar10 | synthetic | npz
  c.data.path = placeholder(str)  # the .npz file of data.name='npz'
  c.data.data_dir = placeholder(str)  # TFDS data_dir (default ~/tensorflow_datasets)
  c.data.batch_size = 32  # global batch, split over the data-parallel devices
  c.data.eval_batch_size = placeholder(int)  # default: batch_size
  c.data.num_train = placeholder(int)  # use only the first N training examples
  c.data.num_test = placeholder(int)  # use only the first N test examples
  c.data.augment = ()  # on-device augmentations: 'crop', 'flip'
  c.data.synthetic_like = 'digits'  # shapes and sizes of data.name='synthetic'
  c.data.synthetic_seed = 0  # seed of the synthetic images and their teacher

  c.model = ml_collections.ConfigDict()
  c.model.name = 'cnn'  # registered name, or 'package.module:Class'
  c.compute_dtype = 'auto'  # auto (bfloat16 on GPU/TPU, float32 on CPU) | float32 | bfloat16
  c.remat = 'none'  # rematerialisation: none | full | dots

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'adam'  # adam | adamw | sgd
  c.optimizer.learning_rate = 1e-3  # peak learning rate
  c.optimizer.schedule = 'constant'  # constant | warmup_cosine
  c.optimizer.warmup_steps = placeholder(int)  # warmup length in steps...
  c.optimizer.warmup_percent = 0.0  # ...or in percent of training
  c.optimizer.end_factor = 0.0  # final lr of warmup_cosine, as a fraction of the peak
  c.optimizer.b1 = 0.9  # Adam's first-moment decay
  c.optimizer.b2 = 0.999  # Adam's second-moment decay
  c.optimizer.eps = 1e-8  # Adam's epsilon (Keras uses 1e-7)
  c.optimizer.momentum = 0.9  # SGD momentum (0 for plain SGD)
  c.optimizer.nesterov = False  # SGD with Nesterov momentum
  c.optimizer.weight_decay = 0.0  # on kernels only; decoupled for adamw
  c.optimizer.grad_clip_norm = 0.0  # clip gradients to this global norm (0: off)

  c.num_epochs = 5  # training length in epochs...
  c.num_steps = placeholder(int)  # ...or in steps (wins when set)
  c.steps_per_loop = 100  # train steps per compiled call (lax.scan)
  c.grad_accum_steps = 1  # split each batch into this many sequential micro-batches
  c.log_every_steps = 100  # train metrics record interval
  c.progress = True  # progress bar on terminals

  c.eval_every_steps = 500  # evaluation interval (and always at the end)
  c.plots = True  # PNG training curves and confusion matrix at the end

  c.checkpoint_every_steps = 500  # checkpoint interval (and always at the end)
  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.keep = 2  # how many of the latest checkpoints to keep
  c.checkpoint.best_metric = 'eval/accuracy'  # also keep the best by this ('' : off)
  c.checkpoint.best_mode = 'max'  # max | min
  c.checkpoint.async_save = True  # write checkpoints in the background

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # data-parallel axis size (-1: all remaining devices)
  c.mesh.fsdp = 1  # fully sharded data-parallel axis size
  c.mesh.tensor = 1  # tensor-parallel axis size
  c.sharding_rules = DEFAULT_SHARDING_RULES  # logical parameter axis -> mesh axis
  return c


# Kept here (not imported from jaxlab.parallel) so that loading a config stays light.
DEFAULT_SHARDING_RULES = (
    ('embed', 'fsdp'),
    ('conv_in', 'fsdp'),
    ('mlp', 'tensor'),
    ('conv_out', 'tensor'),
    ('heads', 'tensor'),
    ('classes', ''),
)
