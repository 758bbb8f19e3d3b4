"""Offline text classification: which standard-library package a snippet of Python comes from.

  jaxlab train --config=experiments/python_snippets_text.py --workdir=/tmp/jaxlab/snippets_gru
  jaxlab predict --workdir=/tmp/jaxlab/snippets_gru snippet.txt

The data (`python_snippets`) is 8-line pieces of the installed Python's own source code,
labelled with their package among asyncio, email, http, importlib, logging,
multiprocessing, unittest and xml (500 per package, ~20% held out by text hash), read
as UTF-8 bytes: no download. The config argument picks the model, optionally with
`smoke` (seconds, for tests): `:gru` (the default), `:lstm`, `:transformer` (a
Transformer encoder), e.g. `--config=experiments/python_snippets_text.py:lstm,smoke`.
Chance is 12.5%. Measured with the full configs on 2 CPU cores shared with other jobs
(wall times are upper bounds): `:gru` 81.8% test accuracy in 19.8 min, `:lstm` 79.4% in
25.8 min, `:transformer` 61.8% in 10.2 min (the encoder overfits this little byte-level data).
"""

from jaxlab import config as config_lib

MODELS = {
    'gru': dict(name='gru', embed_dim=64, hidden_dim=128, num_layers=1, bidirectional=True,
                pool='both', dropout_rate=0.1),
    'lstm': dict(name='lstm', embed_dim=64, hidden_dim=128, num_layers=1, bidirectional=True,
                 pool='both', dropout_rate=0.1),
    # Narrow: at 256 bytes a row, attention and width cost most on CPU cores.
    'transformer': dict(name='transformer_encoder', num_layers=2, embed_dim=64, num_heads=4,
                        mlp_dim=128, pool='mean', dropout_rate=0.1),
}
SMOKE_MODELS = {  # tiny; the smoke GRU reads one way only, the LSTM both
    'gru': dict(embed_dim=16, hidden_dim=16, bidirectional=False, pool='last'),
    'lstm': dict(embed_dim=16, hidden_dim=16),
    'transformer': dict(num_layers=1, embed_dim=32, num_heads=2, mlp_dim=64),
}


def get_config(arg=None):
  model, smoke = config_lib.variant(arg, tuple(MODELS), 'gru')
  c = config_lib.defaults()
  c.data.name = 'python_snippets'  # 3,2xx train / 7xx test snippets, 8 balanced classes
  c.data.tokenizer = 'byte'  # UTF-8 bytes (vocabulary 259); 'sentencepiece' trains one
  c.data.seq_len = 256  # bytes per snippet read (snippets average ~295; the rest is cut)
  c.data.batch_size = 64  # examples per step
  c.data.eval_batch_size = 256  # examples per eval step

  for key, value in MODELS[model].items():  # the model: see MODELS above
    c.model[key] = value

  c.optimizer.name = 'adamw'  # Adam with decoupled weight decay
  c.optimizer.learning_rate = 3e-3  # peak learning rate
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay
  c.optimizer.warmup_percent = 5.0  # of training
  c.optimizer.weight_decay = 0.01  # on kernels
  c.optimizer.grad_clip_norm = 1.0  # RNNs' gradients spike on long sequences

  c.num_epochs = 15  # passes over the training snippets (50 steps each)
  c.steps_per_loop = 50  # one epoch per compiled call
  c.log_every_steps = 50  # train metrics once per epoch

  c.eval_every_steps = 250  # every 5 epochs
  c.checkpoint_every_steps = 250  # with the evaluation
  if smoke:  # seconds, for tests
    c.data.seq_len = 32
    c.data.num_train = 256
    c.data.num_test = 64
    c.data.batch_size = 16
    c.data.eval_batch_size = 64
    for key, value in SMOKE_MODELS[model].items():
      c.model[key] = value
    c.optimizer.warmup_percent = 0.0
    c.num_steps = 8
    c.steps_per_loop = 8
    c.log_every_steps = 4
    c.eval_every_steps = 8
    c.checkpoint_every_steps = 8
  return c

