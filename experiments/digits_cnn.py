"""The default experiment: a small CNN on scikit-learn's bundled 8x8 digits.

  jaxlab train --config=experiments/digits_cnn.py --workdir=/tmp/jaxlab/digits_cnn

Needs no download; reaches >= 97% test accuracy in well under a minute on 2 CPU cores.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'digits'  # 1437 train / 360 test, fixed stratified split
  c.data.batch_size = 32
  c.data.synthetic_like = 'digits'

  c.model.name = 'cnn'
  c.model.conv_features = (32, 64)  # two 3x3 conv layers, each followed by 2x2 pooling
  c.model.pool = 'max'
  c.model.dense_features = (128,)
  c.model.dropout_rate = 0.0

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_percent = 5.0

  c.num_epochs = 30
  c.steps_per_loop = 44  # one epoch (1437 // 32) per compiled call
  c.log_every_steps = 44
  c.eval_every_steps = 440
  c.checkpoint_every_steps = 440
  if smoke:  # seconds, for tests
    c.num_epochs = 2
    c.steps_per_loop = 11
    c.log_every_steps = 11
    c.eval_every_steps = 44
    c.checkpoint_every_steps = 44
  return c
