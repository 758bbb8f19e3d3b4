"""A log-mel spectrogram in pure jnp: the front end of the speech models.

It reproduces librosa's default `melspectrogram` (centred frames zero-padded at both
ends, a periodic Hann window of n_fft samples, the power spectrum, a Slaney-scale mel
filterbank with Slaney area normalisation) and takes its log with a floor. Being part of
the model, it compiles with it and travels with an exported model: the model's input is
the raw waveform.
"""

import functools

import jax.numpy as jnp
import numpy as np

_F_SP = 200.0 / 3  # Slaney scale: Hz per mel below 1 kHz (linear part)
_MIN_LOG_HZ = 1000.0
_LOG_STEP = np.log(6.4) / 27.0  # the log part: 27 mels per factor 6.4 in frequency


def hz_to_mel(hz):
  """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above."""
  hz = np.asarray(hz, np.float64)
  linear = hz / _F_SP
  log = _MIN_LOG_HZ / _F_SP + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
  return np.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel):
  mel = np.asarray(mel, np.float64)
  min_log_mel = _MIN_LOG_HZ / _F_SP
  log = _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - min_log_mel))
  return np.where(mel >= min_log_mel, log, _F_SP * mel)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate, n_fft, n_mels, fmin=0.0, fmax=None):
  """[n_fft // 2 + 1, n_mels] float32 triangles on the Slaney mel scale, each scaled to
  unit area (Slaney norm): librosa.filters.mel's defaults. A trace-time constant."""
  fmax = sample_rate / 2 if fmax is None else fmax
  fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
  edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
  widths = np.diff(edges_hz)
  offsets = edges_hz[:, None] - fft_hz[None, :]
  rising = -offsets[:-2] / widths[:-1, None]
  falling = offsets[2:] / widths[1:, None]
  weights = np.maximum(0, np.minimum(rising, falling))
  weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
  return weights.T.astype(np.float32)


def num_frames(num_samples, hop_length):
  return 1 + num_samples // hop_length


def frames(audio_BxT, n_fft, hop_length):
  """[B, 1 + T // hop_length, n_fft] centred frames (zero-padded at both ends), cut with
  slices of hop-sized blocks rather than a gather, which XLA runs slowly on CPUs."""
  batch, num_samples = audio_BxT.shape
  count = num_frames(num_samples, hop_length)
  blocks = count + -(-n_fft // hop_length) + 1  # enough hop-sized blocks for the last frame
  padded_BxP = jnp.pad(audio_BxT, ((0, 0), (n_fft // 2, blocks * hop_length - num_samples
                                            - n_fft // 2)))
  blocks_BxMxH = padded_BxP.reshape(batch, blocks, hop_length)
  pieces = [blocks_BxMxH[:, j:j + count] for j in range(n_fft // hop_length)]
  if n_fft % hop_length:
    pieces.append(blocks_BxMxH[:, n_fft // hop_length:n_fft // hop_length + count,
                               :n_fft % hop_length])
  return jnp.concatenate(pieces, axis=-1)


def power_mel(audio_BxT, *, sample_rate, n_fft=512, hop_length=160, n_mels=40, fmin=0.0,
              fmax=None):
  """[B, frames, n_mels] mel power spectrogram; frames = 1 + T // hop_length."""
  frames_BxNxK = frames(audio_BxT, n_fft, hop_length)
  # Periodic Hann (scipy.signal.get_window('hann', n_fft, fftbins=True)), as librosa uses.
  window_K = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
  spectrum_BxNxF = jnp.fft.rfft(frames_BxNxK.astype(jnp.float32) * window_K, axis=-1)
  power_BxNxF = spectrum_BxNxF.real ** 2 + spectrum_BxNxF.imag ** 2
  filters_FxM = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
  return jnp.einsum('bnf,fm->bnm', power_BxNxF, filters_FxM,
                    precision='highest')


def log_mel(audio_BxT, *, sample_rate, n_fft=512, hop_length=160, n_mels=40, fmin=0.0,
            fmax=None, floor=1e-6):
  """[B, frames, n_mels] log(max(mel power, floor)): the floor keeps silence finite."""
  mel_BxNxM = power_mel(audio_BxT, sample_rate=sample_rate, n_fft=n_fft,
                        hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax)
  return jnp.log(jnp.maximum(mel_BxNxM, floor))
