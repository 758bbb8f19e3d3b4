"""Waveforms on the host: WAV decoding, resampling and fixing the length.

A waveform here is float32 mono in [-1, 1]; speech models take it at a fixed sample
rate and a fixed number of samples (the data set's `DatasetInfo.sample_rate` and the
'audio' feature's shape).
"""

import io
import math
import wave

import numpy as np

_SCALES = {1: 128.0, 2: 32768.0, 4: 2147483648.0}  # full scale of 8/16/32-bit PCM


def decode_wav(source):
  """(float32 mono waveform, sample rate) of a PCM WAV file (a path or its bytes).
  Several channels are averaged; raises ValueError for what is not 8/16/32-bit PCM WAV
  (float WAV goes through scipy's reader)."""
  stream = io.BytesIO(source) if isinstance(source, bytes) else source
  try:
    with wave.open(stream, 'rb') as reader:
      width, channels = reader.getsampwidth(), reader.getnchannels()
      rate, frames = reader.getframerate(), reader.readframes(reader.getnframes())
  except wave.Error as error:
    if 'unknown format: 3' not in str(error):  # 3: IEEE float samples
      raise ValueError(f'not a PCM WAV file ({error})') from None
    return _decode_float_wav(source)
  except EOFError:
    raise ValueError('the WAV file is truncated') from None
  if width not in _SCALES:
    raise ValueError(f'{8 * width}-bit samples are not supported (use 8, 16 or 32-bit PCM)')
  dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
  samples = np.frombuffer(frames, dtype=dtype).astype(np.float32)
  if width == 1:
    samples -= 128.0  # 8-bit WAV is unsigned
  samples = samples.reshape(-1, channels).mean(axis=1) / _SCALES[width]
  if not len(samples):
    raise ValueError('the WAV file holds no samples')
  return samples.astype(np.float32), rate


def _decode_float_wav(source):
  from scipy.io import wavfile
  rate, samples = wavfile.read(io.BytesIO(source) if isinstance(source, bytes) else source)
  samples = np.asarray(samples, np.float32)
  if samples.ndim == 2:
    samples = samples.mean(axis=1)
  if not len(samples):
    raise ValueError('the WAV file holds no samples')
  return samples, rate


def resample(samples, rate, target_rate):
  """The waveform at target_rate, by polyphase filtering (exact for rational ratios)."""
  if rate == target_rate:
    return samples
  from scipy import signal
  divisor = math.gcd(int(rate), int(target_rate))
  return signal.resample_poly(samples, target_rate // divisor, rate // divisor).astype(np.float32)


def fit_length(samples, num_samples):
  """Zero-padded at the end or cropped to num_samples."""
  fitted = np.zeros(num_samples, np.float32)
  fitted[:min(len(samples), num_samples)] = samples[:num_samples]
  return fitted

