"""The tokenizer that came with an imported checkpoint: a Hugging Face `tokenizer.json`
(through the `tokenizers` library) or a SentencePiece `tokenizer.model`.

Its ids are the checkpoint's own, so its special ids differ from jaxlab's trained
tokenizers (pad 0, eos 1): the spec records them, e.g. {'kind': 'pretrained', 'file':
'tokenizer.json', 'eos_id': 2, 'bos_id': 1, 'add_bos': True}. `encode` adds what the
tokenizer's own post-processing adds (Llama's beginning-of-text); `decode` drops
special tokens.
"""

import hashlib

import numpy as np

from jaxlab import storage
from jaxlab.errors import UserError


def from_imported(source, workdir):
  """(spec, tokenizer) of the workdir `source` that `jaxlab import` wrote, for a run that
  fine-tunes its model on new text (data.tokenizer='pretrained',
  data.tokenizer_from=source). The tokenizer file is copied into `workdir` (by process 0)
  so that the new run's eval, predict and sample read it from there; the spec also records
  the model's vocabulary size, which may exceed the tokenizer's (padded embeddings)."""
  from jaxlab.data import info as info_lib  # pylint: disable=import-outside-toplevel
  if not source:
    raise UserError("--config.data.tokenizer='pretrained' reads the tokenizer of an imported "
                    'checkpoint: give its workdir with --config.data.tokenizer_from=DIR (the '
                    '--workdir of `jaxlab import`).')
  try:
    source_info = info_lib.load_info(source)
  except (OSError, UserError) as error:
    raise UserError(f'--config.data.tokenizer_from={source} is not a workdir that `jaxlab '
                    f'import` wrote ({error}); import the checkpoint there first.') from None
  spec = dict(source_info.tokenizer or {})
  if spec.get('kind') != 'pretrained':
    raise UserError(f'--config.data.tokenizer_from={source} holds no imported tokenizer (its '
                    f'tokenizer is {spec or "none"}); point it at the workdir of a `jaxlab '
                    'import` whose checkpoint came with tokenizer.json or tokenizer.model.')
  spec['vocab_size'] = int(source_info.vocab_size or 0)
  tokenizer = PretrainedTokenizer.load(str(storage.as_epath(source) / spec['file']), spec)
  if workdir is not None:
    import jax  # pylint: disable=import-outside-toplevel
    from jaxlab.parallel import multihost  # pylint: disable=import-outside-toplevel
    target = storage.as_epath(workdir) / spec['file']
    if jax.process_index() == 0 and not storage.exists(str(target)):
      storage.write_bytes(str(target), tokenizer.content)
    multihost.barrier('jaxlab_pretrained_tokenizer')
  return spec, tokenizer


class PretrainedTokenizer:
  """Held as the file's bytes, so it pickles to worker processes and fingerprints."""

  kind = 'pretrained'

  def __init__(self, file_name, content, *, eos_id, bos_id=None, add_bos=False, pad_id=0):
    self.file_name = file_name
    self.content = bytes(content)
    self.eos_id = -1 if eos_id is None else int(eos_id)  # -1: never ends early
    self.bos_id = bos_id
    self.add_bos = add_bos
    self.pad_id = pad_id
    self.fingerprint = 'hf' + hashlib.sha256(self.content).hexdigest()[:16]
    if file_name.endswith('.json'):
      import tokenizers  # pylint: disable=import-outside-toplevel
      self._json = tokenizers.Tokenizer.from_str(self.content.decode('utf-8'))
      self.vocab_size = self._json.get_vocab_size(with_added_tokens=True)
    else:
      import sentencepiece  # pylint: disable=import-outside-toplevel
      self._json = None
      self._sp = sentencepiece.SentencePieceProcessor(model_proto=self.content)
      self.vocab_size = self._sp.vocab_size()

  def __reduce__(self):
    return _rebuild, (self.file_name, self.content, self.eos_id, self.bos_id, self.add_bos,
                      self.pad_id)

  @classmethod
  def load(cls, path, spec):
    if not storage.exists(path):
      raise UserError(f'The tokenizer file {path} does not exist. `jaxlab import` copies it '
                      'into the workdir; import the checkpoint again.')
    tokenizer = cls(str(spec.get('file')), storage.as_epath(path).read_bytes(),
                    eos_id=spec.get('eos_id'), bos_id=spec.get('bos_id'),
                    add_bos=bool(spec.get('add_bos')), pad_id=spec.get('pad_id') or 0)
    # The model's embedding may have more rows than the tokenizer has ids (padded).
    tokenizer.vocab_size = max(tokenizer.vocab_size, int(spec.get('vocab_size') or 0))
    return tokenizer

  def encode(self, text):
    """`text` as int32 ids, with the tokenizer's own prefix (e.g. beginning-of-text)."""
    if self._json is not None:
      return np.asarray(self._json.encode(text).ids, dtype=np.int32)
    ids = self._sp.encode(text)
    if self.add_bos and self.bos_id is not None:
      ids = [self.bos_id] + ids
    return np.asarray(ids, dtype=np.int32)

  def decode(self, ids):
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    if self._json is not None:
      return self._json.decode(ids, skip_special_tokens=True)
    return self._sp.decode([i for i in ids if not self._sp.is_control(i)])


def _rebuild(file_name, content, eos_id, bos_id, add_bos, pad_id):
  return PretrainedTokenizer(file_name, content, eos_id=eos_id, bos_id=bos_id, add_bos=add_bos,
                             pad_id=pad_id)
