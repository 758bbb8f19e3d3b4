"""News summarization on CNN/DailyMail (TFDS cnn_dailymail 3.4.0, non-anonymized; streamed):
article -> highlights with a Transformer encoder-decoder over a shared SentencePiece
vocabulary, scored by ROUGE-1/2/L (rouge-score, stemming on).

  tfds build cnn_dailymail --file_format=array_record --data_dir=DIR  # once, online
  jaxlab train --config=experiments/cnn_dailymail.py --config.data.data_dir=DIR --workdir=/tmp/jaxlab/cnn_dailymail

Source: See et al. 2017, "Get To The Point: Summarization with Pointer-Generator Networks"
(Table 1, non-anonymized test set, articles cut to 400 tokens, summaries to 100): their
pointer-generator with coverage scores ROUGE-1 39.53, ROUGE-2 17.28, ROUGE-L 36.38; the
lead-3 baseline 40.34 / 17.70 / 36.57. This recipe has no copy mechanism (a plain
Transformer, which that paper's sequence-to-sequence baseline resembles at 31.33 / 11.81 /
28.83 with a 150k vocabulary), so expect a figure between the two. 287,113 training
articles, streamed and tokenized as they are read. `:smoke` shrinks it to a few steps
(with mock data, for tests).
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)
  c = config_lib.defaults()
  c.task.name = 'seq2seq'  # text in, text out: teacher forcing, decoded for eval
  c.task.label_smoothing = 0.1

  c.data.name = 'cnn_dailymail'  # TFDS cnn_dailymail, prepared in ArrayRecord format
  c.data.placement = 'stream'  # read by Grain and tokenized as it trains, never held whole
  c.data.tokenizer = 'sentencepiece'  # trained on the first 200k training pairs, both sides
  c.data.vocab_size = 32000  # pieces shared by articles and highlights
  c.data.seq_len = 512  # article pieces (~400 words, as See et al. cut them)
  c.data.target_len = 128  # highlight pieces (~100 words), end-of-sequence included
  c.data.batch_size = 64  # articles per step
  c.data.eval_batch_size = 64
  c.data.num_test = 11490  # the whole test split

  c.model.name = 'transformer_seq2seq'  # encoder-decoder from transformer_lm's blocks
  c.model.num_layers = 6  # encoder blocks
  c.model.num_decoder_layers = 6  # decoder blocks
  c.model.embed_dim = 512  # residual width
  c.model.num_heads = 8  # query heads (64 wide)
  c.model.mlp_dim = 2048  # SwiGLU hidden width
  c.model.dropout_rate = 0.1
  c.model.share_embeddings = True  # one table: the highlights reuse the article's words
  c.model.tie_embeddings = True

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 5e-4  # peak
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_steps = 4000
  c.optimizer.b2 = 0.98
  c.optimizer.grad_clip_norm = 1.0

  c.num_steps = 100_000
  c.steps_per_loop = 100
  c.log_every_steps = 500
  c.eval_every_steps = 20_000
  c.checkpoint_every_steps = 5000

  c.decode.beam_size = 4  # as See et al.
  c.decode.length_penalty = 1.0  # summaries are long: favour finishing them
  c.decode.max_len = 128
  c.checkpoint.best_metric = 'eval/rougeL'
  c.checkpoint.best_mode = 'max'
  if smoke:  # a few steps, for tests
    c.data.vocab_size = 300
    c.data.seq_len = 48
    c.data.target_len = 16
    c.data.batch_size = 8
    c.data.eval_batch_size = 8
    c.data.num_train = 64
    c.data.num_test = 8
    c.model.num_layers = 1
    c.model.num_decoder_layers = 1
    c.model.embed_dim = 32
    c.model.num_heads = 4
    c.model.mlp_dim = 64
    c.optimizer.warmup_steps = 1
    c.decode.beam_size = 2
    c.decode.max_len = 16
    c.num_steps = 4
    c.steps_per_loop = 2
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
  return c
