"""Audio classification sets: a float32 waveform 'audio' [num_samples] at 16 kHz and a label.

  synthetic_speech  formant "vowels" made at run time (no download, no tools): 5 vowels x
                    a rising or falling pitch = 10 classes, with speaker, pitch, speed,
                    loudness and noise varied; learnable but not trivial
  spoken_digits     "zero" .. "nine" spoken by espeak-ng (jaxlab/data/espeak_digits.py),
                    split by speaker: the test's voices, espeak-ng's default among them,
                    are never trained on; made once and cached under data.cache_dir; where
                    espeak-ng is not installed it falls back to synthetic_speech, with one
                    line saying so
  speech_commands   TFDS Speech Commands (12 classes: 10 words, silence, unknown), prepared
                    in ArrayRecord format; clips padded or cropped to 1 s; for streaming
"""

import shutil

import numpy as np

from jaxlab.data import audio, espeak_digits, tfds_source
from jaxlab.data.info import DatasetInfo, Splits, from_arrays
from jaxlab.runtime import messages

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # one second


def audio_info(name, class_names, num_samples=CLIP_SAMPLES, sample_rate=SAMPLE_RATE,
               test_split=''):
  return DatasetInfo(name, {'audio': ((num_samples,), 'float32'), 'label': ((), 'int32')},
                     num_classes=len(class_names), class_names=tuple(class_names),
                     sample_rate=sample_rate, test_split=test_split)


# --- synthetic_speech --------------------------------------------------------------

# Peterson & Barney's average adult male formants F1-F3 (Hz) of five vowels.
VOWELS = {'a': (730, 1090, 2440), 'e': (530, 1840, 2480), 'i': (270, 2290, 3010),
          'o': (570, 840, 2410), 'u': (300, 870, 2240)}
CONTOURS = ('rise', 'fall')
SYNTHETIC_CLASSES = tuple(f'{v}-{c}' for v in VOWELS for c in CONTOURS)
SYNTHETIC_SIZES = dict(num_train=3000, num_test=600)
_BANDWIDTHS = (80.0, 100.0, 140.0)  # Hz, of F1-F3


def synthetic_speech(data_config, workdir=None):
  """Train and test drawn apart (seed, split 0 or 1) from one generator: no clip is in
  both, and there are no speakers to hold out (each clip draws its own formant scale,
  pitch, speed and noise). A test example shares with training everything but its
  draws: the test is in distribution."""
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

DIGITS = espeak_digits.DIGITS


def spoken_digits(data_config, workdir=None):
  """Split by speaker (jaxlab/data/espeak_digits.py): the test speakers, espeak-ng's
  default one among them, are never trained on; a test example shares only its language
  (pronunciation rules) and the speed and pitch ranges with training. The test split
  ends with the ten digits exactly as `espeak-ng -w x.wav <digit>` writes them."""
  if shutil.which('espeak-ng') is None:
    messages.warn('jaxlab: espeak-ng is not installed (apt-get install espeak-ng), so data.name='
          'spoken_digits falls back to synthetic_speech.')
    return synthetic_speech(data_config, workdir)
  seed = data_config.synthetic_seed
  said = espeak_digits.utterances(seed)
  clips = espeak_digits.clips(said, seed, data_config.cache_dir)
  in_test = np.array([u.split == 'test' for u in said])
  # Shuffled once, so that data.num_train keeps a mix of speakers; the test keeps its order.
  train = np.random.default_rng([seed, 4]).permutation(np.flatnonzero(~in_test))
  pick = lambda rows: {k: v[rows] for k, v in clips.items()}
  info = audio_info('spoken_digits', DIGITS, test_split=espeak_digits.TEST_SPLIT)
  return from_arrays(info, pick(train),
                     pick(np.flatnonzero(in_test)))


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
               'spoken_digits': espeak_digits.split_sizes()[0],
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
