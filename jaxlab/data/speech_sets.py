"""Speech recognition sets: utterances and their transcripts (task.name=speech_recognition).

Every example holds 'audio' (float32 at 16 kHz, zero-padded to the set's longest
utterance, data.max_audio_seconds), 'audio_length' (samples), 'labels' (token ids of the
normalised transcript, jaxlab.data.transcripts, 0-padded to as many as the model's
output frames) and 'label_length'.

  spoken_sentences  sentences that ship with Python, said by espeak-ng voices with
                    noise; test voices held out (jaxlab/data/espeak_sentences.py);
                    made once and cached; needs espeak-ng
  speech_manifest   your recordings: a JSONL manifest, one utterance a line,
                    {"audio_filepath": "a.wav", "text": "...", "duration": 2.1} (NeMo's
                    and ESPnet's format; paths relative to the manifest), at data.path: a
                    .jsonl file (data.validation_split of it held out) or a folder with
                    train.jsonl and test.jsonl
  librispeech       TFDS LibriSpeech, prepared in ArrayRecord format, streamed: the 960
                    hours of training speech, tested on test_clean

A row that cannot serve (its audio file missing or unreadable, an empty text after
normalisation, longer than data.max_audio_seconds, or more tokens than the model has
output frames for) is skipped and counted, with the first named, when
data.skip_bad_records is True; else the load stops naming the row. Streamed rows that
fail to decode are the streaming path's bad records, skipped or stopped on likewise.
"""

import json
import os
import shutil

import numpy as np

from jaxlab.data import audio, sources, tfds_source, transcripts
from jaxlab.data.info import DatasetInfo, Splits, from_arrays
from jaxlab.errors import UserError
from jaxlab.runtime import messages

SAMPLE_RATE = 16000
HOP_LENGTH = 160  # the front end's default (10 ms): sets the label rows' width
MANIFEST_KEYS = ('audio_filepath', 'text')
LIBRISPEECH = dict(train='train_clean100+train_clean360+train_other500', test='test_clean',
                   max_seconds=17.0, num_train=281241)


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


def _tokenizer(data_config, workdir, train_texts):
  spec = transcripts.spec(data_config)
  return spec, transcripts.from_spec(spec, workdir, lambda: iter(train_texts))


# --- spoken_sentences (espeak-ng) ------------------------------------------------------


def spoken_sentences(data_config, workdir=None):
  from jaxlab.data import espeak_sentences  # pylint: disable=g-import-not-at-top
  if shutil.which('espeak-ng') is None:
    raise UserError('data.name=spoken_sentences speaks its sentences with espeak-ng, which is '
                    'not installed: apt-get install espeak-ng (or use your recordings with '
                    '--config.data.name=speech_manifest).')
  seed = data_config.synthetic_seed
  said = espeak_sentences.utterances(seed)
  # Only what data.num_train and data.num_test keep is spoken (a smoke run speaks a few).
  said = ([u for u in said if u.split == 'train'][:data_config.num_train or None]
          + [u for u in said if u.split == 'test'][:data_config.num_test or None])
  waveforms = espeak_sentences.clips(said, seed, data_config.cache_dir)
  texts = [transcripts.normalize(espeak_sentences.sentences()[u.sentence]) for u in said]
  spec, tokenizer = _tokenizer(data_config, workdir,
                               [t for t, u in zip(texts, said) if u.split == 'train'])
  info = speech_info('spoken_sentences', max_seconds(data_config, espeak_sentences.MAX_SECONDS),
                     spec, espeak_sentences.TEST_SPLIT)
  (max_samples,), _ = info.spec()['audio']
  splits = {'train': [], 'test': []}
  rejected = Rejected('spoken_sentences (as espeak-ng said them)', skip=True)
  rejected.total = len(said)
  for index, (utterance, waveform, text) in enumerate(zip(said, waveforms, texts)):
    ids = tokenizer.encode(text)
    reason = why_unfit(len(waveform), ids, max_samples)
    if reason:
      rejected.add(index, reason)
    else:
      splits[utterance.split].append(example(waveform, ids, info))
  rejected.report()
  return from_arrays(info, stack(splits['train'], info), stack(splits['test'], info))


