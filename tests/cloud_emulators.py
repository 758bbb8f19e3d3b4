"""Local S3 and Azure Blob emulators for tests: `with s3_emulator() as s3: ...`,
`with azure_emulator() as azure: ...` (the GCS one is in storage_emulators.py).

Each starts its server on a free port of 127.0.0.1, waits until it answers, creates
the bucket (container), and points every client at it for the duration of the block,
restoring the environment afterwards; the variables also reach subprocesses.
- S3: moto in server mode (pip `moto[server]`). AWS_ENDPOINT_URL_S3 is read by botocore,
  so s3fs and boto3 alike; fixed test keys; no instance-metadata lookups, no ~/.aws.
- Azure: Azurite's blob service (npm `azurite`), in memory, without telemetry.
  AZURE_STORAGE_CONNECTION_STRING with Azurite's well-known development account is read
  by adlfs and the lock's blob client.
"""

import contextlib
import dataclasses
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

try:
  from tests import storage_emulators
except ImportError:  # tests/ is on sys.path itself
  import storage_emulators

EmulatorUnavailable = storage_emulators.EmulatorUnavailable
patched_env = storage_emulators.patched_env

# Azurite's documented development account (public, accepted by Azurite alone).
AZURITE_ACCOUNT = 'devstoreaccount1'
AZURITE_KEY = ('Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/'
               'KBHBeksoGMGw==')


@dataclasses.dataclass
class Emulator:
  scheme: str  # 's3' or 'az'
  endpoint: str  # http://127.0.0.1:PORT[/account]
  bucket: str
  env: dict  # the variables that point clients at it

  def url(self, *parts):
    return '/'.join([f'{self.scheme}://{self.bucket}', *parts])

  def fresh_url(self, name='run'):
    return self.url(f'{name}-{uuid.uuid4().hex[:8]}')


def s3_env(endpoint):
  return {
      'AWS_ENDPOINT_URL_S3': endpoint, 'AWS_ACCESS_KEY_ID': 'testing',
      'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1',
      'AWS_EC2_METADATA_DISABLED': 'true', 'AWS_PROFILE': None, 'AWS_SESSION_TOKEN': None,
      'AWS_CONFIG_FILE': os.devnull, 'AWS_SHARED_CREDENTIALS_FILE': os.devnull,
      'EPATH_USE_TF': 'false',
  }


def azure_env(endpoint):
  return {
      'AZURE_STORAGE_CONNECTION_STRING': (
          f'DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};'
          f'AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};'),
      'AZURE_STORAGE_ACCOUNT_NAME': None, 'AZURE_STORAGE_ACCOUNT_KEY': None,
      'AZURE_STORAGE_SAS_TOKEN': None, 'EPATH_USE_TF': 'false',
  }


def missing_s3_packages():
  missing = [name for name in ('moto', 'flask', 's3fs') if importlib.util.find_spec(name) is None]
  return (f'{" and ".join(missing)} not installed; pip install "moto[server]" s3fs (in '
          "jaxlab's `test` extra)") if missing else ''


def azurite_command():
  local = os.path.join(os.path.dirname(__file__), '..', 'node_modules', '.bin', 'azurite-blob')
  return shutil.which('azurite-blob') or (local if os.path.exists(local) else None)


def missing_azure_packages():
  missing = [name for name in ('adlfs', 'azure.storage.blob')
             if importlib.util.find_spec(name) is None]
  if not azurite_command():
    missing.append('azurite (npm install -g azurite)')
  return f'{" and ".join(missing)} not installed' if missing else ''


@contextlib.contextmanager
def s3_emulator(bucket='jaxlab-test', startup_timeout_s=30.0):
  missing = missing_s3_packages()
  if missing:
    raise EmulatorUnavailable(missing)
  port = storage_emulators._free_port()  # pylint: disable=protected-access
  endpoint = f'http://127.0.0.1:{port}'
  with _server([sys.executable, '-m', 'moto.server', '-H', '127.0.0.1', '-p', str(port)],
               port, startup_timeout_s):
    request = urllib.request.Request(f'{endpoint}/{bucket}', method='PUT')
    urllib.request.urlopen(request, timeout=10).close()
    with patched_env(s3_env(endpoint)), _fresh_filesystems():
      yield Emulator('s3', endpoint, bucket, s3_env(endpoint))


@contextlib.contextmanager
def azure_emulator(container='jaxlab-test', startup_timeout_s=30.0):
  missing = missing_azure_packages()
  if missing:
    raise EmulatorUnavailable(missing)
  port = storage_emulators._free_port()  # pylint: disable=protected-access
  endpoint = f'http://127.0.0.1:{port}/{AZURITE_ACCOUNT}'
  command = [azurite_command(), '--blobHost', '127.0.0.1', '--blobPort', str(port),
             '--inMemoryPersistence', '--disableTelemetry', '--skipApiVersionCheck', '--loose']
  with _server(command, port, startup_timeout_s):
    env = azure_env(endpoint)
    from azure.storage.blob import BlobServiceClient  # pylint: disable=g-import-not-at-top
    with BlobServiceClient.from_connection_string(env['AZURE_STORAGE_CONNECTION_STRING']) as client:
      client.create_container(container)
    with patched_env(env), _fresh_filesystems():
      yield Emulator('az', endpoint, container, env)


@contextlib.contextmanager
def refused_endpoint(path=''):
  """http://127.0.0.1:PORT{path} where nothing answers: the port is bound by this
  process and never listened on, so connections are refused (a fixed port such as 1
  may be in use: root may bind it)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(('127.0.0.1', 0))
    yield f'http://127.0.0.1:{sock.getsockname()[1]}{path}'


@contextlib.contextmanager
def _server(command, port, startup_timeout_s):
  log = tempfile.NamedTemporaryFile(prefix='cloud-emulator-', suffix='.log', delete=False)
  process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + startup_timeout_s
    while True:
      if process.poll() is not None:
        raise RuntimeError(f'{command[0]} exited with code {process.returncode}: '
                           f'{storage_emulators._tail(log.name)}')  # pylint: disable=protected-access
      try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        break
      except OSError:
        if time.monotonic() > deadline:
          raise RuntimeError(f'{command[0]} did not listen on port {port} within '
                             f'{startup_timeout_s} s') from None
        time.sleep(0.1)
    yield
  finally:
    storage_emulators._stop(process)  # pylint: disable=protected-access
    log.close()
    os.unlink(log.name)


@contextlib.contextmanager
def _fresh_filesystems():
  """Drops cached s3fs/adlfs filesystems (and epath's), which keep the endpoint and
  credentials they were made with, on the way in and out."""
  _clear_filesystem_caches()
  try:
    yield
  finally:
    _clear_filesystem_caches()


def _clear_filesystem_caches():
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  for module, name in (('s3fs', 'S3FileSystem'), ('adlfs', 'AzureBlobFileSystem')):
    if importlib.util.find_spec(module) is not None:
      getattr(__import__(module), name).clear_instance_cache()
