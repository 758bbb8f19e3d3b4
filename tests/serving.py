"""`jaxlab serve` in a subprocess for the tests: started on a free port, used once it
answers /healthz, and stopped."""

import contextlib
import subprocess
import sys
import time

import portpicker
import requests

from tests.conftest import ROOT


def wait_until_healthy(url, process, timeout=120):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if process.poll() is not None:
      raise AssertionError(f'the server exited {process.returncode}: '
                           f'{process.stdout.read()}')
    try:
      if requests.get(f'{url}/healthz', timeout=1).status_code == 200:
        return
    except requests.ConnectionError:
      time.sleep(0.2)
  raise AssertionError('the server did not become healthy')


def start(*args):
  """(base URL, Popen) of `jaxlab serve ARGS` on a free port, once healthy."""
  port = portpicker.pick_unused_port()
  process = subprocess.Popen([sys.executable, '-m', 'jaxlab.main', 'serve', f'--port={port}',
                              *args], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  url = f'http://127.0.0.1:{port}'
  try:
    wait_until_healthy(url, process)
  except BaseException:
    process.kill()
    raise
  return url, process


@contextlib.contextmanager
def serving(*args):
  """The base URL of `jaxlab serve ARGS` for the `with` block; the server is killed after."""
  url, process = start(*args)
  try:
    yield url
  finally:
    process.kill()
    process.wait()
