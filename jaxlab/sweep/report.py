"""A sweep's outputs in its workdir: the results table (printed, results.csv,
results.json), optimization_history.png and param_importances.png, and best_config.py,
a runnable experiment file holding the best trial's values.

param_importances.png is drawn only when the complete trials' objective varied: when
they all scored the same, Optuna draws every parameter equally important (0.50/0.50 for
two), which reads as a finding; the summary says instead that the objective did not vary.
"""

import csv
import json
import os
import warnings

from jaxlab import config as config_lib
from jaxlab.workdir import plots
from jaxlab.errors import UserError

RESULTS_CSV = 'results.csv'
RESULTS_JSON = 'results.json'
HISTORY_PNG = 'optimization_history.png'
IMPORTANCES_PNG = 'param_importances.png'
BEST_CONFIG = 'best_config.py'
_COSTS = ('steps', 'seconds', 'device_hours', 'cost_usd')


def rows(study):
  """One dict per trial: number, state, value, the searched values and its costs."""
  return [dict(trial=t.number, state=t.state.name.lower(), value=t.value, **t.params,
               **{k: t.user_attrs.get(k) for k in _COSTS})
          for t in study.get_trials(deepcopy=False)]


def table(records, metric):
  """The results as aligned text, best-first columns as in the CSV."""
  if not records:
    return '(no trials)'
  columns = list(dict.fromkeys(k for r in records for k in r))
  shown = lambda v: f'{v:.4g}' if isinstance(v, float) else ('' if v is None else str(v))
  cells = [[c if c != 'value' else metric for c in columns]] + [
      [shown(r.get(c)) for c in columns] for r in records]
  widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
  return '\n'.join('  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                   for row in cells)


def write(study, sweep, config, config_spec, workdir):
  """Writes every output; returns the printed summary text."""
  records = rows(study)
  columns = list(dict.fromkeys(k for r in records for k in r))
  with open(os.path.join(workdir, RESULTS_CSV), 'w', newline='') as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(records)
  with open(os.path.join(workdir, RESULTS_JSON), 'w') as f:
    json.dump(dict(study=study.study_name, metric=sweep.metric, direction=sweep.direction,
                   trials=records), f, indent=1)
  lines = [table(records, sweep.metric)]
  lines += write_plots(study, sweep.metric, workdir)
  best = _best(study)
  if best is not None:
    path = os.path.join(workdir, BEST_CONFIG)
    write_best_config(path, config_spec, best_values(sweep, best.params), config, best, sweep)
    lines.append(f'Best: trial {best.number}, {sweep.metric} {best.value:.4f}, '
                 f'{best.params}. Runnable config: {path}')
  return '\n'.join(lines)


def _best(study):
  try:
    return study.best_trial
  except ValueError:  # no complete trial yet
    return None


def best_values(sweep, params):
  """The trial's values as config values (a tuple choice back from its stored repr)."""
  from jaxlab.sweep import space
  values = {}
  for key, value in params.items():
    distribution = sweep.params.get(key)
    if isinstance(distribution, space.Choice):
      value = distribution.values[[space.Choice.label(v) for v in distribution.values]
                                  .index(value)]
    values[key] = value
  return values


def write_plots(study, metric, workdir):
  """Draws the history and, when the objective varied, the importances; returns one
  line per plot saying where it went or why it is absent."""
  try:
    pyplot = plots.pyplot()  # before optuna imports matplotlib too: one import at a time
  except UserError as error:  # the trials' results are written; plots are a view of them
    return [f'No plots: {error}']
  from optuna.visualization import matplotlib as optuna_plots
  lines = [_draw(pyplot, optuna_plots.plot_optimization_history, study, workdir, HISTORY_PNG)]
  unvaried = objective_unvaried(study, metric)
  if unvaried:
    _remove_stale(os.path.join(workdir, IMPORTANCES_PNG))  # an earlier run's would mislead
    lines.append(f'No {IMPORTANCES_PNG}: {unvaried}')
  else:
    lines.append(_draw(pyplot, optuna_plots.plot_param_importances, study, workdir,
                       IMPORTANCES_PNG))
  return lines


def objective_unvaried(study, metric):
  """Why parameter importances would say nothing (the complete trials' values are all
  one), or None when they varied."""
  values = [t.value for t in study.get_trials(deepcopy=False) if t.state.name == 'COMPLETE']
  if len(set(values)) > 1:
    return None
  if not values:
    return 'no trial is complete.'
  return (f'the objective did not vary: all {len(values)} complete trial(s) scored {metric} '
          f'{values[0]:.4g}, so no parameter can be shown to matter more than another.')


def _draw(pyplot, draw, study, workdir, name):
  try:
    with warnings.catch_warnings():  # e.g. 'importances will be equal' with few trials
      warnings.simplefilter('ignore')
      axes = draw(study)
  except (ValueError, RuntimeError) as error:  # e.g. importances need 2+ complete trials
    return f'No {name}: {error}'
  figure = axes.figure
  plots.save(figure, os.path.join(workdir, name))
  pyplot.close(figure)
  return f'Wrote {os.path.join(workdir, name)}'


def _remove_stale(path):
  if os.path.exists(path):
    os.remove(path)


def write_best_config(path, config_spec, values, config, trial, sweep):
  """An experiment file: the sweep's experiment, its command-line overrides and the best
  trial's values."""
  base_path, _, base_arg = config_spec.partition(':')
  base_path = os.path.abspath(base_path)
  overrides = dict(_differences(_load_base(base_path, base_arg), config), **values)
  body = '\n'.join(f'  c.{key} = {value!r}' for key, value in overrides.items())
  text = f'''"""The best trial ({trial.number}: {sweep.metric} {trial.value:.4f}) of a jaxlab sweep.

  jaxlab train --config={path} --workdir=/tmp/jaxlab/best

Written by `jaxlab sweep`: the experiment {base_path}{":" + base_arg if base_arg else ""} with
the sweep's command-line overrides and the trial's values below.
"""

import importlib.util

BASE = {base_path!r}
BASE_ARG = {base_arg or None!r}


def get_config(arg=None):
  if arg:
    raise ValueError(f'Unknown config argument {{arg!r}}; this file takes none.')
  spec = importlib.util.spec_from_file_location('jaxlab_sweep_base', BASE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config(*([BASE_ARG] if BASE_ARG else []))
{body}
  return c
'''
  with open(path, 'w') as f:
    f.write(text)


def _load_base(path, arg):
  import importlib.util
  spec = importlib.util.spec_from_file_location('jaxlab_sweep_base', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*([arg] if arg else []))


def _differences(base, config):
  """{dotted key: value} of `config`'s fields that differ from `base`'s."""
  found = {}
  for key in config_lib.flat_keys(config):
    ok, value = config_lib.lookup(config, key)
    had, old = config_lib.lookup(base, key)
    if ok and (not had or old != value):
      found[key] = value
  return found