def max_seconds(data_config, default):
  return data_config.max_audio_seconds or default


# --- speech_manifest (JSONL) -----------------------------------------------------------


def read_manifest(path, rejected):
  """[(row number, absolute audio path, normalised text, duration or None)] of a
  manifest; rows without an audio file or a text are rejected."""
  if not os.path.isfile(path):
    raise UserError(f'The manifest {path} does not exist: pass --config.data.path=MANIFEST.jsonl'
                    ' (one {"audio_filepath", "text", "duration"} object a line) or a folder '
                    'holding train.jsonl and test.jsonl.')
  folder, rows = os.path.dirname(os.path.abspath(path)), []
  with open(path, encoding='utf-8') as lines:
    for number, line in enumerate(lines, 1):
      if not line.strip():
        continue
      rejected.total += 1
      try:
        record = json.loads(line)
      except json.JSONDecodeError as error:
        rejected.add(number, f'not a JSON object ({error.msg})')
        continue
      missing = [k for k in MANIFEST_KEYS if not isinstance(record, dict) or k not in record]
      if missing:
        rejected.add(number, f'it lacks {" and ".join(repr(k) for k in missing)}')
        continue
      audio_path = os.path.join(folder, os.path.expanduser(str(record['audio_filepath'])))
      text = transcripts.normalize(str(record['text'] or ''))
      if not text:
        rejected.add(number, 'its text is empty after normalisation')
      elif not os.path.isfile(audio_path):
        rejected.add(number, f'its audio file {audio_path} does not exist')
      else:
        rows.append((number, audio_path, text, record.get('duration')))
  return rows


def _manifests(data_config):
  path = os.path.expanduser(data_config.path or '')
  if os.path.isdir(path):
    found = {split: os.path.join(path, f'{split}.jsonl') for split in ('train', 'test')}
    missing = [p for p in found.values() if not os.path.isfile(p)]
    if missing:
      raise UserError(f'The folder {path} lacks {", ".join(missing)}: a speech_manifest folder '
                      'holds train.jsonl and test.jsonl (or pass one .jsonl file, and '
                      'data.validation_split of it is held out).')
    return found
  return {'all': path}


def speech_manifest(data_config, workdir=None):
  if not data_config.path:
    raise UserError('data.name=speech_manifest reads a JSONL manifest: pass '
                    '--config.data.path=MANIFEST.jsonl or a folder with train.jsonl and test.jsonl.')
  rows = {}
  for split, path in _manifests(data_config).items():
    rejected = Rejected(path, data_config.skip_bad_records)
    rows[split] = (read_manifest(path, rejected), rejected)
  if 'all' in rows:
    listed, rejected = rows.pop('all')
    share = data_config.validation_split or 0.2
    order = np.random.default_rng([data_config.split_seed, 7]).permutation(len(listed))
    held = set(order[:max(1, int(round(share * len(listed))))].tolist()) if listed else set()
    rows = {'train': ([r for i, r in enumerate(listed) if i not in held], rejected),
            'test': ([r for i, r in enumerate(listed) if i in held], rejected)}
  loaded = {}
  for split, (listed, rejected) in rows.items():
    loaded[split] = []
    for number, audio_path, text, _ in listed:
      try:
        samples, rate = audio.decode_wav(audio_path)
        loaded[split].append((number, audio.resample(samples, rate, SAMPLE_RATE), text))
      except (OSError, ValueError) as error:
        rejected.add(number, f'its audio file {audio_path} cannot be read ({error})')
  longest = max((len(w) for part in loaded.values() for _, w, _ in part), default=SAMPLE_RATE)
  spec, tokenizer = _tokenizer(data_config, workdir, [t for _, _, t in loaded['train']])
  info = speech_info('speech_manifest', max_seconds(data_config, np.ceil(
      longest / SAMPLE_RATE * 4) / 4), spec)
  (max_samples,), _ = info.spec()['audio']
  arrays = {}
  for split, part in loaded.items():
    listed, rejected = rows[split]
    kept = []
    for number, waveform, text in part:
      ids = tokenizer.encode(text)
      reason = why_unfit(len(waveform), ids, max_samples)
      if reason:
        rejected.add(number, reason)
      else:
        kept.append(example(waveform, ids, info))
    arrays[split] = stack(kept, info)
  for rejected in {id(r): r for _, r in rows.values()}.values():
    rejected.report()
  if not len(arrays['train']['audio']):
    raise UserError(f'No usable training utterance in {data_config.path}; see the rows named '
                    'above.')
  return from_arrays(info, arrays['train'], arrays['test'])


