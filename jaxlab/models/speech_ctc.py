"""Speech recognition with CTC (`speech_ctc`): waveform -> per-frame token logits.

  audio [B, T] -> log-mel (jaxlab.models.speech's front end, normalised over each
  utterance's own frames) -> 2 x (3x3 conv, stride 2 in time and mel, ReLU): 4x fewer
  frames -> Linear to D -> encoder blocks -> RMSNorm -> Linear head [B, T/4, V]

V counts the CTC blank (id 0) and the tokens (jaxlab.data.transcripts). The encoder
(`encoder`): 'conformer' (Gulati et al. 2020: half feed-forward, self-attention,
convolution module, half feed-forward, norm), 'transformer' (transformer_encoder's
blocks) or 'gru' (a GRU, cheapest). Attention has rotary positions (relative, as
Conformer's relative positional encoding is) and masks every padded frame.

Padding changes nothing: the model takes each utterance's length in samples, and every
layer sees padded frames as zeros (normalisation over valid frames, explicit conv
padding, zeroed outputs past the length, masked attention keys, a forward GRU), so the
logits of the valid frames do not depend on how much padding follows. `output_lengths`
says how many frames are valid.

Options: encoder ('conformer'), num_layers (4), embed_dim (144), num_heads (4), mlp_dim
(4 D), conv_kernel (15: the conformer's depthwise convolution, in output frames),
subsample_features (64: channels of the subsampling convs), dropout_rate (0),
rope_base (10000), kernel_init ('lecun_normal'), attention_implementation (None), and
the front end's (sample_rate, n_fft, hop_length, n_mels, log_floor).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.models import layers, speech, text_encoder, transformer
from jaxlab.models.conv import conv_general_dilated_canonical_vjp

ENCODERS = ('conformer', 'transformer', 'gru')
DEFAULTS = dict(encoder='conformer', num_layers=4, embed_dim=144, num_heads=4, mlp_dim=None,
                conv_kernel=15, subsample_features=64, dropout_rate=0.0, rope_base=10000.0,
                kernel_init='lecun_normal', attention_implementation=None)


def subsampled(length):
  """Frames after one stride-2 conv with one frame of padding each side: ceil(n / 2)."""
  return (length + 1) // 2


def output_lengths(num_samples_B, hop_length):
  """Valid output frames of utterances of these many samples (int32)."""
  frames = 1 + num_samples_B.astype(jnp.int32) // hop_length
  return subsampled(subsampled(frames))


def frame_mask(lengths_B, num_frames):
  return jnp.arange(num_frames)[None, :] < lengths_B[:, None]


class DepthwiseConv(nnx.Module):
  """A depthwise convolution over time ('SAME', odd kernel) as a sum of shifted products:
  on CPUs, XLA's grouped convolution (feature_group_count = channels) and its gradient
  run several times slower than these few fused multiply-adds."""

  def __init__(self, dim, kernel, *, init, dtype, rngs):
    fan_in = nnx.initializers.variance_scaling(1.0, 'fan_in', 'normal' if init != 'glorot_uniform'
                                               else 'uniform', in_axis=0, out_axis=())
    self.kernel = nnx.Param(nnx.with_partitioning(fan_in, (None, 'embed'))(
        rngs.params(), (kernel, dim)))
    self.bias = nnx.Param(layers.bias_init('embed')(rngs.params(), (dim,)))
    self.dtype = dtype

  def __call__(self, x_BxLxD):
    kernel_KxD = self.kernel[...].astype(self.dtype)
    width, length = kernel_KxD.shape[0], x_BxLxD.shape[1]
    padded_BxPxD = jnp.pad(x_BxLxD, ((0, 0), (width // 2, width - 1 - width // 2), (0, 0)))
    y_BxLxD = sum(padded_BxPxD[:, j:j + length] * kernel_KxD[j] for j in range(width))
    return y_BxLxD + self.bias[...].astype(self.dtype)


class ConvolutionModule(nnx.Module):
  """Conformer's: pointwise conv to 2D, GLU, depthwise conv over time, norm, swish,
  pointwise conv. LayerNorm instead of BatchNorm, so padding never enters a statistic."""

  def __init__(self, dim, kernel, *, init, dtype, rngs):
    self.norm = transformer.rms_norm(dim, dtype=dtype, rngs=rngs)
    self.expand = layers.dense(dim, 2 * dim, ('embed', 'mlp'), init=init, dtype=dtype, rngs=rngs)
    self.depthwise = DepthwiseConv(dim, kernel, init=init, dtype=dtype, rngs=rngs)
    self.depth_norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs,
                                    scale_init=nnx.with_partitioning(
                                        nnx.initializers.ones_init(), ('embed',)),
                                    bias_init=layers.bias_init('embed'))
    # ('mlp', 'embed'): a kernel cannot name one mesh axis twice.
    self.project = layers.dense(dim, dim, ('mlp', 'embed'), init=init, dtype=dtype, rngs=rngs)

  def __call__(self, x_BxLxD, mask_BxLx1):
    x_BxLxD = jax.nn.glu(self.expand(self.norm(x_BxLxD)), axis=-1) * mask_BxLx1
    x_BxLxD = jax.nn.swish(self.depth_norm(self.depthwise(x_BxLxD)))
    return self.project(x_BxLxD)


class ConformerBlock(nnx.Module):

  def __init__(self, dim, num_heads, mlp_dim, conv_kernel, *, dropout_rate, init,
               attention_implementation, dtype, rngs):
    ffn = lambda: (transformer.rms_norm(dim, dtype=dtype, rngs=rngs),
                   transformer.SwiGLU(dim, mlp_dim, init=init, dtype=dtype, rngs=rngs))
    self.ffn1_norm, self.ffn1 = ffn()
    self.attention_norm = transformer.rms_norm(dim, dtype=dtype, rngs=rngs)
    self.attention = text_encoder.BidirectionalAttention(
        dim, num_heads, num_heads, init=init, implementation=attention_implementation,
        dtype=dtype, rngs=rngs)
    self.conv = ConvolutionModule(dim, conv_kernel, init=init, dtype=dtype, rngs=rngs)
    self.ffn2_norm, self.ffn2 = ffn()
    self.final_norm = transformer.rms_norm(dim, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x_BxLxD, angles, mask_BxL, rngs=None):
    drop = lambda y: self.dropout(y, rngs=rngs)
    mask_BxLx1 = mask_BxL[..., None].astype(x_BxLxD.dtype)
    x_BxLxD = x_BxLxD + 0.5 * drop(self.ffn1(self.ffn1_norm(x_BxLxD)))
    x_BxLxD = x_BxLxD + drop(self.attention(self.attention_norm(x_BxLxD), angles,
                                            mask_BxL[:, None, None, :]))
    x_BxLxD = x_BxLxD + drop(self.conv(x_BxLxD, mask_BxLx1))
    x_BxLxD = x_BxLxD + 0.5 * drop(self.ffn2(self.ffn2_norm(x_BxLxD)))
    return self.final_norm(x_BxLxD) * mask_BxLx1


class TransformerBlock(text_encoder.EncoderBlock):
  """transformer_encoder's block, its outputs past the length zeroed."""

  def __call__(self, x_BxLxD, angles, mask_BxL, rngs=None):
    y_BxLxD = super().__call__(x_BxLxD, angles, mask_BxL[:, None, None, :], rngs)
    return y_BxLxD * mask_BxL[..., None].astype(y_BxLxD.dtype)


