"""The offline speech demo: spoken digits "zero" .. "nine" made at run time by espeak-ng
(16 voices x 3 speeds x 3 pitches, with noise), a CNN over a log-mel front end.

  jaxlab train --config=experiments/spoken_digits.py --workdir=/tmp/jaxlab/spoken_digits

Needs no download. Without espeak-ng (`apt-get install espeak-ng`) the data falls back
to the synthesized vowels of synthetic_speech, with one line saying so.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  c = config_lib.defaults()
  c.data.name = 'spoken_digits'  # 1440 one-second clips at 16 kHz: 1152 train / 288 test
  c.data.batch_size = 32

  c.model.name = 'speech_cnn'
  c.model.conv_features = (16, 32, 64)  # 3x3 convs over time x mel, each then 2x2 max-pool
  c.model.batch_norm = True  # BatchNorm after each conv
  c.model.dense_features = (64,)  # after the global average pool
  c.model.n_mels = 40  # log-mel bins of the front end (32 ms windows, 10 ms hop)
  c.model.dropout_rate = 0.1

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 3e-3
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_percent = 5.0

  c.num_epochs = 15
  c.steps_per_loop = 36  # one epoch (1152 // 32) per compiled call
  c.log_every_steps = 36
  c.eval_every_steps = 180
  c.checkpoint_every_steps = 180
  if arg == 'smoke':  # seconds, for tests: a few synthesized vowels
    c.data.name = 'synthetic_speech'
    c.data.num_train = 192
    c.data.num_test = 64
    c.model.conv_features = (8, 16)
    c.model.dense_features = (16,)
    c.model.dropout_rate = 0.0
    c.optimizer.schedule = 'constant'
    c.num_epochs = 2
    c.num_steps = 12
    c.steps_per_loop = 6
    c.log_every_steps = 3
    c.eval_every_steps = 12
    c.checkpoint_every_steps = 12
  elif arg:
    raise ValueError(f'Unknown config argument {arg!r}; use "smoke" or nothing.')
  return c
