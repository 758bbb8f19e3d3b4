"""The spoken_digits recipe: who says which digit at what speed and pitch, which of
them the test holds out, and the one-second clips espeak-ng makes of them (cached).

An espeak-ng voice is a language, which picks the pronunciation rules ('en', 'en-us',
'en-029', ...), plus a variant, which is the speaker: formants, pitch range, roughness,
breath ('m3', 'f2', 'john', ...; no variant is espeak-ng's own speaker). The split is by
speaker: a test variant is never heard in training, in any language. What a test
example shares with training is the language (its pronunciation rules) and the ranges
that speed and pitch are drawn from; never its speaker.

The test split also holds each digit exactly as `espeak-ng -w x.wav <digit>` writes it
(language 'en', no variant, 175 wpm, pitch 50: espeak-ng's defaults), neither placed nor
noised, as `jaxlab predict` reads the file.
"""

import dataclasses
import hashlib
import os
import subprocess
from concurrent import futures

import numpy as np

from jaxlab.data import audio
from jaxlab.runtime import messages

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # one second

DIGITS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')
# The distinct English languages of espeak-ng 1.51 ('en-gb' and 'en-uk' are 'en';
# 'en-us-nyc' says the digits as 'en-us' does).
LANGUAGES = ('en', 'en-us', 'en-gb-scotland', 'en-gb-x-rp', 'en-gb-x-gbclan',
             'en-gb-x-gbcwmd', 'en-029')
DEFAULT_LANGUAGE, DEFAULT_VARIANT = 'en', ''  # what `espeak-ng` speaks with no -v
DEFAULT_SPEED, DEFAULT_PITCH = 175, 50  # espeak-ng's -s and -p defaults
TEST_VARIANTS = (DEFAULT_VARIANT, 'm3', 'm6', 'f2', 'f5', 'john', 'steph', 'Andy',
                 'grandma', 'klatt2')
# Every other variant of espeak-ng 1.51 ('Mr serious' left out: its name has a space).
TRAIN_VARIANTS = (
    'm1', 'm2', 'm4', 'm5', 'm7', 'm8', 'f1', 'f3', 'f4', 'klatt', 'klatt3', 'klatt4',
    'klatt5', 'klatt6', 'Alex', 'Alicia', 'Andrea', 'AnxiousAndy', 'Annie', 'Demonic',
    'Denis', 'Diogo', 'Gene', 'Gene2', 'Henrique', 'Hugo', 'Jacky', 'Lee', 'Marco', 'Mario',
    'Michael', 'Mike', 'Nguyen', 'RicishayMax', 'RicishayMax2', 'RicishayMax3', 'Storm',
    'Tweaky', 'UniRobot', 'adam', 'anika', 'anikaRobot', 'announcer', 'antonio', 'aunty',
    'belinda', 'benjamin', 'boris', 'caleb', 'croak', 'david', 'ed', 'edward', 'edward2',
    'fast', 'grandpa', 'gustave', 'iven', 'iven2', 'iven3', 'iven4', 'kaukovalta', 'linda',
    'marcelo', 'max', 'michel', 'miguel', 'norbert', 'pablo', 'paul', 'pedro', 'quincy',
    'rob', 'robert', 'robosoft', 'robosoft2', 'robosoft3', 'robosoft4', 'robosoft5',
    'robosoft6', 'robosoft7', 'robosoft8', 'sandro', 'shelby', 'steph2', 'steph3', 'travis',
    'victor', 'whisper', 'whisperf', 'zac')
TRAIN_RENDITIONS = 3  # each training speaker says each digit this often, in drawn languages
SPEED_RANGE = (110, 220)  # words per minute, drawn uniformly (espeak-ng's default: 175)
PITCH_RANGE = (20, 80)  # espeak-ng's 0-99 scale, drawn uniformly (default: 50)
TEST_SPLIT = 'held-out speakers'  # named on the eval line
FORMAT = 3  # bump when the recipe changes: the cache key holds it


@dataclasses.dataclass(frozen=True)
class Utterance:
  """One clip of the set: what espeak-ng is asked to say, and how it is used."""
  digit: int
  language: str
  variant: str  # the speaker ('' for espeak-ng's own)
  speed: int
  pitch: int
  split: str  # 'train' or 'test'
  as_written: bool = False  # the clip as `espeak-ng -w` writes it: not placed, no noise

  @property
  def voice(self):
    return f'{self.language}+{self.variant}' if self.variant else self.language


def utterances(seed):
  """Every utterance of the set, a pure function of the seed: the training speakers in
  drawn languages, every test speaker in every language, then the defaults as written."""
  rng = np.random.default_rng([seed, 2])
  drawn = lambda: (int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
                   int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)))
  train = [Utterance(digit, str(rng.choice(LANGUAGES)), variant, *drawn(), 'train')
           for variant in TRAIN_VARIANTS for digit in range(len(DIGITS))
           for _ in range(TRAIN_RENDITIONS)]
  test = [Utterance(digit, language, variant, *drawn(), 'test')
          for language in LANGUAGES for variant in TEST_VARIANTS
          for digit in range(len(DIGITS))]
  as_written = [Utterance(digit, DEFAULT_LANGUAGE, DEFAULT_VARIANT, DEFAULT_SPEED,
                          DEFAULT_PITCH, 'test', as_written=True) for digit in range(len(DIGITS))]
  return train + test + as_written


