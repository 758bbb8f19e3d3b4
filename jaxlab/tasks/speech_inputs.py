"""WAV files as a speech recognition batch (`predict`, `serve`): mono, resampled to the
data set's rate, zero-padded to the trained number of samples, with their lengths."""

import numpy as np

from jaxlab.data import audio
from jaxlab.errors import UserError


def batch_of(named_sources, info):
  """(batch {'audio', 'audio_length'}, readable names, {name: error}) of [(name, path or
  WAV bytes)]; a file longer than the model hears is an error of its own."""
  (num_samples,), _ = info.spec()['audio']
  rate = info.sample_rate
  clips, lengths, readable, errors = [], [], [], {}
  for name, source in named_sources:
    try:
      samples, file_rate = audio.decode_wav(source)
      samples = audio.resample(samples, file_rate, rate)
    except (OSError, ValueError) as error:
      errors[name] = str(error)
      continue
    if len(samples) > num_samples:
      errors[name] = (f'it lasts {len(samples) / rate:.2f} s, longer than the '
                      f'{num_samples / rate:g} s the model was trained to hear')
      continue
    clips.append(audio.fit_length(samples, num_samples))
    lengths.append(len(samples))
    readable.append(name)
  batch = {'audio': np.stack(clips) if clips else np.zeros((0, num_samples), np.float32),
           'audio_length': np.array(lengths, np.int32)}
  return batch, readable, errors


def read_wavs(paths, info):
  """As `batch_of` for files; any unreadable or too long file stops with one message."""
  batch, readable, errors = batch_of([(path, str(path)) for path in paths], info)
  if errors:
    listed = '; '.join(f'{path}: {error}' for path, error in errors.items())
    raise UserError(f'Cannot transcribe {len(errors)} of {len(paths)} audio file(s) ({listed}). '
                    'The model takes WAV files (PCM or float, any sample rate, mono or several '
                    f'channels) of at most {info.spec()["audio"][0][0] / info.sample_rate:g} s; '
                    'convert or cut them (e.g. `ffmpeg -i IN -ac 1 -ar 16000 -t 10 OUT.wav`).')
  return batch, readable, {}
