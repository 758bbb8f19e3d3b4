"""Audio classification sets: a float32 waveform 'audio' [num_samples] at 16 kHz and a label.

  synthetic_speech  formant "vowels" made at run time (no download, no tools): 5 vowels x
                    a rising or falling pitch = 10 classes, with speaker, pitch, speed,
                    loudness and noise varied; learnable but not trivial
  spoken_digits     "zero" .. "nine" spoken by espeak-ng in several voices, speeds and
                    pitches, made once and cached under data.cache_dir; where espeak-ng is
                    not installed it falls back to synthetic_speech, with one line saying so
  speech_commands   TFDS Speech Commands (12 classes: 10 words, silence, unknown), prepared
                    in ArrayRecord format; clips padded or cropped to 1 s; for streaming
"""

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent import futures

import numpy as np

from jaxlab.data import DatasetInfo, Splits, audio, from_arrays, tfds_source

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # one second


def audio_info(name, class_names, num_samples=CLIP_SAMPLES, sample_rate=SAMPLE_RATE):
  return DatasetInfo(name, {'audio': ((num_samples,), 'float32'), 'label': ((), 'int32')},
                     num_classes=len(class_names), class_names=tuple(class_names),
                     sample_rate=sample_rate)


# --- synthetic_speech --------------------------------------------------------------

# Peterson & Barney's average adult male formants F1-F3 (Hz) of five vowels.
VOWELS = {'a': (730, 1090, 2440), 'e': (530, 1840, 2480), 'i': (270, 2290, 3010),
          'o': (570, 840, 2410), 'u': (300, 870, 2240)}
CONTOURS = ('rise', 'fall')
SYNTHETIC_CLASSES = tuple(f'{v}-{c}' for v in VOWELS for c in CONTOURS)
SYNTHETIC_SIZES = dict(num_train=3000, num_test=600)
_BANDWIDTHS = (80.0, 100.0, 140.0)  # Hz, of F1-F3


def synthetic_speech(data_config, workdir=None):
  del workdir
  seed = data_config.synthetic_seed
  train = synthetic_clips(data_config.num_train or SYNTHETIC_SIZES['num_train'], seed, 0)
  test = synthetic_clips(data_config.num_test or SYNTHETIC_SIZES['num_test'], seed, 1)
  return from_arrays(audio_info('synthetic_speech', SYNTHETIC_CLASSES), train, test)


def synthetic_clips(count, seed, split):
  """{'audio': float32 [count, 16000], 'label': int32 [count]}: balanced classes (each
  count // 10 or one more), a pure function of (count, seed, split)."""
  rng = np.random.default_rng([seed, split])
  labels = rng.permutation(np.arange(count) % len(SYNTHETIC_CLASSES)).astype(np.int32)
  clips = np.stack([_vowel(label, rng) for label in labels]) if count else np.zeros((0, CLIP_SAMPLES))
  return dict(audio=clips.astype(np.float32), label=labels)


