"""Speech recognition sets: utterances and their transcripts (task.name=speech_recognition).

Every example holds 'audio' (float32 at 16 kHz, zero-padded to the set's longest
utterance, data.max_audio_seconds), 'audio_length' (samples), 'labels' (token ids of the
normalised transcript, jaxlab.data.transcripts, 0-padded to as many as the model's
output frames) and 'label_length'. With data.num_buckets or data.bucket_boundaries the
in-memory sets (spoken_sentences, speech_manifest) bucket their training utterances by
length (jaxlab.data.buckets): each training batch is cut to its bucket's bound.

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

import dataclasses
import shutil

import numpy as np

from jaxlab.data import sources, speech_manifest, tfds_source, transcripts
from jaxlab.data.info import Splits, from_arrays
from jaxlab.data.speech_examples import (Rejected, bucketing, example, length_buckets,
                                         max_seconds, speech_info, stack, tokenizer, why_unfit)
from jaxlab.errors import UserError

LIBRISPEECH = dict(train='train_clean100+train_clean360+train_other500', test='test_clean',
                   max_seconds=17.0, num_train=281241)


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
  spec, encoder = tokenizer(data_config, workdir,
                               [t for t, u in zip(texts, said) if u.split == 'train'])
  info = speech_info('spoken_sentences', max_seconds(data_config, espeak_sentences.MAX_SECONDS),
                     spec, espeak_sentences.TEST_SPLIT)
  (max_samples,), _ = info.spec()['audio']
  splits = {'train': [], 'test': []}
  rejected = Rejected('spoken_sentences (as espeak-ng said them)', skip=True)
  rejected.total = len(said)
  for index, (utterance, waveform, text) in enumerate(zip(said, waveforms, texts)):
    ids = encoder.encode(text)
    reason = why_unfit(len(waveform), ids, max_samples)
    if reason:
      rejected.add(index, reason)
    else:
      splits[utterance.split].append(example(waveform, ids, info))
  rejected.report()
  train = stack(splits['train'], info)
  return dataclasses.replace(
      from_arrays(info, train, stack(splits['test'], info)),
      buckets=length_buckets(data_config, info, train['audio_length']))


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
  if bucketing(data_config):
    raise UserError('librispeech is streamed, so the lengths of its 281,241 training utterances '
                    'are not known before training and cannot be bucketed: set '
                    '--config.data.num_buckets=0 and --config.data.bucket_boundaries=() (or '
                    'list your copy in a manifest: --config.data.name=speech_manifest).')
  if spec['kind'] != 'characters':
    raise UserError('librispeech reads characters (--config.data.tokenizer=byte): training a '
                    'SentencePiece model would first read all 281,241 streamed transcripts.')
  characters = transcripts.from_spec(spec, workdir)
  info = speech_info('librispeech', max_seconds(data_config, LIBRISPEECH['max_seconds']), spec)
  train = tfds_source.source('librispeech', LIBRISPEECH['train'], data_config.data_dir)
  test = tfds_source.source('librispeech', LIBRISPEECH['test'], data_config.data_dir)
  return Splits(info, Utterances(train, info, characters), Utterances(test, info, characters))


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


LOADERS = {'spoken_sentences': spoken_sentences, 'speech_manifest': speech_manifest.load,
           'librispeech': librispeech}
