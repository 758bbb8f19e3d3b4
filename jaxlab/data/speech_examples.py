"""What every speech recognition example holds, and how an utterance becomes one.

An example: 'audio' (float32 at 16 kHz, zero-padded to the set's longest utterance,
data.max_audio_seconds), 'audio_length' (samples), 'labels' (token ids of the normalised
transcript, jaxlab.data.transcripts, 0-padded to as many as the model's output frames)
and 'label_length'. `why_unfit` says why an utterance cannot be one; `Rejected` counts
the rows left out, or stops at the first. `length_buckets` gives the training set's
length buckets (data.num_buckets, data.bucket_boundaries; jaxlab.data.buckets): a
bucket cuts the audio to its bound and the label row to that bound's output frames.
"""

import numpy as np

from jaxlab.data import audio, buckets, transcripts
from jaxlab.data.info import DatasetInfo
from jaxlab.errors import UserError
from jaxlab.runtime import messages

SAMPLE_RATE = 16000
HOP_LENGTH = 160  # the front end's default (10 ms): sets the label rows' width
BUCKET_GRAIN = SAMPLE_RATE // 10  # quantile bucket bounds are rounded up to 0.1 s


def output_frames(num_samples):
  """The CTC model's output frames for this many samples (jaxlab.models.speech_ctc)."""
  frames = 1 + int(num_samples) // HOP_LENGTH
  return ((frames + 1) // 2 + 1) // 2


def speech_info(name, max_seconds, spec, test_split=''):
  num_samples = int(round(max_seconds * SAMPLE_RATE))
  features = {'audio': ((num_samples,), 'float32'), 'audio_length': ((), 'int32'),
              'labels': ((output_frames(num_samples),), 'int32'), 'label_length': ((), 'int32')}
  return DatasetInfo(name, features, vocab_size=transcripts.vocab_size(spec), tokenizer=spec,
                     sample_rate=SAMPLE_RATE, test_split=test_split)


def why_unfit(num_samples, ids, max_samples):
  """Why an utterance cannot be a CTC example here, or None."""
  if not len(ids):
    return 'its text is empty after normalisation'
  if num_samples > max_samples:
    return (f'it lasts {num_samples / SAMPLE_RATE:.2f} s, over '
            f'data.max_audio_seconds={max_samples / SAMPLE_RATE:g}')
  needed = len(ids) + int(np.sum(ids[1:] == ids[:-1]))  # a repeat needs a blank between
  if needed > output_frames(num_samples):
    return (f'its {len(ids)} tokens need {needed} output frames and its audio gives '
            f'{output_frames(num_samples)} (40 ms each)')
  return None


def example(waveform, ids, info):
  """One example of the set's fixed shapes."""
  (num_samples,), _ = info.spec()['audio']
  (width,), _ = info.spec()['labels']
  labels = np.zeros(width, np.int32)
  labels[:len(ids)] = ids
  return dict(audio=audio.fit_length(waveform, num_samples),
              audio_length=np.int32(min(len(waveform), num_samples)), labels=labels,
              label_length=np.int32(len(ids)))


def stack(examples, info):
  if not examples:
    return {k: np.zeros((0, *shape), dtype) for k, (shape, dtype) in info.spec().items()}
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


class Rejected:
  """Rows left out of a set: counted, the first named; or the load stopped at the first."""

  def __init__(self, where, skip):
    self.where, self.skip, self.rows = where, skip, []
    self.total = 0  # rows looked at

  def add(self, row, reason):
    if not self.skip:
      raise UserError(f'Row {row} of {self.where} cannot be used: {reason}. Fix or remove the '
                      'row, or set --config.data.skip_bad_records=True to skip such rows and '
                      'count them.')
    self.rows.append((row, reason))

  def report(self):
    if self.rows:
      named = '; '.join(f'row {row}: {reason}' for row, reason in self.rows[:3])
      messages.warn(f'jaxlab: warning: skipped {len(self.rows)} of {self.total} rows of {self.where} '
                    f'({named}{"; ..." if len(self.rows) > 3 else ""})')


def tokenizer(data_config, workdir, train_texts):
  spec = transcripts.spec(data_config)
  return spec, transcripts.from_spec(spec, workdir, lambda: iter(train_texts))


def max_seconds(data_config, default):
  return data_config.max_audio_seconds or default


def bucketing(data_config):
  """Whether the config asks for length buckets."""
  return bool(data_config.get('bucket_boundaries')) or int(data_config.get('num_buckets') or 0) > 1


def length_buckets(data_config, info, train_lengths):
  """The training set's length buckets (jaxlab.data.buckets.Buckets), or None: bounds from
  data.bucket_boundaries (seconds), else at the training durations' data.num_buckets
  quantiles; the last bucket ends at the longest training utterance, rounded up to 0.1 s
  (at most the info's length, data.max_audio_seconds)."""
  if not bucketing(data_config) or not len(train_lengths):
    return None
  (longest,), _ = info.spec()['audio']
  top = min(longest, -(-int(np.max(train_lengths)) // BUCKET_GRAIN) * BUCKET_GRAIN)
  given = tuple(data_config.get('bucket_boundaries') or ())
  if given:
    bounds = tuple(int(round(seconds * SAMPLE_RATE)) for seconds in given)
    if bounds[-1] > longest:
      raise UserError(f'--config.data.bucket_boundaries={given} goes past the longest '
                      f'utterance the set holds ({longest / SAMPLE_RATE:g} s, '
                      'data.max_audio_seconds): give bounds below it (the last bucket ends '
                      'there), or raise data.max_audio_seconds.')
    bounds = tuple(sorted({b for b in bounds if b < top} | {top}))
  else:
    bounds = buckets.quantile_bounds(train_lengths, int(data_config.num_buckets), top,
                                     BUCKET_GRAIN)
  if len(bounds) < 2:
    return None
  shapes = tuple({'audio': (bound,), 'labels': (output_frames(bound),)} for bound in bounds)
  return buckets.Buckets('audio_length', bounds, shapes,
                         tuple(f'{bound / SAMPLE_RATE:g} s' for bound in bounds))
