"""A Conformer trained with CTC over characters on LibriSpeech's 960 hours (TFDS
librispeech, streamed from its ArrayRecord files, decoded by Grain's workers), scored by
WER and CER on test_clean with a 4-beam CTC prefix beam search (greedy beside it).

  jaxlab train --config=experiments/librispeech_conformer.py --workdir=/tmp/jaxlab/librispeech \\
      --config.data.data_dir=$HOME/tensorflow_datasets

Reference figure: Conformer (S), 10.3M parameters, 16 blocks of width 144 with 4 heads
and kernel 32: test-clean WER 2.7%, test-other 6.3% without a language model (Gulati et
al. 2020, "Conformer: Convolution-augmented Transformer for Speech Recognition", Table
2). The reference decodes with an RNN transducer, on 80 log-mel bins with SpecAugment
for about 200 epochs; this recipe is CTC over characters on 40 bins without SpecAugment,
so expect a higher WER (CTC Conformers of this size report roughly 3-4% on test-clean
without a language model). Utterances over 17 s (data.max_audio_seconds) are skipped and
counted. Prepare the data once with
`tfds build librispeech --file_format=array_record`. The smoke variant trains a tiny
Conformer on the offline spoken_sentences set for a few steps.
"""

from jaxlab import config as config_lib

STEPS_PER_EPOCH = 281241 // 64


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.task.name = 'speech_recognition'  # CTC; WER and CER with jiwer
  c.data.name = 'librispeech'  # train_clean100 + train_clean360 + train_other500; test_clean
  c.data.placement = 'stream'  # decoded FLAC read by Grain's workers while training
  c.data.max_audio_seconds = 17.0  # every batch padded to 17 s; longer utterances skipped
  c.data.batch_size = 64  # utterances per step
  c.data.eval_batch_size = 40  # test_clean's 2620 utterances in 66 batches
  c.data.tokenizer = 'byte'  # characters: a-z, space, apostrophe (+ the CTC blank)

  c.model.name = 'speech_ctc'  # log-mel -> 4x conv subsampling -> encoder -> CTC head
  c.model.encoder = 'conformer'  # Conformer blocks (Gulati et al. 2020)
  c.model.num_layers = 16  # as Conformer (S)
  c.model.embed_dim = 144  # as Conformer (S)
  c.model.num_heads = 4  # as Conformer (S)
  c.model.conv_kernel = 31  # the depthwise convolution over 40 ms frames (32 in the paper; odd here)
  c.model.subsample_features = 144  # channels of the two stride-2 subsampling convs
  c.model.n_mels = 40  # log-mel bins of the front end (the paper: 80)
  c.model.dropout_rate = 0.1  # as the paper

  c.optimizer.name = 'adamw'  # Adam, as the paper (with weight decay)
  c.optimizer.b2 = 0.98  # as the paper
  c.optimizer.eps = 1e-9  # as the paper
  c.optimizer.learning_rate = 2e-3  # peak
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay
  c.optimizer.warmup_steps = 10000  # the paper's warmup
  c.optimizer.weight_decay = 1e-6  # light, on kernels
  c.optimizer.grad_clip_norm = 5.0  # early CTC gradients can be large

  c.num_epochs = 100  # ~440,000 steps
  c.steps_per_loop = 50  # train steps per compiled call (on accelerators)
  c.log_every_steps = 500  # train metrics record interval
  c.eval_every_steps = STEPS_PER_EPOCH  # WER on test_clean every epoch
  c.decode.beam_size = 4  # CTC prefix beam search at eval and predict (greedy beside it)

  c.checkpoint_every_steps = STEPS_PER_EPOCH  # every epoch
  c.checkpoint.best_metric = 'eval/wer'  # keep the lowest-WER checkpoint
  c.checkpoint.best_mode = 'min'
  if smoke:  # seconds on a CPU: the offline spoken_sentences set, a tiny Conformer
    c.data.name = 'spoken_sentences'  # spoken once by espeak-ng into data.cache_dir
    c.data.placement = 'auto'  # small: held on the device
    c.data.max_audio_seconds = 4.5
    c.data.num_train = 16
    c.data.num_test = 8
    c.data.batch_size = 8
    c.data.eval_batch_size = 8
    c.model.num_layers = 1
    c.model.embed_dim = 32
    c.model.conv_kernel = 7
    c.model.subsample_features = 8
    c.optimizer.warmup_steps = 2
    c.num_steps = 4
    c.steps_per_loop = 2
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
    c.plots = False
  return c
