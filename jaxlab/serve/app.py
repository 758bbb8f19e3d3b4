"""The HTTP routes (FastAPI): predict, generate, model, stats, health; every refusal a
4xx with one line of JSON, {"error": "..."}.

Routes read the raw request (no pydantic models): the payload is decoded once, by
`inputs.Decoder`, and answered with bytes from `json.dumps`, which keeps the
per-request cost small next to the model's.
"""

import asyncio
import contextlib
import json
import time

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException

from jaxlab.serve import docs
from jaxlab.serve import inputs as inputs_lib
from jaxlab.serve import json_body
from jaxlab.serve.inputs import BadInput

MAX_BODY_BYTES = 16 * 2**20
DEFAULT_TOP_K = 3  # as `jaxlab predict`
OFF_LOOP_BYTES = 256 * 2**10  # payloads larger than this are decoded on a worker thread
IMAGE_TYPES = ('image/png', 'image/jpeg', 'image/gif', 'image/bmp', 'image/webp', 'image/tiff')
WAV_TYPES = ('audio/wav', 'audio/x-wav', 'audio/wave', 'audio/vnd.wave')
PREDICT_FIELDS = ('instances', 'texts', 'top_k')


class BodyTooLarge(Exception):
  pass


def json_response(content, status=200, headers=None):
  return Response(json.dumps(content), status, headers, media_type='application/json')


def error_response(message, status):
  return json_response({'error': ' '.join(str(message).split())}, status)


class BodyLimit:
  """ASGI middleware: refuses bodies over `limit` bytes with 413, by Content-Length
  before reading, or as they stream in."""

  def __init__(self, app, limit):
    self.app = app
    self.limit = limit

  async def __call__(self, scope, receive, send):
    if scope['type'] != 'http':
      return await self.app(scope, receive, send)
    length = dict(scope['headers']).get(b'content-length')
    if length is not None and (not length.isdigit() or int(length) > self.limit):
      status = 413 if length.isdigit() else 400
      return await error_response(self._message() if status == 413 else
                                  'Bad Content-Length header.', status)(scope, receive, send)
    received = 0

    async def limited():
      nonlocal received
      message = await receive()
      received += len(message.get('body', b''))
      if received > self.limit:
        raise BodyTooLarge(self._message())
      return message

    return await self.app(scope, limited, send)

  def _message(self):
    return (f'The request body is larger than {self.limit // 2**20} MiB; send fewer or smaller '
            'files per request.')


class Timings:
  """Server-side time per request, summed: where a request's time goes."""

  def __init__(self):
    self.requests = 0
    self.sums = dict(decode_ms=0.0, queue_ms=0.0, model_ms=0.0, total_ms=0.0)

  def add(self, **values):
    self.requests += 1
    for k, v in values.items():
      self.sums[k] += v

  def to_json(self):
    means = {f'mean_{k}': (v / self.requests if self.requests else None)
             for k, v in self.sums.items()}
    return dict(requests=self.requests, **means)


def create(source, batcher, generator=None, *, max_wait_ms, max_body_bytes=MAX_BODY_BYTES):
  """The ASGI app serving `source` through `batcher` (already warmed up); `generator`
  (a generate.Generator) answers /v1/generate for language models."""
  decoder = inputs_lib.Decoder(source)
  timings = Timings()

  @contextlib.asynccontextmanager
  async def lifespan(_):
    batcher.start()
    yield
    batcher.stop()  # after uvicorn has drained the requests in flight

  app = FastAPI(title='jaxlab serve', lifespan=lifespan, docs_url=None, redoc_url=None,
                description='Predictions of a jaxlab model, batched dynamically.')
  docs.add(app)  # /docs and /redoc with their files served here, not from a CDN
  app.add_middleware(BodyLimit, limit=max_body_bytes)

  @app.exception_handler(BadInput)
  async def _bad_input(_, error):
    return error_response(error, error.status)

  @app.exception_handler(BodyTooLarge)
  async def _too_large(_, error):
    return error_response(error, 413)

  @app.exception_handler(HTTPException)
  async def _http_error(request, error):
    if error.status_code == 404:
      return error_response(f'No route {request.url.path}; see /docs for the routes.', 404)
    if error.status_code == 405:
      return error_response(f'{request.method} is not allowed on {request.url.path}; see /docs.',
                            405)
    return error_response(error.detail, error.status_code)

  @app.exception_handler(Exception)
  async def _server_error(_, error):
    return error_response(f'Internal error: {type(error).__name__}: {error}', 500)

  @app.get('/healthz', summary='200 once the model is loaded and compiled')
  async def healthz():
    return json_response({'status': 'ok'})

  @app.get('/v1/model', summary='The model: signature, checkpoint step, eval metrics, batching')
  async def model():
    return json_response(dict(
        signature=source.signature, checkpoint_step=source.step,
        eval_metrics=source.signature.get('eval_metrics', {}),
        input_kind=decoder.kind,
        batching=dict(max_batch=batcher.max_batch, max_wait_ms=max_wait_ms,
                      batch_sizes=batcher.sizes, compilations=source.compilations()),
        generate=dict(available=generator is not None, reason=source.no_sampler_reason),
        limits=dict(max_body_bytes=max_body_bytes, max_instances=inputs_lib.MAX_INSTANCES)))

  @app.get('/v1/stats', summary='Batches run, model time per batch and per request')
  async def stats():
    return json_response(dict(batcher=batcher.stats.to_json(), requests=timings.to_json()))

  @app.post('/v1/predict', summary='Predictions for files, texts or JSON arrays',
            openapi_extra=_PREDICT_DOC)
  async def predict(request: Request):
    started = time.perf_counter()
    batch, names, top_k = await _read_predict(request, decoder)
    decoded = time.perf_counter()
    outputs, timing = await batcher.predict(batch)
    predictions = source.task.predictions(outputs, top_k)
    if names:
      predictions = [dict(file=name, **p) for name, p in zip(names, predictions)]
    total_ms = 1000 * (time.perf_counter() - started)
    decode_ms = 1000 * (decoded - started)
    timings.add(decode_ms=decode_ms, total_ms=total_ms, **timing)
    header = (f'decode;dur={decode_ms:.2f}, queue;dur={timing["queue_ms"]:.2f}, '
              f'model;dur={timing["model_ms"]:.2f}, total;dur={total_ms:.2f}')
    return json_response({'predictions': predictions}, headers={'Server-Timing': header})

  @app.post('/v1/generate', summary='Continue a prompt (language models), streamed as '
            'server-sent events', openapi_extra=_GENERATE_DOC)
  async def generate(request: Request):
    if generator is None:
      raise BadInput(f'/v1/generate is not available: {source.no_sampler_reason}.',
                     501 if source.signature.get('exported') is not None else 400)
    body = json_body.parse_object(await request.body())
    events = await generator.start(body)
    return StreamingResponse(events, media_type='text/event-stream',
                             headers={'Cache-Control': 'no-cache'})

  return app


