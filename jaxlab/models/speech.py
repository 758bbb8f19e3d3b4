"""Speech classifiers over the raw waveform: a log-mel front end (`log_mel`) inside the
model, then a conv stack (`speech_cnn`) or conv subsampling and a GRU (`speech_gru`).

The input is float32 audio [B, num_samples] at `sample_rate` Hz (it must be the data
set's rate: all jaxlab speech sets are 16 kHz). Front-end options, shared by both:
  sample_rate (16000), n_fft (512: 32 ms windows), hop_length (160: 10 ms), n_mels (40),
  log_floor (1e-6: the floor under the mel power before the log), normalize (True: each
  example's log-mel to zero mean and unit variance, so loudness does not matter).
speech_cnn: conv_features ((32, 64, 64): 3x3 convs over time x mel, each then 2x2
  max-pooling), batch_norm (False: BatchNorm after each conv), dense_features ((64,):
  hidden layers after the global average pool), dropout_rate, kernel_init.
speech_gru: conv_features (64: one conv over time, stride 2, mel bins as its input
  channels), hidden_size (128), num_layers (1), dense_features (()), dropout_rate,
  kernel_init. The GRU's outputs are averaged over time before the head.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers, log_mel
from jaxlab.models.conv import conv_general_dilated_canonical_vjp

FRONT_END = dict(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, log_floor=1e-6,
                 normalize=True)


class LogMel:
  """The parameter-free front end: waveform [B, T] -> features [B, frames, n_mels]."""

  def __init__(self, sample_rate, n_fft, hop_length, n_mels, log_floor, normalize):
    self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
    self.n_mels, self.log_floor, self.normalize = n_mels, log_floor, normalize

  def num_frames(self, num_samples):
    return log_mel.num_frames(num_samples, self.hop_length)

  def __call__(self, audio_BxT, dtype):
    # In float32 whatever the compute dtype: bfloat16 FFTs lose the quiet bins.
    x_BxNxM = log_mel.log_mel(audio_BxT.astype(jnp.float32), sample_rate=self.sample_rate,
                              n_fft=self.n_fft, hop_length=self.hop_length,
                              n_mels=self.n_mels, floor=self.log_floor)
    if self.normalize:
      mean_B11 = x_BxNxM.mean(axis=(1, 2), keepdims=True)
      std_B11 = x_BxNxM.std(axis=(1, 2), keepdims=True)
      x_BxNxM = (x_BxNxM - mean_B11) / (std_B11 + 1e-5)
    return x_BxNxM.astype(dtype)


def _front_end(options):
  return LogMel(**{k: options.pop(k, v) for k, v in FRONT_END.items()})


class SpeechCNN(nnx.Module):

  def __init__(self, input_shape, num_classes, *, conv_features=(32, 64, 64), batch_norm=False,
               dense_features=(64,), dropout_rate=0.0, kernel_init='lecun_normal',
               dtype=jnp.float32, rngs: nnx.Rngs, **front_end):
    self.front_end = nnx.static(_front_end(front_end))
    self.dtype = dtype
    channels = 1
    self.convs, self.norms = nnx.List(), nnx.List()
    for features in conv_features:
      self.convs.append(nnx.Conv(
          channels, features, (3, 3), padding='SAME',
          kernel_init=layers.kernel_init(kernel_init, (None, None, 'conv_in', 'conv_out')),
          bias_init=layers.bias_init('conv_out'), dtype=dtype,
          conv_general_dilated=conv_general_dilated_canonical_vjp, rngs=rngs))
      if batch_norm:
        self.norms.append(nnx.BatchNorm(
            features, scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ('conv_out',)),
            bias_init=layers.bias_init('conv_out'), dtype=dtype, rngs=rngs))
      channels = features
    self.dense, self.head = layers.classifier(channels, dense_features, num_classes,
                                              init=kernel_init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, audio_BxT, *, rngs=None):
    x = self.front_end(audio_BxT, self.dtype)[..., None]  # [B, frames, mels, 1]
    for index, conv in enumerate(self.convs):
      x = conv(x)
      if self.norms:
        x = self.norms[index](x)
      x = nnx.max_pool(jax.nn.relu(x), window_shape=(2, 2), strides=(2, 2), padding='SAME')
    x_BxC = x.mean(axis=(1, 2))
    return layers.classify(self.dense, self.head, self.dropout, x_BxC, rngs)


class SpeechGRU(nnx.Module):

  def __init__(self, input_shape, num_classes, *, conv_features=64, hidden_size=128,
               num_layers=1, dense_features=(), dropout_rate=0.0, kernel_init='lecun_normal',
               dtype=jnp.float32, rngs: nnx.Rngs, **front_end):
    self.front_end = nnx.static(_front_end(front_end))
    self.dtype = dtype
    self.subsample = nnx.Conv(
        self.front_end.n_mels, conv_features, (3,), strides=(2,), padding='SAME',
        kernel_init=layers.kernel_init(kernel_init, (None, 'conv_in', 'conv_out')),
        bias_init=layers.bias_init('conv_out'), dtype=dtype, rngs=rngs)
    self.grus = nnx.List()
    features = conv_features
    for _ in range(num_layers):
      cell = nnx.GRUCell(features, hidden_size,
                         kernel_init=layers.kernel_init(kernel_init, ('embed', 'mlp')),
                         recurrent_kernel_init=nnx.with_partitioning(
                             nnx.initializers.orthogonal(), ('embed', 'mlp')),
                         bias_init=layers.bias_init('mlp'), dtype=dtype, rngs=rngs)
      self.grus.append(nnx.RNN(cell, rngs=False))  # no dropout inside: no RNG state
      features = hidden_size
    self.dense, self.head = layers.classifier(hidden_size, dense_features, num_classes,
                                              init=kernel_init, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, audio_BxT, *, rngs=None):
    x_BxNxM = self.front_end(audio_BxT, self.dtype)
    x_BxLxD = jax.nn.relu(self.subsample(x_BxNxM))
    for gru in self.grus:
      carry_BxH = jnp.zeros((x_BxLxD.shape[0], gru.cell.hidden_features), x_BxLxD.dtype)
      x_BxLxD = gru(x_BxLxD, initial_carry=carry_BxH)
    return layers.classify(self.dense, self.head, self.dropout, x_BxLxD.mean(axis=1), rngs)


def _check(name, options, sizes, counts):
  layers.check_options(name, options, sizes=sizes, counts=counts, rates=('dropout_rate',),
                       choices=dict(kernel_init=tuple(layers.INITIALIZERS)))
  unknown = sorted(set(options) - set(FRONT_END) - set(sizes) - set(counts)
                   - {'dropout_rate', 'kernel_init', 'batch_norm', 'dtype'})
  if unknown:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'Model {name!r} has no option(s) {", ".join(unknown)}; its options are '
                    f'listed in jaxlab/models/speech.py. Remove them from config.model.')
  layers.check_options(name, options, counts=('sample_rate', 'n_fft', 'hop_length', 'n_mels'))


def create_cnn(input_shape, num_classes, *, rngs, **kwargs):
  _check('speech_cnn', kwargs, sizes=('conv_features', 'dense_features'), counts=())
  return SpeechCNN(input_shape, num_classes, rngs=rngs, **kwargs)


def create_gru(input_shape, num_classes, *, rngs, **kwargs):
  _check('speech_gru', kwargs, sizes=('dense_features',),
         counts=('conv_features', 'hidden_size', 'num_layers'))
  return SpeechGRU(input_shape, num_classes, rngs=rngs, **kwargs)
