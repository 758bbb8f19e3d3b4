"""digits_cnn trained with differential privacy (DP-SGD): ε ≈ 2.9 at δ = 1e-5.

  jaxlab train --config=experiments/digits_cnn_dp.py --workdir=/tmp/jaxlab/digits_cnn_dp

The 1437 training digits are a small population, so a useful ε needs a high sampling
rate (large batches) and much noise; the README's "Differential privacy" section
explains the settings and gives the figures.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'digits'  # 1437 train / 360 test, fixed stratified split
  c.data.batch_size = 256  # expected batch: each example joins a step with rate 256 / 1437
  c.data.synthetic_like = 'digits'

  c.model.name = 'cnn'  # no batch statistics, so per-example clipping bounds each example
  c.model.conv_features = (32, 64)  # two 3x3 conv layers, each followed by 2x2 pooling
  c.model.pool = 'max'
  c.model.dense_features = (128,)
  c.model.dropout_rate = 0.0

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-2  # peak; few, noisy steps want large ones (3e-3: 79%, 1e-2: 87.5%)
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_percent = 5.0

  c.num_epochs = 40  # 200 steps
  c.steps_per_loop = 5  # one epoch (1437 // 256) per compiled call
  c.log_every_steps = 5
  c.eval_every_steps = 50
  c.checkpoint_every_steps = 50

  c.privacy.enabled = True  # DP-SGD
  c.privacy.l2_clip_norm = 1.0  # each example's gradient is clipped to this norm
  c.privacy.noise_multiplier = 4.0  # noise std = 4 clip norms on the summed gradients
  c.privacy.sampling = 'poisson'  # as the accountant assumes
  c.privacy.delta = 1e-5  # well below 1 / 1437
  c.privacy.accountant = 'rdp'
  if smoke:  # seconds, for tests
    c.num_epochs = 2
    c.eval_every_steps = 10
    c.checkpoint_every_steps = 10
  return c
