"""The server's socket, bound before anything slow starts and handed to uvicorn.

Binding first makes a port in use an error at once, not after the model has loaded and
compiled; and uvicorn serves this very socket (`Server.run(sockets=[...])`), so no other
process can take the port between the check and the serving, and what was checked (one
address, SO_REUSEADDR as uvicorn sets it) is what serves. The socket is only bound:
connections are refused, not queued, until `listen` once start-up is done.

A bound socket does not hold the port against another one bound with SO_REUSEADDR (two
`jaxlab serve` started together): the second to listen fails then, after its start-up,
with the same message.
"""

import errno
import socket

from jaxlab.errors import UserError

BACKLOG = 2048  # uvicorn's default --backlog


def bind(host, port):
  """A TCP socket bound to host:port; UserError naming the port and the fix if it is
  taken or cannot be had."""
  if not 1 <= port <= 65535:  # getaddrinfo would take 99999 as 34463
    raise UserError(f'--port={port} is not a TCP port; pass one from 1 to 65535, e.g. '
                    '--port=8000.')
  try:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
  except OSError as error:  # socket.gaierror
    raise UserError(f'Cannot listen on {host}:{port} ({error}): --host takes an address of '
                    'this machine, e.g. 127.0.0.1, 0.0.0.0 (every interface) or ::.') from None
  sock = socket.socket(family, kind, proto)
  # As uvicorn does: a port that a stopped server left in TIME_WAIT is free to reuse.
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind(address)
  except OSError as error:
    sock.close()
    raise UserError(_bind_error(host, port, error)) from None
  return sock


def listen(sock, host, port):
  """Opens the bound socket to connections (another process bound with SO_REUSEADDR may
  have started listening on the port since)."""
  try:
    sock.listen(BACKLOG)
  except OSError as error:
    sock.close()
    raise UserError(_bind_error(host, port, error)) from None


def _bind_error(host, port, error):
  if error.errno == errno.EADDRINUSE:
    return (f'Port {port} on {host} is in use: another server (perhaps an earlier '
            f'`jaxlab serve`) listens there. Pass a free port, e.g. --port={_free_port(host)}, '
            'or stop what is using it.')
  if error.errno == errno.EACCES:
    return (f'Port {port} on {host} needs privileges to listen on ({error.strerror}); pass '
            'a port above 1023, e.g. --port=8000.')
  return (f'Cannot listen on {host}:{port} ({error}); pick another --port or --host, or stop '
          'what is using it.')


def _free_port(host):
  """A port the system finds free on `host` now (a suggestion: it may be taken later)."""
  family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
  with socket.socket(family, socket.SOCK_STREAM) as probe:
    probe.bind((host, 0))
    return probe.getsockname()[1]
