"""IMDB review sentiment with an LSTM (or a GRU, or a Transformer encoder).

  jaxlab train --config=experiments/imdb_lstm.py --workdir=/tmp/jaxlab/imdb_lstm

Needs TFDS imdb_reviews prepared once in ArrayRecord format (README, Data):
`tfds build imdb_reviews --file_format=array_record`. Each review is read as its first
data.seq_len tokens of a SentencePiece vocabulary trained on the training reviews (saved
in the workdir). The config argument picks the model, optionally with `smoke` (seconds,
for tests): `:lstm` (the default), `:gru`, `:transformer` (a Transformer encoder),
e.g. `--config=experiments/imdb_lstm.py:gru,smoke`. Chance is 50%.
"""

from jaxlab import config as config_lib

MODELS = {
    'lstm': dict(name='lstm', embed_dim=128, hidden_dim=128, num_layers=1, bidirectional=True,
                 pool='both', dropout_rate=0.2),
    'gru': dict(name='gru', embed_dim=128, hidden_dim=128, num_layers=1, bidirectional=True,
                pool='both', dropout_rate=0.2),
    'transformer': dict(name='transformer_encoder', num_layers=2, embed_dim=128, num_heads=4,
                        mlp_dim=256, pool='mean', dropout_rate=0.1),
}
SMOKE_MODELS = {
    'lstm': dict(embed_dim=16, hidden_dim=16),
    'gru': dict(embed_dim=16, hidden_dim=16),
    'transformer': dict(num_layers=1, embed_dim=32, num_heads=2, mlp_dim=64),
}


def get_config(arg=None):
  model, smoke = config_lib.variant(arg, tuple(MODELS), 'lstm')
  c = config_lib.defaults()
  c.data.name = 'imdb_reviews'  # 25,000 train / 25,000 test reviews, 2 balanced classes
  c.data.tokenizer = 'sentencepiece'  # trained on the training reviews at the first start
  c.data.vocab_size = 8000  # SentencePiece pieces
  c.data.seq_len = 256  # tokens per review read (the rest is cut)
  c.data.batch_size = 64  # examples per step
  c.data.eval_batch_size = 256  # examples per eval step

  for key, value in MODELS[model].items():  # the model: see MODELS above
    c.model[key] = value

  c.optimizer.name = 'adamw'  # Adam with decoupled weight decay
  c.optimizer.learning_rate = 2e-3  # peak learning rate
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay
  c.optimizer.warmup_percent = 5.0  # of training
  c.optimizer.weight_decay = 0.01  # on kernels
  c.optimizer.grad_clip_norm = 1.0  # RNNs' gradients spike on long sequences

  c.num_epochs = 3  # passes over the training reviews (390 steps each)
  c.steps_per_loop = 130  # a third of an epoch per compiled call
  c.log_every_steps = 130  # train metrics three times an epoch

  c.eval_every_steps = 390  # once an epoch
  c.checkpoint_every_steps = 390  # with the evaluation
  if smoke:  # seconds, for tests (with tfds.testing.mock_data)
    c.data.tokenizer = 'byte'
    c.data.seq_len = 32
    c.data.batch_size = 8
    c.data.eval_batch_size = 8
    for key, value in SMOKE_MODELS[model].items():
      c.model[key] = value
    c.optimizer.warmup_percent = 0.0
    c.num_epochs = 1
    c.num_steps = 8
    c.steps_per_loop = 4
    c.log_every_steps = 4
    c.eval_every_steps = 8
    c.checkpoint_every_steps = 8
  return c