# --- librispeech (TFDS, streamed) ------------------------------------------------------


class Utterances:
  """A TFDS speech split as examples of the set's shapes (int16 PCM scaled to [-1, 1]).
  An utterance that cannot serve is a BadRecord, which streaming skips or stops on.
  Picklable: Grain's workers open the records themselves."""

  def __init__(self, source, info, tokenizer, audio_key='speech', text_key='text'):
    self.source, self.info, self.tokenizer = source, info, tokenizer
    self.audio_key, self.text_key = audio_key, text_key

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    return self._example(index, self.source[index])

  def __getitems__(self, indices):
    return [self._example(i, e) for i, e in zip(indices, self.source.__getitems__(indices))]

  def _example(self, index, record):
    waveform = np.asarray(record[self.audio_key]).reshape(-1).astype(np.float32) / 32768.0
    text = record[self.text_key]
    text = transcripts.normalize(text.decode() if isinstance(text, bytes) else str(text))
    ids = self.tokenizer.encode(text)
    (max_samples,), _ = self.info.spec()['audio']
    reason = why_unfit(len(waveform), ids, max_samples)
    if reason:
      raise sources.BadRecord(repr(self.source), index, reason)
    return example(waveform, ids, self.info)

  def __repr__(self):
    return repr(self.source)


def librispeech(data_config, workdir=None):
  spec = transcripts.spec(data_config)
  if spec['kind'] != 'characters':
    raise UserError('librispeech reads characters (--config.data.tokenizer=byte): training a '
                    'SentencePiece model would first read all 281,241 streamed transcripts.')
  tokenizer = transcripts.from_spec(spec, workdir)
  info = speech_info('librispeech', max_seconds(data_config, LIBRISPEECH['max_seconds']), spec)
  train = tfds_source.source('librispeech', LIBRISPEECH['train'], data_config.data_dir)
  test = tfds_source.source('librispeech', LIBRISPEECH['test'], data_config.data_dir)
  return Splits(info, Utterances(train, info, tokenizer), Utterances(test, info, tokenizer))


# --- shapes known without loading (--dry_run) ------------------------------------------


def known_info(data_config):
  """(DatasetInfo, training utterances) of spoken_sentences and librispeech, or None."""
  if data_config.name == 'spoken_sentences':
    from jaxlab.data import espeak_sentences  # pylint: disable=g-import-not-at-top
    info = speech_info('spoken_sentences', max_seconds(data_config, espeak_sentences.MAX_SECONDS),
                       transcripts.spec(data_config), espeak_sentences.TEST_SPLIT)
    size = espeak_sentences.split_sizes()[0]
  elif data_config.name == 'librispeech':
    info = speech_info('librispeech', max_seconds(data_config, LIBRISPEECH['max_seconds']),
                       transcripts.spec(data_config))
    size = LIBRISPEECH['num_train']
  else:
    return None
  return info, min(size, data_config.num_train) if data_config.num_train else size


LOADERS = {'spoken_sentences': spoken_sentences, 'speech_manifest': speech_manifest,
           'librispeech': librispeech}
