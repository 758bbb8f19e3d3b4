"""Search the MNIST MLP's width and learning rate (runs on random data of MNIST's shapes too).

  jaxlab sweep --config=experiments/mnist_mlp.py:smoke --config.data.name=synthetic --sweep=experiments/sweeps/mnist_mlp.py --trials=4 --workers=2 --workdir=/tmp/jaxlab/sweep_mlp
"""

from jaxlab.sweep.space import Sweep, choice, loguniform


def get_sweep(arg=None):
  if arg:
    raise ValueError(f'Unknown sweep argument {arg!r}; this file takes none.')
  return Sweep(
      {
          'model.hidden': choice((64,), (128,), (256,), (128, 128)),  # hidden layer widths
          'optimizer.learning_rate': loguniform(1e-4, 1e-2),  # Adam's learning rate
      },
      metric='eval/accuracy',  # the objective: the last evaluation's test accuracy
      direction='maximize',
      sampler='tpe',  # Optuna's TPE proposes each trial from the finished ones
      pruner='median',  # stop a trial below the median at an evaluation...
      startup_trials=2,  # ...once 2 trials have finished
      first_trials=({'model.hidden': (128,), 'optimizer.learning_rate': 1e-3},),  # the Keras quickstart's settings
  )
