"""The Flax examples' MNIST CNN: conv 32 -> avg-pool -> conv 64 -> avg-pool -> dense 256,
SGD 0.1 with momentum 0.9, batch 128, 10 epochs.

  jaxlab train --config=experiments/mnist_cnn.py --workdir=/tmp/jaxlab/mnist_cnn \\
      --config.data.data_dir=$HOME/tensorflow_datasets
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'mnist'
  c.data.batch_size = 128
  c.data.eval_batch_size = 1000
  c.data.synthetic_like = 'mnist'

  c.model.name = 'cnn'
  c.model.conv_features = (32, 64)
  c.model.pool = 'avg'
  c.model.dense_features = (256,)

  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.1
  c.optimizer.momentum = 0.9

  c.num_epochs = 10
  c.steps_per_loop = 20
  c.log_every_steps = 100
  c.eval_every_steps = 468  # one epoch (60000 // 128)
  c.checkpoint_every_steps = 468
  if smoke:
    c.data.num_train = 1024
    c.data.num_test = 256
    c.data.batch_size = 32
    c.data.eval_batch_size = 64
    c.optimizer.learning_rate = 0.05
    c.num_epochs = 3
    c.steps_per_loop = 8
    c.log_every_steps = 8
    c.eval_every_steps = 32
    c.checkpoint_every_steps = 32
  return c
