"""Transcripts as CTC targets: normalised text, and its tokens over characters or
SentencePiece pieces.

Normalisation (what WER and CER are computed on, as LibriSpeech's transcripts are
written): lower case, letters a-z, apostrophes and single spaces; every other
character is dropped, except that hyphens, slashes and underscores become spaces.

Id 0 is the CTC blank and the padding of a label row (`tokenizers.PAD_ID`). With
data.tokenizer='byte' (the default, named so for the text sets) the tokens are the
characters of `ALPHABET` (ids 1..28); with 'sentencepiece' they are pieces of a model
trained on the training transcripts and kept in the workdir, with SentencePiece's ids
(pad 0 = blank, eos 1 and unk 2 never targets, pieces from 3).
"""

import re

import numpy as np

from jaxlab.data import tokenizers
from jaxlab.errors import UserError

ALPHABET = " abcdefghijklmnopqrstuvwxyz'"
_SPACED = re.compile(r'[-/_\s]+')
_DROPPED = re.compile(r"[^a-z' ]+")


def normalize(text):
  """Lower case, a-z, apostrophes and single spaces (see the module docstring)."""
  text = _SPACED.sub(' ', text.lower())
  return ' '.join(_DROPPED.sub('', text).split())


class Characters:
  """The characters of ALPHABET as ids 1..len(ALPHABET); 0 is the blank."""

  kind = 'characters'
  pad_id = tokenizers.PAD_ID

  def __init__(self, alphabet=ALPHABET):
    self.alphabet = alphabet
    self.vocab_size = len(alphabet) + 1
    self._ids = {c: i + 1 for i, c in enumerate(alphabet)}

  def encode(self, text):
    return np.array([self._ids[c] for c in text if c in self._ids], np.int32)

  def decode(self, ids):
    return ''.join(self.alphabet[i - 1] for i in np.asarray(ids).reshape(-1)
                   if 0 < i <= len(self.alphabet))

  def piece(self, token_id):
    return self.decode([token_id])


def spec(data_config):
  """The tokenizer spec that data.tokenizer asks for (stored in the DatasetInfo)."""
  if data_config.tokenizer == 'sentencepiece':
    from jaxlab.workdir import files  # pylint: disable=g-import-not-at-top
    return {'kind': 'sentencepiece', 'file': files.TOKENIZER,
            'vocab_size': int(data_config.vocab_size)}
  if data_config.tokenizer == 'pretrained':
    raise UserError('speech recognition reads characters (--config.data.tokenizer=byte) or '
                    'SentencePiece pieces trained on its transcripts (=sentencepiece); a '
                    'pretrained language model\'s tokenizer is not supported.')
  return {'kind': 'characters', 'alphabet': ALPHABET}


def from_spec(spec_, workdir, training_texts=None):
  """The tokenizer of a spec; a SentencePiece model is trained on `training_texts()` at
  the first start (when the workdir has none yet) and read from the workdir after."""
  if spec_['kind'] == 'characters':
    return Characters(spec_.get('alphabet', ALPHABET))
  if training_texts is not None:
    if workdir is None:  # a dry run: a throwaway model of the configured size
      import tempfile  # pylint: disable=g-import-not-at-top
      workdir = tempfile.mkdtemp(prefix='jaxlab-tokenizer-')
    return tokenizers.train_or_load(spec_, workdir, training_texts)
  return tokenizers.from_spec(spec_, workdir)


def vocab_size(spec_):
  """Outputs of the CTC head (blank included), known without a trained model."""
  if spec_['kind'] == 'characters':
    return len(spec_.get('alphabet', ALPHABET)) + 1
  return int(spec_['vocab_size'])


def label_rows(texts, tokenizer, max_length=None):
  """(int32 [N, L] ids padded with 0, int32 [N] lengths); L is the longest row, at least
  max_length when given."""
  encoded = [tokenizer.encode(text) for text in texts]
  width = max([len(e) for e in encoded] + [max_length or 1])
  rows = np.zeros((len(encoded), width), np.int32)
  for row, ids in zip(rows, encoded):
    row[:len(ids)] = ids
  return rows, np.array([len(e) for e in encoded], np.int32)
