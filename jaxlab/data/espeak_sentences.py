"""The spoken_sentences recipe: sentences that ship with Python, said by espeak-ng
voices at drawn speeds and pitches with added noise, the test's voices held out.

The sentences: the 19 aphorisms of the Zen of Python (the `this` module's text) and the
plain sentences of 4 to 8 words in Python's own reference documentation as the
standard library ships it (`pydoc_data.topics`, what `help()` shows): only letters,
commas, semicolons and apostrophes before the final stop, so every one is readable
aloud as written. No one here typed them.

Voices (see jaxlab/data/espeak_digits.py for what a language and a variant are): the
test holds out espeak_digits' TEST_VARIANTS (espeak-ng's default speaker among them),
never heard in training in any language; training hears the other variants. Each
training variant says TRAIN_SENTENCES_PER_VOICE sentences, each test variant
TEST_SENTENCES_PER_VOICE, dealt round a seeded shuffle so every sentence is said by
several training voices. Each clip: a drawn language, speed and pitch, the silence
around the words trimmed, up to a quarter second of lead-in, a random gain, and in three
of four clips white noise 15-40 dB below the speech. Clips over MAX_SECONDS are left out
(counted). Made once with espeak-ng and cached under data.cache_dir.
"""

import codecs
import dataclasses
import functools
import hashlib
import importlib.util
import os
import re
import subprocess
from concurrent import futures

import numpy as np

from jaxlab.data import audio, espeak_digits
from jaxlab.runtime import messages

SAMPLE_RATE = 16000
MAX_SECONDS = 4.5
TRAIN_SENTENCES_PER_VOICE = 16
TEST_SENTENCES_PER_VOICE = 12
SPEED_RANGE = (140, 210)  # words per minute (espeak-ng's default: 175)
PITCH_RANGE = (20, 80)
TEST_SPLIT = 'held-out voices'
FORMAT = 1  # bump when the recipe changes: the cache key holds it


def _zen_of_python():
  """The Zen's aphorisms, read from the `this` module's source (importing it prints them)."""
  source = open(importlib.util.find_spec('this').origin, encoding='utf-8').read()
  text = codecs.decode(re.search(r's = """(.*?)"""', source, re.S).group(1), 'rot13')
  return [line.strip() for line in text.splitlines()[2:] if line.strip()]


def _reference_sentences():
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  text = ' '.join(topics.topics[name] for name in sorted(topics.topics))
  found = set()
  for sentence in re.split(r'(?<=[.!?])\s+', text):
    sentence = ' '.join(sentence.split())
    if re.fullmatch(r"[A-Za-z][A-Za-z ,;']+[.!?]", sentence) and \
        4 <= len(sentence.split()) <= 8:
      found.add(sentence)
  return sorted(found)


@functools.lru_cache(maxsize=1)
def sentences():
  """Every sentence of the set, in a fixed order (Zen first)."""
  return tuple(dict.fromkeys(_zen_of_python() + _reference_sentences()))


@dataclasses.dataclass(frozen=True)
class Utterance:
  sentence: int  # index into sentences()
  language: str
  variant: str
  speed: int
  pitch: int
  split: str  # 'train' or 'test'

  @property
  def voice(self):
    return f'{self.language}+{self.variant}' if self.variant else self.language


def utterances(seed):
  """Every utterance of the set, a pure function of the seed."""
  rng = np.random.default_rng([seed, 5])
  count = len(sentences())

  def deal(variants, per_voice, split):
    order = rng.permutation(count)
    said = []
    for index, variant in enumerate(variants):
      for j in range(per_voice):
        said.append(Utterance(
            int(order[(index * per_voice + j) % count]), str(rng.choice(espeak_digits.LANGUAGES)),
            variant, int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
            int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)), split))
    return said

  train = deal(espeak_digits.TRAIN_VARIANTS, TRAIN_SENTENCES_PER_VOICE, 'train')
  test = deal(espeak_digits.TEST_VARIANTS, TEST_SENTENCES_PER_VOICE, 'test')
  # Shuffled, so that the first N (data.num_train, data.num_test) mix voices and sentences.
  return ([train[i] for i in rng.permutation(len(train))]
          + [test[i] for i in rng.permutation(len(test))])


def split_sizes():
  """(train, test) utterance counts before over-long clips are left out."""
  return (len(espeak_digits.TRAIN_VARIANTS) * TRAIN_SENTENCES_PER_VOICE,
          len(espeak_digits.TEST_VARIANTS) * TEST_SENTENCES_PER_VOICE)


def speak(utterance):
  command = ['espeak-ng', '-v', utterance.voice, '-s', str(utterance.speed), '-p',
             str(utterance.pitch), '--stdout', sentences()[utterance.sentence]]
  try:
    wav = subprocess.run(command, capture_output=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError) as error:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f'espeak-ng failed to speak the spoken_sentences set (`{" ".join(command)}`: '
                    f'{error}). Repair or reinstall espeak-ng (apt-get install espeak-ng).'
                    ) from None
  samples, rate = audio.decode_wav(wav)
  return audio.resample(samples, rate, SAMPLE_RATE)


def finish(clip, rng):
  """Silence trimmed, a lead-in of up to 0.25 s, noise in three clips of four, a gain."""
  voiced = np.flatnonzero(np.abs(clip) > 0.01)
  clip = clip[max(voiced[0] - 800, 0):voiced[-1] + 800] if len(voiced) else clip
  clip = clip / (np.abs(clip).max() + 1e-9)
  out = np.concatenate([np.zeros(rng.integers(0, SAMPLE_RATE // 4 + 1), np.float32), clip])
  if rng.uniform() > 0.25:
    speech_rms = np.sqrt(np.mean(clip ** 2))
    out = out + rng.normal(0, speech_rms * 10 ** (-rng.uniform(15, 40) / 20), len(out))
  return (out * rng.uniform(0.1, 1.0) / (np.abs(out).max() + 1e-9)).astype(np.float32)


def clips(said, seed, cache_dir):
  """[float32 waveform] of the utterances, spoken once and cached under cache_dir."""
  recipe = repr((said, sentences(), seed, FORMAT, espeak_digits._espeak_version()))  # pylint: disable=protected-access
  key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
  path = os.path.join(os.path.expanduser(cache_dir), 'spoken_sentences',
                      f'clips-{key}.npz') if cache_dir else None
  if path and os.path.exists(path):
    with np.load(path) as cached:
      return np.split(cached['samples'], cached['ends'][:-1])
  espeak_digits._check_variants({u.variant for u in said} - {''})  # pylint: disable=protected-access
  messages.warn(f'jaxlab: speaking {len(said)} sentences with espeak-ng (once; cached under '
                'data.cache_dir)')
  with futures.ThreadPoolExecutor(max(os.cpu_count() or 1, 2) * 2) as pool:
    spoken = list(pool.map(speak, said))
  made = [finish(clip, np.random.default_rng([seed, 6, index]))
          for index, clip in enumerate(spoken)]
  if path:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f'{path}.tmp-{os.getpid()}.npz'
    np.savez(temporary, samples=np.concatenate(made), ends=np.cumsum([len(c) for c in made]))
    os.replace(temporary, path)
  return made
