"""WAV files as a classification batch for `predict`, prepared as the training audio was:
mono (channels averaged), resampled to the data set's rate, padded or cropped to its
number of samples."""

import numpy as np

from jaxlab.data import audio
from jaxlab.errors import UserError


def read_wavs(paths, info, name='audio'):
  """({name: float32 N x num_samples}, paths, {}): every file must be a readable WAV."""
  (num_samples,), _ = info.spec()[name]
  rate = info.sample_rate
  clips, errors = [], {}
  for path in paths:
    try:
      samples, file_rate = audio.decode_wav(str(path))
      clips.append(audio.fit_length(audio.resample(samples, file_rate, rate), num_samples))
    except (OSError, ValueError) as error:
      errors[path] = str(error)
  if errors:
    listed = '; '.join(f'{path}: {error}' for path, error in errors.items())
    raise UserError(f'Cannot read {len(errors)} of {len(paths)} audio file(s) ({listed}). The '
                    f'model takes WAV files (8/16/32-bit PCM or float, any sample rate, mono or '
                    f'several channels); it hears {num_samples / rate:g} s at {rate} Hz. '
                    'Convert them, e.g. `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`, and retry.')
  return {name: np.stack(clips)}, list(paths), {}
