"""The Keras MNIST quickstart, exactly: Flatten -> Dense 128 relu -> Dense 10,
Adam 1e-3 (Keras's eps 1e-7), sparse categorical cross-entropy, batch 32, 5 epochs.

  jaxlab train --config=experiments/mnist_mlp.py --workdir=/tmp/jaxlab/mnist_mlp \\
      --config.data.data_dir=$HOME/tensorflow_datasets

MNIST must be prepared with TFDS (see README); --config.data.name=synthetic runs it
on random data of MNIST's shapes.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'mnist'
  c.data.batch_size = 32
  c.data.eval_batch_size = 1000
  c.data.synthetic_like = 'mnist'

  c.model.name = 'mlp'
  c.model.hidden = (128,)
  c.model.kernel_init = 'glorot_uniform'  # as Keras's Dense

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.eps = 1e-7  # Keras's default

  c.num_epochs = 5
  c.steps_per_loop = 1875  # one epoch per compiled call
  c.log_every_steps = 375
  c.eval_every_steps = 1875
  c.checkpoint_every_steps = 1875
  if smoke:
    c.data.num_train = 2048
    c.data.num_test = 500
    c.data.eval_batch_size = 100
    c.num_epochs = 2
    c.steps_per_loop = 16
    c.log_every_steps = 16
    c.eval_every_steps = 64
    c.checkpoint_every_steps = 64
  return c
