"""A 36M-parameter Transformer language model on One Billion Words (TFDS lm1b).

  jaxlab train --config=experiments/lm1b_lm.py:smoke --workdir=/tmp/jaxlab/lm1b_smoke

The full run, `jaxlab train --config=experiments/lm1b_lm.py --workdir=/tmp/jaxlab/lm1b_lm`,
needs lm1b prepared once in ArrayRecord format (`tfds build lm1b
--file_format=array_record`, see the README's Data section; --config.data.data_dir if it
is not under ~/tensorflow_datasets). The sentences are tokenized by a 16k-piece
SentencePiece model trained on the training text at the first start (saved in the
workdir), packed into rows of 128 tokens with sentence boundaries masked. The best
checkpoint is kept by eval/loss (nats per SentencePiece token).

`:smoke` runs anywhere in seconds: the same recipe, shrunk, on the embedded python_docs
text (no download); the tests run it on lm1b's TFDS mock data.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.task.name = 'language_model'  # next-token prediction on packed text

  c.data.name = 'lm1b'  # TFDS One Billion Words, read from ArrayRecord files
  c.data.tokenizer = 'sentencepiece'  # trained on the training text at the first start
  c.data.vocab_size = 16384  # SentencePiece pieces (a power of two: shards over 'tensor')
  c.data.seq_len = 128  # tokens per packed row (~4 sentences)
  c.data.batch_size = 256  # rows per step: 32k tokens
  c.data.eval_batch_size = 512  # rows per evaluation batch

  c.model.name = 'transformer_lm'  # decoder-only: RoPE, RMSNorm, SwiGLU, causal attention
  c.model.num_layers = 8  # Transformer blocks
  c.model.embed_dim = 512  # D, the residual stream's width
  c.model.num_heads = 8  # query heads of width 64
  c.model.num_kv_heads = 8  # key/value heads (8: plain multi-head attention)
  c.model.mlp_dim = 1536  # SwiGLU hidden width (3 D: the parameters of a 4 D plain MLP)
  c.model.dropout_rate = 0.0  # lm1b is large: one pass over it does not overfit
  c.model.tie_embeddings = True  # logits from the embedding table (saves 8.4M parameters)
  c.model.scan_layers = True  # blocks stacked and run by nnx.scan (False: a Python loop)
  c.model.remat = 'none'  # per-layer rematerialisation; 'dots' or 'full' to save memory

  c.optimizer.name = 'adamw'  # decoupled weight decay
  c.optimizer.learning_rate = 2e-3  # peak learning rate
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, then cosine decay
  c.optimizer.warmup_steps = 1000  # warmup length in steps
  c.optimizer.end_factor = 0.1  # final learning rate: a tenth of the peak
  c.optimizer.b2 = 0.95  # a shorter second-moment memory, steadier for Transformers
  c.optimizer.weight_decay = 0.1  # on kernels only
  c.optimizer.grad_clip_norm = 1.0  # clip gradients to this global norm

  c.num_steps = 30_000  # ~1B tokens, about one pass over the training text
  c.steps_per_loop = 100  # train steps per compiled call
  c.log_every_steps = 100  # train metrics interval

  c.eval_every_steps = 2000  # evaluation on the whole test split

  c.checkpoint_every_steps = 2000  # checkpoint interval
  c.checkpoint.best_metric = 'eval/loss'  # keep the checkpoint of the lowest eval loss
  c.checkpoint.best_mode = 'min'  # lower is better
  if smoke:
    c.data.name = 'python_docs'  # embedded text: no download
    c.data.vocab_size = 512  # a small SentencePiece model trains in about a second
    c.data.seq_len = 64  # short rows
    c.data.batch_size = 16  # small batches
    c.data.eval_batch_size = 32  # small evaluation batches
    c.data.num_test = 64  # evaluate on the first 64 test rows
    c.model.num_layers = 2  # two blocks: the scan still runs over a layer axis
    c.model.embed_dim = 64  # narrow residual stream
    c.model.num_heads = 4  # heads of width 16
    c.model.num_kv_heads = 2  # grouped-query attention, two query heads per key/value head
    c.model.mlp_dim = 128  # narrow SwiGLU
    c.optimizer.learning_rate = 3e-3  # a tiny model takes a larger step
    c.optimizer.warmup_steps = 5  # short warmup
    c.num_steps = 40  # a few seconds on a CPU
    c.steps_per_loop = 20  # two compiled calls
    c.log_every_steps = 20  # two train records
    c.eval_every_steps = 40  # one evaluation, at the end
    c.checkpoint_every_steps = 40  # one checkpoint, at the end
  return c
