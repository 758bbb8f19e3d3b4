"""Search the digits CNN's learning rate, widths and dropout (20 trials, 2 at a time).

  jaxlab sweep --config=experiments/digits_cnn.py --sweep=experiments/sweeps/digits_cnn.py --trials=20 --workers=2 --workdir=/tmp/jaxlab/sweep_digits
  jaxlab sweep --config=experiments/digits_cnn.py:smoke --sweep=experiments/sweeps/digits_cnn.py:smoke --trials=3 --workers=2 --workdir=/tmp/jaxlab/sweep_smoke

The first trial is the experiment's own settings, so the table compares every trial with
the default. Rerunning a command continues its study.
"""

from jaxlab.sweep.space import Sweep, choice, loguniform, uniform


def get_sweep(arg=None):
  params = {
      'model.conv_features': choice((16, 32), (32, 64), (64, 128)),  # widths of the two conv layers
      'model.dense_features': choice((64,), (128,), (256,)),  # widths of the dense layers before the classifier
      'model.dropout_rate': uniform(0.0, 0.5),  # dropout before the classifier
      'optimizer.learning_rate': loguniform(3e-4, 1e-2),  # peak learning rate (warmup, then cosine)
  }
  defaults = {  # experiments/digits_cnn.py's values: trial 0
      'model.conv_features': (32, 64), 'model.dense_features': (128,),
      'model.dropout_rate': 0.0, 'optimizer.learning_rate': 2e-3,
  }
  sweep = Sweep(
      params,
      metric='eval/accuracy',  # the objective: the last evaluation's test accuracy
      direction='maximize',
      sampler='tpe',  # Optuna's TPE proposes each trial from the finished ones
      seed=0,  # the sampler's seed
      pruner='median',  # stop a trial whose accuracy at an evaluation is below the median there
      startup_trials=5,  # no pruning before 5 trials have finished
      warmup_steps=0,  # a trial may be pruned at its first evaluation
      first_trials=(defaults,),  # run the experiment's own settings first
  )
  if arg == 'smoke':  # seconds, for tests: prune as soon as one trial has finished
    sweep = Sweep(params, metric=sweep.metric, direction=sweep.direction, seed=sweep.seed,
                  startup_trials=1, first_trials=(defaults,))
  elif arg:
    raise ValueError(f'Unknown sweep argument {arg!r}; use "smoke" or nothing.')
  return sweep
