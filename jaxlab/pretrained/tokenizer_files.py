"""The tokenizer beside a checkpoint, copied into the imported workdir with its spec.

tokenizer.json (the `tokenizers` library's format) is preferred: it carries the
normaliser and post-processing (e.g. Llama's beginning-of-text token) exactly; a bare
SentencePiece tokenizer.model is the fallback. The end-of-text id comes from
generation_config.json, config.json or tokenizer_config.json, in that order.
"""

import os
import shutil

from jaxlab.pretrained import errors

FILES = ('tokenizer.json', 'tokenizer.model')


def copy(checkpoint, workdir):
  """Copies the tokenizer into `workdir`; returns its spec (jaxlab.data.tokenizers), or None
  where the checkpoint has none."""
  for name in FILES:
    source = os.path.join(checkpoint.directory, name)
    if os.path.exists(source):
      shutil.copyfile(source, os.path.join(workdir, name))
      return spec(checkpoint, name, source)
  return None


def spec(checkpoint, name, path):
  settings = checkpoint.json_file('tokenizer_config.json')
  generation = checkpoint.json_file('generation_config.json')
  eos = _first(generation.get('eos_token_id', checkpoint.config.get('eos_token_id')))
  bos = _first(generation.get('bos_token_id', checkpoint.config.get('bos_token_id')))
  if eos is None:
    eos = _token_id(path, _content(settings.get('eos_token')))
  pad = _first(checkpoint.config.get('pad_token_id'))
  return dict(kind='pretrained', file=name, eos_id=eos, bos_id=bos,
              add_bos=bool(settings.get('add_bos_token', bos is not None)), pad_id=pad or 0)


def _first(value):
  """Llama 3 lists several end ids; the sampler stops at the first."""
  return value[0] if isinstance(value, (list, tuple)) and value else value


def _content(token):
  return token.get('content') if isinstance(token, dict) else token


def _token_id(path, token):
  if token is None:
    return None
  try:
    if path.endswith('.json'):
      import tokenizers  # pylint: disable=import-outside-toplevel
      return tokenizers.Tokenizer.from_file(path).token_to_id(token)
    import sentencepiece  # pylint: disable=import-outside-toplevel
    return sentencepiece.SentencePieceProcessor(model_file=path).piece_to_id(token)
  except Exception as error:  # pylint: disable=broad-except
    raise errors.UnmappableCheckpoint(
        f'The tokenizer {path} is not readable ({error}); download it again.') from None
