"""Keyword spotting on TFDS Speech Commands (12 classes), streamed: a CNN over a log-mel
front end computed inside the model; `:gru` swaps in conv subsampling and a GRU.

  jaxlab train --config=experiments/speech_commands_cnn.py --workdir=/tmp/jaxlab/speech_commands \\
      --config.data.data_dir=$HOME/tensorflow_datasets
  jaxlab train --config=experiments/speech_commands_cnn.py:gru --workdir=/tmp/jaxlab/speech_gru \\
      --config.data.data_dir=$HOME/tensorflow_datasets

Needs speech_commands prepared in ArrayRecord format (`tfds build speech_commands
--file_format=array_record`). `:smoke` and `:gru,smoke` train on the offline
synthetic_speech set in seconds.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  model, smoke = config_lib.variant(arg, ('cnn', 'gru'), 'cnn')
  c = config_lib.defaults()
  c.data.name = 'speech_commands'  # 1 s clips at 16 kHz, 12 classes (10 words, silence, unknown)
  c.data.placement = 'stream'  # ~85k clips of 64 KB as float32: read by Grain as it trains
  c.data.num_workers = 2  # Grain worker processes that read and pad the clips
  c.data.batch_size = 128
  c.data.eval_batch_size = 256

  if model == 'gru':
    c.model.name = 'speech_gru'
    c.model.conv_features = 128  # one stride-2 conv over time: 101 -> 51 frames
    c.model.hidden_size = 192  # GRU width
    c.model.num_layers = 2  # stacked GRUs
    c.model.dense_features = ()  # the head reads the time-averaged GRU outputs
  else:
    c.model.name = 'speech_cnn'
    c.model.conv_features = (32, 64, 128, 128)  # 3x3 convs over time x mel, each then 2x2 max-pool
    c.model.batch_norm = True  # BatchNorm after each conv
    c.model.dense_features = (128,)  # after the global average pool
  c.model.n_mels = 40  # log-mel bins of the front end (32 ms windows, 10 ms hop)
  c.model.dropout_rate = 0.1

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_percent = 3.0
  c.optimizer.weight_decay = 1e-4  # on kernels only
  c.optimizer.grad_clip_norm = 1.0

  c.num_epochs = 20
  c.steps_per_loop = 50  # train steps per compiled call
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 1000
  if smoke:  # seconds, offline: the synthesized vowels stand in
    c.data.name = 'synthetic_speech'
    c.data.placement = 'auto'
    c.data.num_workers = -1
    c.data.num_train = 192
    c.data.num_test = 64
    c.data.batch_size = 32
    c.data.eval_batch_size = 64
    if model == 'gru':
      c.model.conv_features = 16
      c.model.hidden_size = 16
      c.model.num_layers = 1
    else:
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
