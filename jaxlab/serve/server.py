"""Running the server: check the stack and options, load and compile the model, then
listen until SIGTERM (see jaxlab.serve for the parts)."""

import gc
import signal
import sys
import time

from jaxlab.errors import UserError
from jaxlab.serve import listener

STACK = ('fastapi', 'uvicorn', 'multipart', 'fastapi_offline')
GRACEFUL_SHUTDOWN_S = 30  # how long requests in flight may take after SIGTERM
SWITCH_INTERVAL_S = 0.0002


def require_stack():
  """UserError with the pip command if the server's packages are missing."""
  import importlib.util
  missing = [name for name in STACK if importlib.util.find_spec(name) is None]
  if missing:
    raise UserError(f'`jaxlab serve` needs {", ".join(missing)}: '
                    "pip install 'jaxlab[serve]' (fastapi, uvicorn, python-multipart, "
                    'fastapi-offline).')


def check_options(max_batch, max_wait_ms):
  if not 1 <= max_batch <= 4096:
    raise UserError(f'--max_batch={max_batch} must be between 1 and 4096.')
  if not 0 <= max_wait_ms <= 10_000:
    raise UserError(f'--max_wait_ms={max_wait_ms} must be between 0 and 10000.')


def main(*, workdir=None, export=None, checkpoint='best', host='127.0.0.1', port=8000,
         max_batch=32, max_wait_ms=5.0, out=sys.stdout, sock=None):
  """Serves until SIGTERM or Ctrl+C; returns 0 once the requests in flight are answered.
  `sock`: host:port already bound (listener.bind), as `jaxlab serve` does before JAX
  starts; bound here otherwise."""
  require_stack()
  check_options(max_batch, max_wait_ms)
  sock = sock or listener.bind(host, port)
  try:
    return _serve(workdir, export, checkpoint, host, port, max_batch, max_wait_ms, out, sock)
  finally:
    sock.close()  # a failed start-up frees the port too


def _serve(workdir, export, checkpoint, host, port, max_batch, max_wait_ms, out, sock):
  from jaxlab.serve import app as app_lib, batcher as batcher_lib, generate, inputs, sources
  sources.check_choice(workdir, export)
  import uvicorn
  started = time.perf_counter()
  source = sources.open_source(workdir=workdir, export=export, checkpoint=checkpoint)
  batcher = batcher_lib.Batcher(source, max_batch=max_batch, max_wait_ms=max_wait_ms,
                                multiple=source.multiple)
  batcher.warm_up(inputs.Decoder(source).example())
  generator = generate.Generator(source, batcher) if source.sampler else None
  if generator:
    generator.warm_up()
  app = app_lib.create(source, batcher, generator, max_wait_ms=max_wait_ms)
  print(f'Serving {workdir or export} (step {source.step}) on http://{host}:{port} '
        f'(docs: /docs): batch sizes {batcher.sizes} compiled in '
        f'{time.perf_counter() - started:.1f} s, max_wait_ms={max_wait_ms:g}. SIGTERM or '
        'Ctrl+C stops it after the requests in flight.', file=out, flush=True)
  # The event loop and the model thread share the GIL: a thread waiting for it (the model
  # thread back from XLA, the loop with a batch's answers) waits up to this interval
  # (5 ms by default) while the other runs Python.
  sys.setswitchinterval(SWITCH_INTERVAL_S)
  # The objects of start-up (JAX, Flax, the compiled programs) are never freed: keep the
  # garbage collector from walking them again: a full pass took 170 ms (2 CPU cores),
  # every request waiting.
  gc.collect()
  gc.freeze()
  server = uvicorn.Server(uvicorn.Config(
      app, host=host, port=port, log_level='warning', access_log=False,
      backlog=listener.BACKLOG, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S))
  # uvicorn drains on these signals, then raises them again under the handlers it found:
  # with these, that second delivery is a no-op and the process exits 0.
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: None)
  listener.listen(sock, host, port)
  server.run(sockets=[sock])
  if not server.started:
    raise UserError(f'The server could not start on {host}:{port} (see the message above).')
  return 0
