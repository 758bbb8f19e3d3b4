"""Python code -> a one-sentence summary (offline): each documented function and method of
the installed Python's standard library -> the first sentence of its docstring, as
code-summarization benchmarks pair them (CodeSearchNet's docstring task); scored by
ROUGE-1/2/L (rouge-score) and BLEU/chrF (sacrebleu).

  jaxlab train --config=experiments/stdlib_summaries.py --workdir=/tmp/jaxlab/stdlib_summaries
  jaxlab predict --workdir=/tmp/jaxlab/stdlib_summaries function.py

The source is the words of the function's name on a first line ('get_size' -> 'get
size': the summary often says them, and split they are the summary's own pieces), then
its code with the docstring removed and blanks folded (`python_functions.function_source`,
which `jaxlab predict` applies to a .py file too); the split is by module, so a test
function's module is never seen in training (Python 3.11: 6,106 training and 535
held-out functions). A SentencePiece vocabulary shared by code and English is trained
on the training pairs at the first start. Trivial baselines on the same held-out pairs
(benchmarks/seq2seq.py): the most frequent training summary, and the code itself.
`:smoke` trains a tiny model for a few steps, for tests.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)
  c = config_lib.defaults()
  c.task.name = 'seq2seq'  # text in, text out: teacher forcing, decoded for eval
  c.task.label_smoothing = 0.1  # share of each target token's probability spread over the vocabulary

  c.data.name = 'stdlib_summaries'  # read from this Python's standard library with `ast`
  c.data.tokenizer = 'sentencepiece'  # trained on the training pairs, kept in the workdir
  c.data.vocab_size = 4096  # pieces, shared by code and summaries: whole words, not '▁' + 'word'
  c.data.seq_len = 64  # source pieces (median 58): the name's words, the signature, the body's start
  c.data.target_len = 32  # summary pieces, end-of-sequence included (97% whole)
  c.data.batch_size = 32  # pairs per step
  c.data.eval_batch_size = 107  # 535 held-out functions in 5 batches

  c.model.name = 'transformer_seq2seq'  # encoder-decoder from transformer_lm's blocks
  c.model.num_layers = 3  # encoder blocks
  c.model.num_decoder_layers = 3  # decoder blocks
  c.model.embed_dim = 256  # residual width (3x the CPU's FLOP/s of 128 here)
  c.model.num_heads = 4  # query heads (64 wide)
  c.model.num_kv_heads = 2  # key/value heads (grouped-query attention)
  c.model.mlp_dim = 768  # SwiGLU hidden width
  c.model.dropout_rate = 0.1  # 6k training pairs: regularise
  c.model.share_embeddings = True  # one table: identifiers in code and words in summaries
  c.model.tie_embeddings = True  # logits from that table

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 2e-3  # peak
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_percent = 5.0
  c.optimizer.b2 = 0.98
  c.optimizer.weight_decay = 0.01
  c.optimizer.grad_clip_norm = 1.0

  c.num_epochs = 6  # passes over the training pairs
  c.steps_per_loop = 50
  c.log_every_steps = 191
  c.eval_every_steps = 0  # at the end
  c.checkpoint_every_steps = 1000

  c.decode.beam_size = 4  # eval and predict: beam search (1: greedy)
  c.decode.length_penalty = 0.6  # GNMT's alpha
  c.checkpoint.best_metric = 'eval/rougeL'
  c.checkpoint.best_mode = 'max'
  if smoke:  # seconds, for tests
    c.data.vocab_size = 400
    c.data.num_train = 128
    c.data.num_test = 16
    c.data.seq_len = 48
    c.data.target_len = 12
    c.data.batch_size = 16
    c.data.eval_batch_size = 16
    c.model.num_layers = 1
    c.model.num_decoder_layers = 1
    c.model.embed_dim = 32
    c.model.num_heads = 4
    c.model.mlp_dim = 64
    c.decode.beam_size = 2
    c.num_epochs = 1  # 8 steps
    c.steps_per_loop = 4
    c.log_every_steps = 4
    c.eval_every_steps = 8
    c.checkpoint_every_steps = 8
  return c
