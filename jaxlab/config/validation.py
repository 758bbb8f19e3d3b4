"""Checking a whole config: every field against its rule, then the fields that must agree."""

from jaxlab.config.fields import MESH_AXES, PATH_DATA_NAMES, rules
from jaxlab.config.keys import lookup
from jaxlab.errors import UserError


def validate(config):
  """Raises UserError naming every malformed field of `config` and how to fix it."""
  problems = []
  for key, check in rules().items():
    found, value = lookup(config, key)
    if not found:
      problems.append(f'--config.{key} is missing (start the experiment from '
                      'jaxlab.config.defaults())')
    elif (problem := check(value)):
      problems.append(f'--config.{key}={value!r}: {problem}')
  if not problems:
    problems = _cross_field_problems(config)
  if problems:
    raise UserError(f'Invalid config: {"; ".join(problems)}. Fix the value on the command line '
                    '(--config.KEY=VALUE) or in the experiment file.')


def _cross_field_problems(config):
  problems = []
  if config.data.name == 'npz' and not config.data.path:
    problems.append('--config.data.name=npz needs --config.data.path=FILE.npz holding x_train, '
                    'y_train, x_test and y_test')
  elif config.data.name in PATH_DATA_NAMES and not config.data.path:
    problems.append(f'--config.data.name={config.data.name} reads your files: give '
                    '--config.data.path (docs: Your files)')
  if config.data.batch_size % config.grad_accum_steps:
    problems.append(f'--config.data.batch_size={config.data.batch_size} is not divisible by '
                    f'--config.grad_accum_steps={config.grad_accum_steps}')
  if config.remat != 'none' and config.model.get('remat', 'none') != 'none':
    problems.append(f'--config.remat={config.remat} (the whole loss) and '
                    f'--config.model.remat={config.model.remat} (each layer) would recompute '
                    'twice; set one of them to none')
  if sum(config.mesh[axis] == -1 for axis in MESH_AXES) > 1:
    problems.append('at most one of --config.mesh.data/fsdp/tensor may be -1 (it fills the '
                    'remaining devices)')
  problems += _privacy_problems(config)
  return problems


def _privacy_problems(config):
  """DP-SGD settings whose ε would not describe what training does."""
  if not config.privacy.enabled:
    return []
  why = []
  if config.grad_accum_steps != 1:
    why.append(f'--config.grad_accum_steps={config.grad_accum_steps} (DP-SGD clips and noises '
               'one sampled batch per step; set it to 1 and lower data.batch_size to fit memory)')
  if config.data.mixup_alpha:
    why.append(f'--config.data.mixup_alpha={config.data.mixup_alpha} (mixup blends examples, so '
               'one example reaches others\' gradients past the clipping; set it to 0)')
  if config.data.placement == 'stream':
    why.append('--config.data.placement=stream (DP-SGD draws its samples on the devices from the '
               'whole resident set; use device or auto)')
  if config.distill.teacher_workdir:
    why.append('--config.distill.teacher_workdir (a teacher trained on the same data without '
               'privacy leaks it to the student; turn one of them off)')
  if config.privacy.sampling == 'fixed' and config.privacy.accountant == 'pld':
    why.append('--config.privacy.sampling=fixed with --config.privacy.accountant=pld '
               '(dp_accounting\'s PLD accountant cannot account for sampling without replacement; '
               'use accountant=rdp or sampling=poisson)')
  return [f'--config.privacy.enabled=True cannot be combined with {w}' for w in why]
