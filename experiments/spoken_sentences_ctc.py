"""The offline speech recognition demo: sentences that ship with Python (the Zen of
Python and plain sentences of its reference documentation) said by espeak-ng voices,
transcribed by a small Conformer trained with CTC over characters.

  jaxlab train --config=experiments/spoken_sentences_ctc.py --workdir=/tmp/jaxlab/spoken_sentences

The test split holds out voices (jaxlab/data/espeak_sentences.py): 10 espeak-ng voice
variants, espeak-ng's default speaker among them, are never trained on; training hears
90 others, each saying 16 sentences in a drawn English accent, speed (140-210 wpm) and
pitch, with noise in three clips of four. The test's sentences are heard in training,
from other voices: the split measures recognising a new voice, not new words.
Evaluation decodes greedily and with a 4-beam CTC prefix beam search (eval prints both).
Training batches come from 4 length buckets (data.num_buckets; docs/speech_recognition.md),
each padded to its bucket's bound instead of 4.5 s: a train step does 2/3 of the FLOPs of
one padded to 4.5 s, and ran 1.44x as many steps a second in an interleaved comparison
(load 5 on 2 CPU cores), for 4 compiled step shapes instead of one.

Measured (espeak-ng 1.51, benchmarks/speech_recognition.py): held-out voices' WER 23.5%
with beam search, 24.5% greedy (CER 4.6%, 4.8%) after 1620 steps; the most frequent
training transcript scores WER 118%. 6.6 minutes of `jaxlab train` on 2 CPU cores at load 5
(another training and a test suite beside it), the clips cached (speaking them: under 90 s,
once). Before length buckets (every batch padded to 4.5 s, 15-step blocks): WER 20.0% beam,
20.4% greedy, 5.6 minutes at load 3-4; the bucketed run was behind at every evaluation
(greedy WER 0.705 / 0.336 / 0.259 / 0.245 at steps 450 / 900 / 1350 / 1620, against
0.645 / 0.288 / 0.207 / 0.204).

Needs espeak-ng (`apt-get install espeak-ng`); no download. The first run speaks the
clips once (cached under data.cache_dir).
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.task.name = 'speech_recognition'
  c.data.name = 'spoken_sentences'  # up to 4.5 s at 16 kHz, held-out voices in the test
  c.data.batch_size = 16
  c.data.tokenizer = 'byte'  # CTC over characters (a-z, space, apostrophe); or 'sentencepiece'
  # Training batches from 4 length buckets split at the durations' quartiles, each padded
  # only to its bucket's bound (not to the 4.5 s of the longest): the train step compiles
  # once per bucket, 4 shapes in all. Evaluation pads to the longest.
  c.data.num_buckets = 4

  c.model.name = 'speech_ctc'
  c.model.encoder = 'conformer'  # or 'transformer', 'gru' (cheaper)
  c.model.num_layers = 3  # encoder blocks
  c.model.embed_dim = 96  # D of the encoder
  c.model.num_heads = 4  # attention heads (D / heads wide)
  c.model.mlp_dim = 192  # hidden width of the feed-forward modules (SwiGLU)
  c.model.conv_kernel = 15  # the conformer's depthwise convolution, in 40 ms frames
  c.model.subsample_features = 16  # channels of the two stride-2 subsampling convs
  c.model.n_mels = 40  # log-mel bins of the front end (32 ms windows, 10 ms hop)
  c.model.dropout_rate = 0.1

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_percent = 8.0
  c.optimizer.weight_decay = 1e-2
  c.optimizer.grad_clip_norm = 5.0

  c.num_epochs = 18
  c.steps_per_loop = 5  # one compiled call, of one length bucket (shorter blocks mix fewer)
  c.log_every_steps = 45
  c.eval_every_steps = 450
  c.decode.beam_size = 4  # eval: CTC prefix beam search with 4 beams (and greedy beside it)

  c.checkpoint_every_steps = 450
  c.checkpoint.best_metric = 'eval/wer'
  c.checkpoint.best_mode = 'min'
  if smoke:  # seconds, for tests: a handful of sentences
    c.data.num_train = 24
    c.data.num_test = 8
    c.data.batch_size = 4
    c.data.num_buckets = 2
    c.model.num_layers = 1
    c.model.embed_dim = 32
    c.model.subsample_features = 8
    c.model.dropout_rate = 0.0
    c.optimizer.schedule = 'constant'
    c.num_steps = 6
    c.steps_per_loop = 3
    c.log_every_steps = 3
    c.eval_every_steps = 6
    c.checkpoint_every_steps = 3
    c.plots = False
  return c
