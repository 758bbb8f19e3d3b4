"""Answers POST /v1/predict (and /v1/generate for language models) over HTTP, batching
requests that arrive within --max_wait_ms. The port is bound first (a port in use fails
at once), then the model is loaded and every batch size compiled. SIGTERM or Ctrl+C stops
it after the requests in flight. Needs `pip install 'jaxlab[serve]'`."""

import sys

from jaxlab.commands import common, options
from jaxlab.commands.options import Flag

USAGE = ('jaxlab serve --workdir=DIR | --export=DIR [--host=127.0.0.1] [--port=8000] '
         '[--max_batch=32] [--max_wait_ms=5]',)
FLAGS = (
    options.WORKDIR, options.CHECKPOINT,
    Flag('export', 'string', None, 'A directory written by `jaxlab export` (instead of '
         '--workdir).'),
    Flag('host', 'string', '127.0.0.1', 'The address to listen on (0.0.0.0: every interface).'),
    Flag('port', 'integer', 8000, 'The TCP port to listen on.'),
    Flag('max_batch', 'integer', 32, 'The most examples run in one batch; batches are padded '
         'to a few sizes up to it (1, 2, 4, 8, 12, 16, 24, 32, ...), each compiled at start-up.'),
    Flag('max_wait_ms', 'float', 5.0, 'How long the first request of a batch waits for others '
         'to join it.'),
    *options.MULTI_HOST,
)
POSITIONAL = None


def run(args):
  """Checks the flags and binds the port first: a port in use fails at once, not after
  the model has loaded and compiled."""
  common.no_positional('serve', args)
  from jaxlab.serve import listener, server  # pylint: disable=g-import-not-at-top
  server.require_stack()
  server.check_options(args.max_batch, args.max_wait_ms)
  workdir = args.workdir and common.workdir(args)
  sock = listener.bind(args.host, args.port)
  common.start_runtime(args)
  return server.main(workdir=workdir, export=args.export, checkpoint=args.checkpoint,
                     host=args.host, port=args.port, max_batch=args.max_batch,
                     max_wait_ms=args.max_wait_ms, out=sys.stdout, sock=sock)
