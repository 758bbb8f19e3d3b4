"""Tokenizers for language models: raw UTF-8 bytes, or a SentencePiece model.

Both share the special ids pad = 0, eos = 1, unk = 2, so that packing and the loss
mask never depend on which tokenizer is in use.

A tokenizer is described by a small JSON-able spec stored in the config, e.g.
`{'kind': 'byte'}` or `{'kind': 'sentencepiece', 'file': 'tokenizer.model',
'vocab_size': 512}` (the file relative to the workdir), so evaluation and prediction
rebuild the exact tokenizer that training used from the workdir alone. The model
file is read and written through `jaxlab.storage`, so gs:// workdirs work too.
"""

import hashlib
import io
import itertools

import numpy as np

from jaxlab import storage
from jaxlab.errors import UserError

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
NUM_SPECIAL = 3
KINDS = ('byte', 'sentencepiece', 'pretrained')  # pretrained: an imported checkpoint's


class ByteTokenizer:
  """ByT5's convention: byte b is id b + 3, after pad, eos and unk (unused)."""

  kind = 'byte'
  pad_id = PAD_ID
  eos_id = EOS_ID
  vocab_size = 256 + NUM_SPECIAL
  fingerprint = 'byte'  # names the token ids in cache keys

  def encode(self, text):
    """The UTF-8 bytes of `text` as int32 ids; no eos is added."""
    raw = np.frombuffer(text.encode('utf-8'), dtype=np.uint8)
    return raw.astype(np.int32) + NUM_SPECIAL

  def decode(self, ids):
    """Special ids are dropped; bytes that are not valid UTF-8 become U+FFFD."""
    ids = np.asarray(ids)
    raw = (ids[ids >= NUM_SPECIAL] - NUM_SPECIAL).astype(np.uint8).tobytes()
    return raw.decode('utf-8', errors='replace')


class SentencePieceTokenizer:
  """A trained SentencePiece model, held as its serialized bytes.

  Holding the bytes (not a file name) lets the tokenizer be pickled to worker
  processes and be fingerprinted by content.
  """

  kind = 'sentencepiece'
  pad_id = PAD_ID
  eos_id = EOS_ID

  def __init__(self, model_proto):
    import sentencepiece  # pylint: disable=g-import-not-at-top
    self.model_proto = bytes(model_proto)
    self._processor = sentencepiece.SentencePieceProcessor(model_proto=self.model_proto)
    self.vocab_size = self._processor.vocab_size()
    self.fingerprint = 'sp' + hashlib.sha256(self.model_proto).hexdigest()[:16]

  def __reduce__(self):
    return SentencePieceTokenizer, (self.model_proto,)

  @classmethod
  def train(cls, documents, vocab_size, path=None):
    """Trains on the first MAX_TRAINING_DOCUMENTS of an iterable of str, deterministically;
    saves to `path` if given."""
    import sentencepiece  # pylint: disable=g-import-not-at-top
    _check_vocab_size(vocab_size)
    model = io.BytesIO()
    try:
      sentencepiece.SentencePieceTrainer.train(
          sentence_iterator=itertools.islice(documents, MAX_TRAINING_DOCUMENTS),
          model_writer=model, vocab_size=vocab_size,
          **_TRAINER_OPTIONS)
    except RuntimeError as error:  # vocab_size too small or too large for the corpus
      raise UserError(
          f'SentencePiece could not train a vocabulary of {vocab_size} pieces: '
          f'{_trainer_reason(error)} Choose a vocab_size that fits the corpus.') from None
    tokenizer = cls(model.getvalue())
    if path is not None:
      tokenizer.save(path)
    return tokenizer

  @classmethod
  def load(cls, path):
    if not storage.exists(path):
      raise UserError(
          f'The SentencePiece model {path} does not exist. It is written by the training '
          f'run into its workdir; pass the workdir of that run, or train one first.')
    return cls(storage.as_epath(path).read_bytes())

  def save(self, path):
    storage.write_bytes(path, self.model_proto)

  def encode(self, text):
    """`text` as int32 ids; no eos is added."""
    return np.asarray(self._processor.encode(text), dtype=np.int32)

  def decode(self, ids):
    ids = [int(i) for i in np.asarray(ids).reshape(-1) if i >= NUM_SPECIAL]
    return self._processor.decode(ids)


