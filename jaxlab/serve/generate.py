"""POST /v1/generate: a language model's continuation of a prompt, streamed as
server-sent events (one `data: {"text": ...}` event per piece of text, then an
`event: done` with the token count), made by `jaxlab.inference.sampling` as `jaxlab sample`
makes it. Each compiled chunk runs on the model thread, between predict batches.
"""

import json

from jaxlab.inference import sampling
from jaxlab.serve.inputs import BadInput

# The request's fields, their types and defaults (those of `jaxlab sample`).
FIELDS = {'prompt': (str, None), 'max_tokens': (int, 200), 'temperature': (float, 0.8),
          'top_k': (int, 0), 'top_p': (float, 1.0), 'seed': (int, 0)}
_KIND_NAMES = {str: 'a string', int: 'an integer', float: 'a number'}


def event(data, name=None):
  """One server-sent event carrying `data` as JSON."""
  head = f'event: {name}\n' if name else ''
  return f'{head}data: {json.dumps(data)}\n\n'.encode()


def parse(body):
  """{field: value} of a generate request, every field checked and defaulted."""
  unknown = sorted(set(body) - set(FIELDS))
  if unknown:
    raise BadInput(f'Unknown field(s) {unknown}; /v1/generate takes {list(FIELDS)}.')
  if 'prompt' not in body:
    raise BadInput('Missing field "prompt": the text to continue.')
  request = {}
  for name, (kind, default) in FIELDS.items():
    value = body.get(name, default)
    numeric = kind is float and isinstance(value, int)
    if isinstance(value, bool) or not (isinstance(value, kind) or numeric):
      raise BadInput(f'"{name}" must be {_KIND_NAMES[kind]}; got {json.dumps(value)}.')
    request[name] = kind(value)
  if request['temperature'] < 0 or not 0 < request['top_p'] <= 1:
    raise BadInput(f'temperature={request["temperature"]} must be >= 0 (0 is greedy) and '
                   f'top_p={request["top_p"]} in (0, 1].')
  return request


class Generator:
  """Streams continuations from a source's sampler on the batcher's model thread."""

  def __init__(self, source, batcher):
    self.sampler, self.tokenizer = source.sampler
    self.variables = source.run.variables
    self.batcher = batcher

  def warm_up(self):
    """Compiles the chunk function and the shortest prompt bucket's prefill."""
    self.sampler.sample(self.variables, [1], sampling.Settings.create(max_tokens=2))

  async def start(self, body):
    """The stream of events for a request; raises BadInput before any event."""
    request = parse(body)
    prompt_ids = list(self.tokenizer.encode(request['prompt']))
    room = self.sampler.max_len - len(prompt_ids)
    if not prompt_ids:
      raise BadInput('The prompt is empty; give at least one character.')
    if request['max_tokens'] < 1:
      raise BadInput(f'max_tokens={request["max_tokens"]} must be at least 1.')
    if room < 1:
      raise BadInput(f'The prompt ({len(prompt_ids)} tokens) fills the model\'s context of '
                     f'{self.sampler.max_len} tokens, leaving no room for a new token; shorten '
                     'it (it is never cut).')
    # As `jaxlab sample`: max_tokens is a maximum, and the context may end generation first
    # (finish_reason "length" either way).
    request['max_tokens'] = min(request['max_tokens'], room)
    return self._events(prompt_ids, request)

  async def _events(self, prompt_ids, request):
    settings = dict(request)
    del settings['prompt']
    tokens = self.sampler.stream(self.variables, prompt_ids,
                                 sampling.Settings.create(**settings))
    text = sampling.TextStream(self.tokenizer.decode)
    count = 0
    while (ids := await self.batcher.call(lambda: next(tokens, None))) is not None:
      count += len(ids)
      piece = text.add(ids)
      if piece:
        yield event({'text': piece})
    piece = text.finish()
    if piece:
      yield event({'text': piece})
    reason = 'length' if count >= request['max_tokens'] else 'stop'
    yield event({'tokens': count, 'finish_reason': reason}, 'done')