def split_sizes():
  """(train, test) counts, without drawing or speaking anything."""
  num_digits = len(DIGITS)
  return (len(TRAIN_VARIANTS) * num_digits * TRAIN_RENDITIONS,
          len(LANGUAGES) * len(TEST_VARIANTS) * num_digits + num_digits)


def clips(said, seed, cache_dir):
  """{'audio': float32 [len(said), 16000], 'label': int32}: the utterances spoken, made
  once and cached under cache_dir ('' for no cache)."""
  recipe = repr((said, seed, FORMAT, _espeak_version()))
  key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
  path = os.path.join(os.path.expanduser(cache_dir), 'spoken_digits', f'clips-{key}.npz') \
      if cache_dir else None
  if path and os.path.exists(path):
    with np.load(path) as cached:
      return dict(cached)
  _check_variants({u.variant for u in said} - {''})
  messages.warn(f'jaxlab: speaking {len(said)} digits with espeak-ng (once; cached under '
        'data.cache_dir)')
  with futures.ThreadPoolExecutor(max(os.cpu_count() or 1, 2) * 2) as pool:
    spoken = list(pool.map(speak, said))
  audio_clips = np.stack([_finish(clip, u, np.random.default_rng([seed, 3, index]))
                          for index, (clip, u) in enumerate(zip(spoken, said))])
  result = dict(audio=audio_clips, label=np.array([u.digit for u in said], np.int32))
  if path:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f'{path}.tmp-{os.getpid()}.npz'
    np.savez(temporary, **result)
    os.replace(temporary, path)
  return result


def _espeak_version():
  return subprocess.run(['espeak-ng', '--version'], capture_output=True, text=True).stdout.strip()


def _check_variants(wanted):
  # espeak-ng silently speaks with its default speaker when a variant is missing: that
  # would put the held-out default speaker into the training set.
  listing = subprocess.run(['espeak-ng', '--voices=variant'], capture_output=True,
                           text=True).stdout
  installed = {line.split()[4].removeprefix('!v/') for line in listing.splitlines()[1:]
               if len(line.split()) > 4}
  missing = sorted(wanted - installed)
  if missing:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'espeak-ng ({_espeak_version()}) lacks the voice variant(s) '
                    f'{", ".join(missing)} that spoken_digits uses; install espeak-ng 1.51 '
                    'or newer, or use --config.data.name=synthetic_speech.')


def speak(utterance):
  """The float32 waveform at 16 kHz that espeak-ng makes of one utterance."""
  command = ['espeak-ng', '-v', utterance.voice, '-s', str(utterance.speed), '-p',
             str(utterance.pitch), '--stdout', DIGITS[utterance.digit]]
  try:
    wav = subprocess.run(command, capture_output=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError) as error:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'espeak-ng failed to speak the spoken_digits set (`{" ".join(command)}`: '
                    f'{error}). Repair or remove espeak-ng (without it the set falls back to '
                    'synthetic_speech), or use --config.data.name=synthetic_speech.') from None
  samples, rate = audio.decode_wav(wav)
  return audio.resample(samples, rate, SAMPLE_RATE)


def _finish(clip, utterance, rng):
  if utterance.as_written:
    return audio.fit_length(clip, CLIP_SAMPLES)  # what `jaxlab predict` makes of the file
  return place(clip, rng)


def place(clip, rng):
  """The word at a random offset in one second, at a random gain, with light noise
  (none in a quarter of the clips, else 15-40 dB below the word): deterministic in rng.
  Half the noisy clips end their noise after the word, as a short noisy recording does
  once `jaxlab predict` pads it with silence to one second."""
  voiced = np.flatnonzero(np.abs(clip) > 0.01)
  clip = clip[voiced[0]:voiced[-1] + 1][:CLIP_SAMPLES] if len(voiced) else clip[:CLIP_SAMPLES]
  clip = clip / (np.abs(clip).max() + 1e-9)
  out = np.zeros(CLIP_SAMPLES, np.float32)
  start = rng.integers(0, CLIP_SAMPLES - len(clip) + 1)
  out[start:start + len(clip)] = clip
  if rng.uniform() > 0.25:
    word_rms = np.sqrt(np.mean(clip ** 2))
    noise = rng.normal(0, word_rms * 10 ** (-rng.uniform(15, 40) / 20), CLIP_SAMPLES)
    if rng.uniform() < 0.5:
      noise[rng.integers(start + len(clip), CLIP_SAMPLES + 1):] = 0
    out += noise
  out *= rng.uniform(0.1, 1.0) / (np.abs(out).max() + 1e-9)
  return out.astype(np.float32)