class GRUBlock(nnx.Module):
  """A forward GRU over the frames (padding comes after the valid ones: it cannot leak)."""

  def __init__(self, dim, *, init, dtype, rngs):
    cell = nnx.GRUCell(dim, dim, kernel_init=layers.kernel_init(init, ('embed', 'mlp')),
                       recurrent_kernel_init=nnx.with_partitioning(
                           nnx.initializers.orthogonal(), ('embed', 'mlp')),
                       bias_init=layers.bias_init('mlp'), dtype=dtype, rngs=rngs)
    self.rnn = nnx.RNN(cell, rngs=False)

  def __call__(self, x_BxLxD, angles, mask_BxL, rngs=None):
    del angles, rngs
    carry_BxD = jnp.zeros((x_BxLxD.shape[0], x_BxLxD.shape[-1]), x_BxLxD.dtype)
    y_BxLxD = x_BxLxD + self.rnn(x_BxLxD, initial_carry=carry_BxD)
    return y_BxLxD * mask_BxL[..., None].astype(y_BxLxD.dtype)


class SpeechCTC(nnx.Module):
  """Per-frame logits [B, frames / 4, V] of waveforms [B, T] with lengths [B]."""

  def __init__(self, input_shape, vocab_size, *, encoder, num_layers, embed_dim, num_heads,
               mlp_dim, conv_kernel, subsample_features, dropout_rate, rope_base, kernel_init,
               attention_implementation, dtype=jnp.float32, rngs: nnx.Rngs, **front_end):
    del input_shape
    front_end.setdefault('normalize', False)  # done here, over the valid frames only
    self.front_end = nnx.static(speech.LogMel(**{k: front_end.get(k, v) for k, v
                                                 in speech.FRONT_END.items()}))
    self.dtype, self.head_dim, self.rope_base = dtype, embed_dim // num_heads, rope_base
    conv = lambda c_in: nnx.Conv(
        c_in, subsample_features, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
        kernel_init=layers.kernel_init(kernel_init, (None, None, 'conv_in', 'conv_out')),
        bias_init=layers.bias_init('conv_out'), dtype=dtype,
        conv_general_dilated=conv_general_dilated_canonical_vjp, rngs=rngs)
    self.subsample = nnx.List([conv(1), conv(subsample_features)])
    mels = subsampled(subsampled(self.front_end.n_mels))
    self.project = layers.dense(mels * subsample_features, embed_dim, ('conv_out', 'embed'),
                                init=kernel_init, dtype=dtype, rngs=rngs)
    mlp_dim = mlp_dim or 4 * embed_dim
    settings = dict(init=kernel_init, dtype=dtype, rngs=rngs)
    attention = dict(dropout_rate=dropout_rate, attention_implementation=attention_implementation)
    make = {'conformer': lambda: ConformerBlock(embed_dim, num_heads, mlp_dim, conv_kernel,
                                                **attention, **settings),
            'transformer': lambda: TransformerBlock(embed_dim, num_heads, mlp_dim, **attention,
                                                    **settings),
            'gru': lambda: GRUBlock(embed_dim, **settings)}[encoder]
    self.blocks = nnx.List([make() for _ in range(num_layers)])
    self.final_norm = transformer.rms_norm(embed_dim, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)
    self.head = layers.dense(embed_dim, vocab_size, ('embed', 'vocab'), init=kernel_init,
                             dtype=dtype, rngs=rngs)

  def output_lengths(self, num_samples_B):
    return output_lengths(num_samples_B, self.front_end.hop_length)

  def features(self, audio_BxT, num_samples_B):
    """Log-mel [B, frames, mels], normalised over each utterance's valid frames, zero
    past them."""
    front = self.front_end
    x_BxNxM = front(audio_BxT, jnp.float32)
    valid_BxNx1 = frame_mask(1 + num_samples_B // front.hop_length,
                             x_BxNxM.shape[1])[..., None].astype(jnp.float32)
    count_B11 = jnp.maximum(valid_BxNx1.sum((1, 2), keepdims=True) * x_BxNxM.shape[2], 1)
    mean_B11 = (x_BxNxM * valid_BxNx1).sum((1, 2), keepdims=True) / count_B11
    var_B11 = (((x_BxNxM - mean_B11) * valid_BxNx1) ** 2).sum((1, 2), keepdims=True) / count_B11
    return ((x_BxNxM - mean_B11) * jax.lax.rsqrt(var_B11 + 1e-10) * valid_BxNx1), valid_BxNx1

  def __call__(self, audio_BxT, num_samples_B=None, *, rngs=None):
    if num_samples_B is None:  # every sample is real
      num_samples_B = jnp.full(audio_BxT.shape[:1], audio_BxT.shape[1], jnp.int32)
    num_samples_B = num_samples_B.astype(jnp.int32)
    x_BxNxM, _ = self.features(audio_BxT, num_samples_B)
    x = x_BxNxM.astype(self.dtype)[..., None]
    lengths_B = 1 + num_samples_B // self.front_end.hop_length
    for conv in self.subsample:
      lengths_B = subsampled(lengths_B)
      x = jax.nn.relu(conv(x))
      x = x * frame_mask(lengths_B, x.shape[1])[:, :, None, None].astype(x.dtype)
    x_BxLxD = self.project(x.reshape(x.shape[0], x.shape[1], -1))
    mask_BxL = frame_mask(lengths_B, x_BxLxD.shape[1])
    positions_BxL = jnp.broadcast_to(jnp.arange(x_BxLxD.shape[1]), mask_BxL.shape)
    angles = transformer.rotary_angles(positions_BxL, self.head_dim, self.rope_base)
    x_BxLxD = self.dropout(x_BxLxD, rngs=rngs) * mask_BxL[..., None].astype(x_BxLxD.dtype)
    for block in self.blocks:
      x_BxLxD = block(x_BxLxD, angles, mask_BxL, rngs)
    return self.head(self.final_norm(x_BxLxD))


