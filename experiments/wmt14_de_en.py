"""German -> English news translation on WMT14 (TFDS wmt14_translate/de-en, streamed): a
Transformer-base encoder-decoder over a shared 32k SentencePiece vocabulary, scored on
newstest2014 by sacrebleu's BLEU and chrF.

  tfds build wmt14_translate/de-en --file_format=array_record --data_dir=DIR  # once, online
  jaxlab train --config=experiments/wmt14_de_en.py --config.data.data_dir=DIR --workdir=/tmp/jaxlab/wmt14_de_en

Source: Vaswani et al. 2017, "Attention Is All You Need" (Table 2): the base model (6+6
layers, 512 wide, 8 heads, 2048 FFN, shared 37k BPE, 100k steps of 25k source + 25k target
tokens on 8 P100s) reaches 27.3 BLEU on newstest2014 English->German. This recipe trains the
reverse direction, for which that paper reports no figure, with jaxlab's blocks (RMSNorm,
RoPE, SwiGLU, GQA) in place of the original's, and with sacrebleu's detokenized BLEU (papers
of that time report tokenized BLEU, a point or so higher); expect a figure in the high
20s, not a reproduction. 4.5M training pairs, streamed and tokenized as they are read.
`:smoke` shrinks it to a few steps (with mock data, for tests).
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)
  c = config_lib.defaults()
  c.task.name = 'seq2seq'  # text in, text out: teacher forcing, decoded for eval
  c.task.label_smoothing = 0.1  # as Vaswani et al.

  c.data.name = 'wmt14_translate'  # TFDS wmt14_translate/de-en, prepared in ArrayRecord format
  c.data.placement = 'stream'  # read by Grain and tokenized as it trains, never held whole
  c.data.tokenizer = 'sentencepiece'  # trained on the first 200k training pairs, both sides
  c.data.vocab_size = 32000  # pieces shared by German and English
  c.data.seq_len = 128  # source pieces (longer sentences are cut)
  c.data.target_len = 128  # target pieces, end-of-sequence included
  c.data.batch_size = 256  # pairs per step (~25k tokens a side, as the paper's batches)
  c.data.eval_batch_size = 256
  c.data.num_test = 3003  # newstest2014: all of it

  c.model.name = 'transformer_seq2seq'  # encoder-decoder from transformer_lm's blocks
  c.model.num_layers = 6  # encoder blocks (Transformer base)
  c.model.num_decoder_layers = 6  # decoder blocks
  c.model.embed_dim = 512  # residual width
  c.model.num_heads = 8  # query heads (64 wide)
  c.model.mlp_dim = 2048  # SwiGLU hidden width
  c.model.dropout_rate = 0.1
  c.model.share_embeddings = True  # one table for both languages (shared vocabulary)
  c.model.tie_embeddings = True

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 7e-4  # peak
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_steps = 4000  # as the paper's inverse-square-root schedule's warmup
  c.optimizer.b2 = 0.98
  c.optimizer.grad_clip_norm = 1.0

  c.num_steps = 100_000
  c.steps_per_loop = 100
  c.log_every_steps = 500
  c.eval_every_steps = 10_000
  c.checkpoint_every_steps = 5000

  c.decode.beam_size = 4  # as the paper
  c.decode.length_penalty = 0.6  # as the paper (GNMT's alpha)
  c.checkpoint.best_metric = 'eval/bleu'
  c.checkpoint.best_mode = 'max'
  if smoke:  # a few steps, for tests
    c.data.vocab_size = 300
    c.data.seq_len = 24
    c.data.target_len = 24
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
    c.num_steps = 4
    c.steps_per_loop = 2
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
  return c
