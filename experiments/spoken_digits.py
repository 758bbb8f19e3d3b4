"""The offline speech demo: spoken digits "zero" .. "nine" made at run time by espeak-ng,
a CNN over a log-mel front end.

  jaxlab train --config=experiments/spoken_digits.py --workdir=/tmp/jaxlab/spoken_digits

The test split holds out speakers (jaxlab/data/espeak_digits.py): 10 espeak-ng voice
variants, espeak-ng's default speaker among them, are never trained on; training hears
90 other variants. A test example shares with training only its language (7 English
accents: pronunciation rules) and the ranges its speed (110-220 wpm) and pitch (20-80)
are drawn from. The test split also holds the ten digits exactly as
`espeak-ng -w x.wav <digit>` writes them (default voice, 175 wpm, pitch 50). Training
clips are placed at random offsets, at random gains, with light noise (so are the test
clips, drawn apart; the ten as-written ones are left clean).

Measured (espeak-ng 1.51, 2 shared CPU cores): held-out-speaker test accuracy 0.9930;
137 s of training steps (1275 steps, ~9 steps/s), 194 s in all with ~50 s speaking the
clips the first time (cached after). `jaxlab predict` names all ten digits as
`espeak-ng -w x.wav <digit>` writes them, and again with white noise 20 dB below the word.

Needs no download. Without espeak-ng (`apt-get install espeak-ng`) the data falls back
to the synthesized vowels of synthetic_speech, with one line saying so.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'spoken_digits'  # 1 s clips at 16 kHz: 2730 train / 710 test (held-out speakers)
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
  c.steps_per_loop = 85  # one epoch (2730 // 32) per compiled call
  c.log_every_steps = 85
  c.eval_every_steps = 425
  c.checkpoint_every_steps = 425
  if smoke:  # seconds, for tests: a few synthesized vowels
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
  return c