def create(input_shape, num_classes, *, rngs, dtype=jnp.float32, **options):
  """The CTC model of waveforms of `input_shape` = (num_samples,) over `num_classes`
  outputs (the blank and the tokens)."""
  settings = {**DEFAULTS, **options}
  front_end = {k: settings.pop(k) for k in list(settings) if k in speech.FRONT_END}
  unknown = sorted(set(settings) - set(DEFAULTS))
  problems = [f'no option {name!r}' for name in unknown]
  if settings['encoder'] not in ENCODERS:
    problems.append(f'encoder={settings["encoder"]!r} must be one of {", ".join(ENCODERS)}')
  if settings['embed_dim'] % settings['num_heads'] or (settings['embed_dim']
                                                       // settings['num_heads']) % 2:
    problems.append(f'embed_dim={settings["embed_dim"]} must be num_heads='
                    f'{settings["num_heads"]} times an even head width (RoPE rotates pairs)')
  layers.reject('speech_ctc', problems)
  layers.check_options('speech_ctc', settings, rates=('dropout_rate',),
                       counts=('num_layers', 'embed_dim', 'num_heads', 'conv_kernel',
                               'subsample_features'),
                       choices=dict(kernel_init=tuple(layers.INITIALIZERS)))
  return SpeechCTC(input_shape, num_classes, rngs=rngs, dtype=dtype, **settings, **front_end)
