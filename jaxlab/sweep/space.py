"""What a sweep file holds: the search space over config fields and the objective.

A sweep file (experiments/sweeps/<name>.py) defines `get_sweep(arg=None)` returning a
`Sweep`; its `params` map dotted config keys to the distributions below, e.g.
{'optimizer.learning_rate': loguniform(1e-4, 1e-2), 'model.dropout_rate': uniform(0, .5)}.
Nothing here imports Optuna: a sweep file loads as fast as an experiment file.
"""

import dataclasses
import importlib.util
import os

from jaxlab import config as config_lib
from jaxlab.errors import UserError


@dataclasses.dataclass(frozen=True)
class Float:
  low: float
  high: float
  log: bool = False

  def suggest(self, trial, name):
    return trial.suggest_float(name, self.low, self.high, log=self.log)

  def samples(self):
    return (self.low, self.high)


@dataclasses.dataclass(frozen=True)
class Int:
  low: int
  high: int
  log: bool = False

  def suggest(self, trial, name):
    return trial.suggest_int(name, self.low, self.high, log=self.log)

  def samples(self):
    return (self.low, self.high)


@dataclasses.dataclass(frozen=True)
class Choice:
  values: tuple

  def suggest(self, trial, name):
    # Optuna stores only scalars as choices: a tuple (conv widths) is stored as its repr.
    labels = [self.label(v) for v in self.values]
    return self.values[labels.index(trial.suggest_categorical(name, labels))]

  @staticmethod
  def label(value):
    return value if isinstance(value, (bool, int, float, str, type(None))) else repr(value)

  def samples(self):
    return self.values


def uniform(low, high):
  """A float drawn evenly between low and high."""
  return Float(float(low), float(high))


def loguniform(low, high):
  """A float whose logarithm is drawn evenly (learning rates, weight decay)."""
  return Float(float(low), float(high), log=True)


def integer(low, high, log=False):
  """An integer in [low, high] (both included)."""
  return Int(int(low), int(high), log)


def choice(*values):
  """One of the given values (numbers, strings, or tuples such as layer widths)."""
  return Choice(tuple(values))


DIRECTIONS = ('maximize', 'minimize')
SAMPLERS = ('tpe', 'random')
PRUNERS = ('median', 'none')


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A search: the space, the objective and how trials are proposed and pruned."""
  params: dict  # dotted config key -> uniform/loguniform/integer/choice
  metric: str = 'eval/accuracy'  # the objective: an eval metric the task logs
  direction: str = 'maximize'  # or 'minimize' (eval/loss, eval/perplexity)
  sampler: str = 'tpe'  # how trials are proposed: 'tpe' (Bayesian) or 'random'
  seed: int = 0  # the sampler's seed
  pruner: str = 'median'  # stop a trial whose eval is worse than the median at that step
  startup_trials: int = 5  # the pruner waits for this many finished trials
  warmup_steps: int = 0  # and never prunes a trial before this training step
  first_trials: tuple = ()  # {key: value} trials run first, e.g. the experiment's defaults

  def __post_init__(self):
    problems = []
    if not isinstance(self.params, dict) or not self.params:
      problems.append('params must be a non-empty dict {config key: distribution}')
    elif bad := [k for k, v in self.params.items() if not isinstance(v, (Float, Int, Choice))]:
      problems.append(f'params {bad} are not uniform/loguniform/integer/choice(...)')
    for name, value, allowed in (('direction', self.direction, DIRECTIONS),
                                 ('sampler', self.sampler, SAMPLERS),
                                 ('pruner', self.pruner, PRUNERS)):
      if value not in allowed:
        problems.append(f'{name}={value!r} must be one of {", ".join(allowed)}')
    if not self.metric.startswith('eval/'):
      problems.append(f'metric={self.metric!r} must be an eval metric, e.g. eval/accuracy')
    if problems:
      raise UserError(f'Invalid sweep: {"; ".join(problems)}. Fix the sweep file\'s '
                      'get_sweep() (see experiments/sweeps/digits_cnn.py).')

  def check_keys(self, config):
    """Raises UserError unless every searched key is a field of `config` that takes the
    distribution's values."""
    keys = list(self.params) + [k for trial in self.first_trials for k in trial]
    for key in keys:
      if not config_lib.has_key(config, key):
        raise UserError(str(config_lib.unknown_key_error(config, key)).replace(
            '--config.', 'the sweep\'s key ', 1))
    for key, distribution in self.params.items():
      for value in distribution.samples():
        apply(config, {key: value})
    for trial in self.first_trials:
      apply(config, trial)


def apply(config, values):
  """A copy of `config` with the dotted keys set to `values`, validated."""
  config = config.copy_and_resolve_references()
  for key, value in values.items():
    *sections, leaf = key.split('.')
    node = config
    for section in sections:
      node = node[section]
    try:
      node[leaf] = value
    except (TypeError, ValueError) as error:
      raise UserError(f'The sweep sets {key}={value!r}, which the config rejects ({error}). '
                      'Give values of the field\'s type in the sweep file.') from None
  config_lib.validate(config)
  return config


def load(spec):
  """The Sweep of 'path/to/sweep.py[:arg]'."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise UserError(f'No sweep file {path}: pass --sweep=experiments/sweeps/NAME.py[:smoke].')
  module_spec = importlib.util.spec_from_file_location(f'jaxlab_sweep_{abs(hash(path))}', path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
    sweep = module.get_sweep(*([arg] if arg else []))
  except UserError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    line = next((f'line {f.lineno}: ' for f in reversed(_frames(error))
                 if os.path.abspath(f.filename) == os.path.abspath(path)), '')
    raise UserError(f'Could not load the sweep file {path} ({line}{type(error).__name__}: '
                    f'{error}). A sweep file defines get_sweep(arg=None) returning a '
                    'jaxlab.sweep.space.Sweep; see experiments/sweeps/digits_cnn.py.') from None
  if not isinstance(sweep, Sweep):
    raise UserError(f'{path}: get_sweep() returned a {type(sweep).__name__}, not a '
                    'jaxlab.sweep.space.Sweep; see experiments/sweeps/digits_cnn.py.')
  return sweep


def _frames(error):
  import traceback
  return traceback.extract_tb(error.__traceback__) if error.__traceback__ else []