async def _read_predict(request, decoder):
  """(batch, file names or None, top_k) of a predict request."""
  content_type = request.headers.get('content-type', '').split(';')[0].strip().lower()
  top_k = _top_k(request.query_params.get('top_k', DEFAULT_TOP_K))
  body = await request.body()
  if not body:
    raise BadInput('The request body is empty; send image files, text or JSON instances.')
  if content_type == 'multipart/form-data':
    files, fields = inputs_lib.multipart(body, request.headers['content-type'])
    unknown = sorted(set(fields) - {'top_k'})
    if unknown:
      raise BadInput(f'Unknown form field(s) {unknown}: send the inputs as files, and '
                     'optionally top_k.')
    top_k = _top_k(fields.get('top_k', top_k))
    size = sum(len(data) for _, data in files)
    return await _decode(decoder.files, files, size), [name for name, _ in files], top_k
  if content_type == 'application/json':
    payload = json_body.parse_object(body)
    unknown = sorted(set(payload) - set(PREDICT_FIELDS))
    if unknown:
      raise BadInput(f'Unknown field(s) {unknown}; a predict request holds "instances" (or '
                     '"texts" for text models) and optionally "top_k".')
    top_k = _top_k(payload.get('top_k', top_k))
    if ('instances' in payload) == ('texts' in payload):
      raise BadInput('Missing field: give exactly one of "instances" (arrays shaped like the '
                     'model\'s input) or "texts" (strings, for text models).')
    if 'texts' in payload:
      texts = payload['texts']
      if not isinstance(texts, list):
        raise BadInput('"texts" must be a list of strings.')
      return decoder.texts(texts), None, top_k
    return await _decode(decoder.instances, payload['instances'], len(body)), None, top_k
  if content_type == 'text/plain':
    return decoder.texts([inputs_lib.utf8('body', body)]), None, top_k
  if content_type in IMAGE_TYPES + WAV_TYPES:
    if decoder.kind != ('image' if content_type in IMAGE_TYPES else 'audio'):
      raise BadInput(f'This model does not read {content_type}; send {decoder.what()}.', 415)
    return await _decode(decoder.files, [('body', body)], len(body)), None, top_k
  raise BadInput(f'Unsupported content type {content_type or "(none)"!r}; use '
                 'multipart/form-data (files), application/json ({"instances": [...]} or '
                 '{"texts": [...]}), text/plain, image/png, image/jpeg or audio/wav.', 415)


async def _decode(function, payload, size):
  """function(payload): on the event loop when small, on a worker thread when large."""
  if size > OFF_LOOP_BYTES:
    return await asyncio.to_thread(function, payload)
  return function(payload)


def _top_k(value):
  try:
    top_k = int(value)
  except (TypeError, ValueError):
    top_k = 0
  if isinstance(value, bool) or top_k < 1:
    raise BadInput(f'top_k={value!r} must be a positive integer.')
  return top_k


_PREDICT_DOC = {'requestBody': {'content': {
    'multipart/form-data': {'schema': {'type': 'object', 'properties': {
        'file': {'type': 'array', 'items': {'type': 'string', 'format': 'binary'}},
        'top_k': {'type': 'integer'}}}},
    'application/json': {'schema': {'type': 'object', 'properties': {
        'instances': {'type': 'array', 'description': 'examples shaped like the input'},
        'texts': {'type': 'array', 'items': {'type': 'string'}},
        'top_k': {'type': 'integer'}}}},
    'text/plain': {'schema': {'type': 'string'}},
    'image/png': {'schema': {'type': 'string', 'format': 'binary'}},
    'audio/wav': {'schema': {'type': 'string', 'format': 'binary'}}}}}

_GENERATE_DOC = {'requestBody': {'content': {'application/json': {'schema': {
    'type': 'object', 'required': ['prompt'], 'properties': {
        'prompt': {'type': 'string'}, 'max_tokens': {'type': 'integer'},
        'temperature': {'type': 'number'}, 'top_k': {'type': 'integer'},
        'top_p': {'type': 'number'}, 'seed': {'type': 'integer'}}}}}}}
