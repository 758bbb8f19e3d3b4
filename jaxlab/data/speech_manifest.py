"""data.name=speech_manifest: your recordings, listed in a JSONL manifest (NeMo's and
ESPnet's format), one utterance a line:

  {"audio_filepath": "a.wav", "text": "...", "duration": 2.1}

Paths are relative to the manifest. data.path is a .jsonl file (data.validation_split of
it held out, drawn by data.split_seed) or a folder holding train.jsonl and test.jsonl.
WAV files of any rate are resampled to 16 kHz. Rows that cannot serve are skipped and
counted, or stop the load naming the row (data.skip_bad_records; see speech_examples).
"""

import dataclasses
import json
import os

import numpy as np

from jaxlab.data import audio, transcripts
from jaxlab.data.info import from_arrays
from jaxlab.data.speech_examples import (SAMPLE_RATE, Rejected, example, length_buckets,
                                         max_seconds, speech_info, stack, tokenizer, why_unfit)
from jaxlab.errors import UserError

MANIFEST_KEYS = ('audio_filepath', 'text')

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


def load(data_config, workdir=None):
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
  spec, encoder = tokenizer(data_config, workdir, [t for _, _, t in loaded['train']])
  info = speech_info('speech_manifest', max_seconds(data_config, np.ceil(
      longest / SAMPLE_RATE * 4) / 4), spec)
  (max_samples,), _ = info.spec()['audio']
  arrays = {}
  for split, part in loaded.items():
    listed, rejected = rows[split]
    kept = []
    for number, waveform, text in part:
      ids = encoder.encode(text)
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
  return dataclasses.replace(
      from_arrays(info, arrays['train'], arrays['test']),
      buckets=length_buckets(data_config, info, arrays['train']['audio_length']))
