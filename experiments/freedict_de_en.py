"""German -> English words and phrases from the FreeDict dictionary (offline): an
encoder-decoder Transformer over UTF-8 bytes, scored by chrF and BLEU (sacrebleu).

  apt-get install -y dict-freedict-deu-eng   # once (Debian's package; no download at run time)
  jaxlab train --config=experiments/freedict_de_en.py --workdir=/tmp/jaxlab/freedict_de_en
  echo "Wörterbuch" | jaxlab predict --workdir=/tmp/jaxlab/freedict_de_en -

Each German headword (a word or a multi-word phrase) -> its first English sense, split
by headword hash: 346,708 training and 38,590 held-out pairs, of which eval decodes the
first data.num_test. A test headword is new, but its inflections may have been seen
(abblocken in training, abblockend in test). Trivial baselines on the same held-out
pairs (benchmarks/seq2seq.py): copying the German source, and the most frequent
training output. `:smoke` trains a tiny model for a few steps, for tests.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)
  c = config_lib.defaults()
  c.task.name = 'seq2seq'  # text in, text out: teacher forcing, decoded for eval
  c.task.label_smoothing = 0.1  # share of each target token's probability spread over the vocabulary

  c.data.name = 'freedict_de_en'  # Debian's dict-freedict-deu-eng, read from /usr/share/dictd
  c.data.tokenizer = 'byte'  # UTF-8 bytes on both sides (one vocabulary of 259)
  c.data.seq_len = 32  # source bytes (90% of headwords fit whole; longer ones are cut)
  c.data.target_len = 32  # target bytes, end-of-sequence included
  c.data.num_test = 1000  # held-out pairs decoded at each evaluation
  c.data.batch_size = 64  # pairs per step
  c.data.eval_batch_size = 250

  c.model.name = 'transformer_seq2seq'  # encoder-decoder from transformer_lm's blocks
  c.model.num_layers = 3  # encoder blocks
  c.model.num_decoder_layers = 3  # decoder blocks
  c.model.embed_dim = 128  # residual width
  c.model.num_heads = 4  # query heads (32 wide)
  c.model.num_kv_heads = 2  # key/value heads (grouped-query attention)
  c.model.mlp_dim = 384  # SwiGLU hidden width
  c.model.share_embeddings = True  # one byte table for German and English
  c.model.tie_embeddings = True  # logits from that table

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 3e-3  # peak
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_percent = 5.0
  c.optimizer.b2 = 0.98
  c.optimizer.weight_decay = 0.01
  c.optimizer.grad_clip_norm = 1.0

  c.num_steps = 1200  # 76,800 pairs: a fifth of a pass, what 15 minutes on 2 busy cores allow
  c.steps_per_loop = 50
  c.log_every_steps = 100
  c.eval_every_steps = 0  # at the end: decoding the test pairs takes a while
  c.checkpoint_every_steps = 600

  c.decode.beam_size = 4  # eval and predict: beam search (1: greedy)
  c.decode.length_penalty = 0.6  # GNMT's alpha
  c.checkpoint.best_metric = 'eval/chrf'
  c.checkpoint.best_mode = 'max'
  if smoke:  # seconds, for tests
    c.data.num_train = 256
    c.data.num_test = 16
    c.data.seq_len = 24
    c.data.target_len = 16
    c.data.batch_size = 16
    c.data.eval_batch_size = 16
    c.model.num_layers = 1
    c.model.num_decoder_layers = 1
    c.model.embed_dim = 32
    c.model.num_heads = 4
    c.model.num_kv_heads = 2
    c.model.mlp_dim = 64
    c.decode.beam_size = 2
    c.num_steps = 8
    c.steps_per_loop = 4
    c.log_every_steps = 4
    c.eval_every_steps = 8
    c.checkpoint_every_steps = 8
  return c
