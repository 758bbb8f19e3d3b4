"""A VGG-style CNN on CIFAR-10 with random-crop and flip augmentation, AdamW with
warmup and cosine decay.

  jaxlab train --config=experiments/cifar10_cnn.py --workdir=/tmp/jaxlab/cifar10_cnn \\
      --config.data.data_dir=$HOME/tensorflow_datasets
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'cifar10'
  c.data.batch_size = 128
  c.data.eval_batch_size = 500
  c.data.augment = ('crop', 'flip')  # pad-4 random crop, horizontal flip
  c.data.synthetic_like = 'cifar10'

  c.model.name = 'cnn'
  c.model.conv_features = (64, 128, 256)
  c.model.pool = 'max'
  c.model.dense_features = (256,)
  c.model.dropout_rate = 0.3

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_percent = 3.0
  c.optimizer.weight_decay = 5e-4
  c.optimizer.grad_clip_norm = 1.0

  c.num_epochs = 30
  c.steps_per_loop = 20
  c.log_every_steps = 100
  c.eval_every_steps = 390  # one epoch (50000 // 128)
  c.checkpoint_every_steps = 390
  if smoke:
    c.data.num_train = 512
    c.data.num_test = 128
    c.data.batch_size = 32
    c.data.eval_batch_size = 64
    c.model.conv_features = (16, 32, 32)
    c.model.dense_features = (32,)
    c.num_epochs = 6
    c.steps_per_loop = 8
    c.log_every_steps = 8
    c.eval_every_steps = 16
    c.checkpoint_every_steps = 16
  return c