# Settings that make decode(encode(text)) == text exactly and training reproducible:
# - identity normalization, no whitespace folding and no dummy prefix keep every
#   character as written (code indentation, repeated blanks, '\r');
# - byte_fallback spells characters the vocabulary lacks as bytes instead of unk;
# - '\n' is a piece of its own, since SentencePiece otherwise treats it as whitespace;
# - whole documents are sentences, so long ones must not be dropped (the default limit
#   is 4192 bytes);
# - one thread: with several, the same corpus gives different models.
# A vocabulary is learnt well from a million documents; reading all of a large corpus
# (lm1b's 30M sentences) would take the first start tens of minutes and gigabytes.
MAX_TRAINING_DOCUMENTS = 1_000_000
_TRAINER_OPTIONS = dict(
    model_type='unigram',
    normalization_rule_name='identity',
    remove_extra_whitespaces=False,
    add_dummy_prefix=False,
    byte_fallback=True,
    user_defined_symbols=['\n'],
    pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1,
    max_sentence_length=1 << 24,
    num_threads=1,
    minloglevel=2,
)
# pad, eos, unk, 256 byte pieces and '\n': a vocabulary must have room beyond these.
_MIN_VOCAB_SIZE = NUM_SPECIAL + 256 + 1 + 1


def _check_vocab_size(vocab_size):
  if vocab_size < _MIN_VOCAB_SIZE:
    raise UserError(
        f'A SentencePiece vocab_size of {vocab_size} is too small: its byte fallback '
        f'alone takes {_MIN_VOCAB_SIZE - 1} ids, and each frequent character one more. '
        f"Use at least {_MIN_VOCAB_SIZE}, or the tokenizer {{'kind': 'byte'}}.")


def _trainer_reason(error):
  """The trainer's sentence, without its 'INTERNAL: file.cc(638) [check]' prefix."""
  reason = str(error).strip().splitlines()[-1]
  return reason.split('] ', 1)[-1]


def from_spec(spec, workdir):
  """The tokenizer that `spec` describes; a SentencePiece model is read from the workdir."""
  kind = _kind(spec)
  if kind == 'byte':
    return ByteTokenizer()
  if kind == 'pretrained':
    from jaxlab.data import pretrained_tokenizer  # pylint: disable=g-import-not-at-top
    return pretrained_tokenizer.PretrainedTokenizer.load(model_path(spec, workdir), spec)
  tokenizer = SentencePieceTokenizer.load(model_path(spec, workdir))
  _check_matches_spec(tokenizer, spec)
  return tokenizer


def train_or_load(spec, workdir, documents_fn):
  """As `from_spec`, but first trains the SentencePiece model on `documents_fn()` and
  saves it into the workdir if it is not there yet (the training run's first start)."""
  if _kind(spec) == 'sentencepiece' and not storage.exists(model_path(spec, workdir)):
    SentencePieceTokenizer.train(documents_fn(), spec['vocab_size'], model_path(spec, workdir))
  return from_spec(spec, workdir)


def model_path(spec, workdir):
  """Where a SentencePiece spec's model lives: 'file' relative to the workdir (an
  absolute 'file' names a model shared between runs)."""
  return str(storage.as_epath(workdir) / spec.get('file', 'tokenizer.model'))


def _kind(spec):
  kind = spec.get('kind')
  if kind not in KINDS:
    raise UserError(
        f'Unknown tokenizer kind {kind!r} in {spec!r}. Known kinds: {", ".join(KINDS)}; '
        f"e.g. {{'kind': 'byte'}} or {{'kind': 'sentencepiece', 'vocab_size': 512}}.")
  return kind


def _check_matches_spec(tokenizer, spec):
  wanted = spec.get('vocab_size')
  if wanted is not None and wanted != tokenizer.vocab_size:
    raise UserError(
        f'The tokenizer spec asks for vocab_size {wanted}, but the model in the workdir '
        f'has {tokenizer.vocab_size}. Use the spec the model was trained with, or a new '
        f'workdir to train a new model.')