def _vowel(label, rng):
  """One clip: a glottal sawtooth with a gliding pitch through three formant
  resonators, at a random place and length in the second, plus white noise."""
  from scipy import signal
  formants = np.array(VOWELS[list(VOWELS)[label // 2]]) * rng.uniform(0.85, 1.2)  # speaker
  formants *= rng.uniform(0.95, 1.05, size=3)
  length = int(rng.uniform(0.3, 0.8) * SAMPLE_RATE)  # speaking speed
  start = rng.integers(0, CLIP_SAMPLES - length + 1)
  glide = rng.uniform(1.25, 1.6)  # the pitch moves by this factor over the vowel
  if CONTOURS[label % 2] == 'fall':
    glide = 1 / glide
  pitch = rng.uniform(90, 250) * glide ** np.linspace(-0.5, 0.5, length)
  phase = np.cumsum(pitch) / SAMPLE_RATE + rng.uniform()
  voiced = 2 * (phase % 1.0) - 1
  for frequency, bandwidth in zip(formants, _BANDWIDTHS):
    radius = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    angle = 2 * np.pi * frequency / SAMPLE_RATE
    voiced = signal.lfilter([1 - radius], [1, -2 * radius * np.cos(angle), radius ** 2], voiced)
  voiced *= np.sin(np.linspace(0, np.pi, length)) ** 0.5  # onset and decay
  clip = np.zeros(CLIP_SAMPLES)
  clip[start:start + length] = voiced / (np.abs(voiced).max() + 1e-9)
  snr_db = rng.uniform(5, 25)
  noise_rms = np.sqrt(np.mean(voiced ** 2) / np.abs(voiced).max() ** 2 + 1e-12) / 10 ** (snr_db / 20)
  clip += rng.normal(0, noise_rms, CLIP_SAMPLES)
  return clip * rng.uniform(0.1, 0.9) / (np.abs(clip).max() + 1e-9)


# --- spoken_digits (espeak-ng) -----------------------------------------------------

DIGITS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')
VOICES = tuple(f'{accent}+{variant}' for accent in ('en-us', 'en-gb', 'en-gb-scotland', 'en-029')
               for variant in ('m1', 'm3', 'f1', 'f3'))
SPEEDS = (120, 150, 180)  # words per minute
PITCHES = (30, 50, 70)  # espeak-ng's 0-99 scale
TEST_FRACTION = 0.2
DIGITS_FORMAT = 1  # bump when the recipe changes: the cache key holds it


def spoken_digits(data_config, workdir=None):
  if shutil.which('espeak-ng') is None:
    print('jaxlab: espeak-ng is not installed (apt-get install espeak-ng), so data.name='
          'spoken_digits falls back to synthetic_speech.', file=sys.stderr, flush=True)
    return synthetic_speech(data_config, workdir)
  clips = _cached_digits(data_config.cache_dir)
  rng = np.random.default_rng([data_config.synthetic_seed, 2])
  order = rng.permutation(len(clips['label']))
  num_test = int(len(order) * TEST_FRACTION)
  test, train = order[:num_test], order[num_test:]
  info = audio_info('spoken_digits', DIGITS)
  pick = lambda rows: {k: v[rows] for k, v in clips.items()}
  return from_arrays(info, pick(train), pick(test))


def _cached_digits(cache_dir):
  """All clips (10 digits x voices x speeds x pitches, with noise), made once."""
  recipe = repr((DIGITS, VOICES, SPEEDS, PITCHES, DIGITS_FORMAT, _espeak_version()))
  key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
  path = os.path.join(os.path.expanduser(cache_dir), 'spoken_digits', f'clips-{key}.npz') \
      if cache_dir else None
  if path and os.path.exists(path):
    with np.load(path) as cached:
      return dict(cached)
  print('jaxlab: speaking the digits with espeak-ng (once; cached under data.cache_dir)',
        file=sys.stderr, flush=True)
  jobs = [(d, v, s, p) for d in range(len(DIGITS)) for v in VOICES for s in SPEEDS
          for p in PITCHES]
  with futures.ThreadPoolExecutor(max(os.cpu_count() or 1, 2) * 2) as pool:
    clips = list(pool.map(_speak, jobs))
  rng = np.random.default_rng(0)
  audio_clips = np.stack([_place(clip, rng) for clip in clips])
  result = dict(audio=audio_clips, label=np.array([j[0] for j in jobs], np.int32))
  if path:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f'{path}.tmp-{os.getpid()}.npz'
    np.savez(temporary, **result)
    os.replace(temporary, path)
  return result


def _espeak_version():
  return subprocess.run(['espeak-ng', '--version'], capture_output=True, text=True).stdout.strip()


def _speak(job):
  digit, voice, speed, pitch = job
  command = ['espeak-ng', '-v', voice, '-s', str(speed), '-p', str(pitch), '--stdout', DIGITS[digit]]
  try:
    wav = subprocess.run(command, capture_output=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError) as error:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'espeak-ng failed to speak the spoken_digits set (`{" ".join(command)}`: '
                    f'{error}). Repair or remove espeak-ng (without it the set falls back to '
                    'synthetic_speech), or use --config.data.name=synthetic_speech.') from None
  samples, rate = audio.decode_wav(wav)
  return audio.resample(samples, rate, SAMPLE_RATE)


def _place(clip, rng):
  """The word at a random offset in one second, with a little noise and a random gain."""
  voiced = np.flatnonzero(np.abs(clip) > 0.01)
  clip = clip[voiced[0]:voiced[-1] + 1][:CLIP_SAMPLES] if len(voiced) else clip[:CLIP_SAMPLES]
  out = np.zeros(CLIP_SAMPLES, np.float32)
  start = rng.integers(0, CLIP_SAMPLES - len(clip) + 1)
  out[start:start + len(clip)] = clip / (np.abs(clip).max() + 1e-9)
  out += rng.normal(0, rng.uniform(0.005, 0.05), CLIP_SAMPLES).astype(np.float32)
  return (out * rng.uniform(0.2, 0.9)).astype(np.float32)


# --- speech_commands (TFDS) --------------------------------------------------------


class FixedLengthClips:
  """A TFDS audio split whose examples are float32 clips of num_samples (int16 PCM
  scaled to [-1, 1], zero-padded or cropped) and int32 labels. Picklable: Grain's
  workers open the records themselves."""

  def __init__(self, source, num_samples=CLIP_SAMPLES):
    self.source, self.num_samples = source, num_samples

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    return self._fixed(self.source[index])

  def __getitems__(self, indices):
    return [self._fixed(e) for e in self.source.__getitems__(indices)]

  def _fixed(self, example):
    pcm = np.asarray(example['audio']).reshape(-1).astype(np.float32) / 32768.0
    return dict(audio=audio.fit_length(pcm, self.num_samples), label=np.int32(example['label']))

  def __repr__(self):
    return repr(self.source)


def speech_commands(data_config, workdir=None):
  del workdir
  name, data_dir = 'speech_commands', data_config.data_dir
  train = tfds_source.source(name, 'train', data_dir)
  test = tfds_source.source(name, 'test', data_dir)
  info = audio_info(name, train.info.features['label'].names)
  return Splits(info, FixedLengthClips(train), FixedLengthClips(test))


# Training-set sizes known without making or reading the clips (for --dry_run).
KNOWN_SIZES = {'synthetic_speech': SYNTHETIC_SIZES['num_train'],
               'spoken_digits': len(DIGITS) * len(VOICES) * len(SPEEDS) * len(PITCHES)
                                - int(len(DIGITS) * len(VOICES) * len(SPEEDS) * len(PITCHES)
                                      * TEST_FRACTION),
               'speech_commands': 85511}
_CLASSES = {'synthetic_speech': SYNTHETIC_CLASSES, 'spoken_digits': DIGITS,
            'speech_commands': ('down', 'go', 'left', 'no', 'off', 'on', 'right', 'stop', 'up',
                                'yes', '_silence_', '_unknown_')}


def known_info(data_config):
  """(DatasetInfo, number of training examples) of an audio set, without loading it."""
  size = KNOWN_SIZES[data_config.name]
  num_train = min(size, data_config.num_train) if data_config.num_train else size
  return audio_info(data_config.name, _CLASSES[data_config.name]), num_train


LOADERS = {'synthetic_speech': synthetic_speech, 'spoken_digits': spoken_digits,
           'speech_commands': speech_commands}
