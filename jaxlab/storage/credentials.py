"""Where each cloud's SDK finds credentials, checked before the first write: a missing
login is one paragraph naming the variables or command that fix it, not a stack from
deep inside an SDK. Used by the table in jaxlab.storage.clouds."""

import os
import socket
import urllib.parse

from jaxlab.storage import paths
from jaxlab.storage.paths import StorageError

_DOCS = 'docs/cloud_storage.md'


def _text(error):
  return f'{type(error).__name__}: {error}'


def reachable(workdir, url, timeout_s, hint):
  """A TCP connection to the endpoint: a dead one fails here in milliseconds, where the
  SDKs' retries would take tens of seconds to give up."""
  parsed = urllib.parse.urlsplit(url)
  port = parsed.port or (443 if parsed.scheme == 'https' else 80)
  try:
    socket.create_connection((parsed.hostname, port), timeout=min(timeout_s, 10.0)).close()
  except OSError as error:
    raise StorageError(
        f'--workdir={workdir}: could not connect to the storage endpoint {url} ({_text(error)}). '
        f'Check the network (and {hint}) and rerun.') from None


def check_url_form(workdir):
  """abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH names the account, which jaxlab
  does not read."""
  container = paths.bucket_path(workdir).partition('/')[0]
  if paths.scheme(paths.normalize(workdir)) == 'az' and '@' in container:
    name, _, host = container.partition('@')
    path = paths.bucket_path(workdir).partition('/')[2]
    raise StorageError(
        f'--workdir={workdir} names the storage account in the URL, which jaxlab does not '
        f'read. Write --workdir=az://{name}/{path} and set '
        f'AZURE_STORAGE_ACCOUNT_NAME={host.split(".")[0]} (see {_DOCS}).')


def google(workdir, timeout_s):
  del timeout_s  # google.auth.default() reads files and the environment only
  emulator = os.environ.get('STORAGE_EMULATOR_HOST')
  if emulator:
    if not os.environ.get('TENSORSTORE_GCS_HTTP_URL'):
      raise StorageError(
          f'STORAGE_EMULATOR_HOST={emulator} is set but TENSORSTORE_GCS_HTTP_URL is not, so '
          f'checkpoint arrays would go to the real Google endpoint and the save would hang '
          f'retrying. Set TENSORSTORE_GCS_HTTP_URL to the same emulator URL, or unset both.')
    return
  import google.auth  # pylint: disable=g-import-not-at-top
  from google.auth import exceptions  # pylint: disable=g-import-not-at-top
  try:
    google.auth.default()
  except exceptions.DefaultCredentialsError as error:
    raise StorageError(
        f'--workdir={workdir} is on Google Cloud Storage but no Google credentials were '
        f'found ({error}). On your machine run `gcloud auth application-default login`; '
        f'elsewhere set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file; on a '
        f'Cloud TPU VM or GCE, give the VM a service account with Storage Object Admin on '
        f'the bucket. See {_DOCS}.') from None


def aws(workdir, timeout_s):
  import botocore.session  # pylint: disable=g-import-not-at-top  (s3fs depends on it)
  try:
    found = paths.within(timeout_s, lambda: botocore.session.get_session().get_credentials())
  except Exception as error:  # pylint: disable=broad-except
    found, reason = None, f' ({_text(error)})'
  else:
    reason = ''
  if found is None:
    raise StorageError(
        f'--workdir={workdir} is on S3 but no AWS credentials were found{reason}. Set '
        f'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure` (or `aws sso '
        f'login` with AWS_PROFILE), or on EC2 attach an instance role that may read and '
        f'write the bucket. See {_DOCS}.')


def s3_endpoint(workdir):
  import fsspec.asyn  # pylint: disable=g-import-not-at-top
  store = paths.filesystem(workdir)
  client = fsspec.asyn.sync(store.loop, store.set_session)  # resolves the endpoint, no traffic
  return client.meta.endpoint_url


def azure(workdir, timeout_s):
  environ = os.environ
  if environ.get('AZURE_STORAGE_CONNECTION_STRING'):
    return
  if not environ.get('AZURE_STORAGE_ACCOUNT_NAME'):
    raise StorageError(
        f'--workdir={workdir} is on Azure Blob Storage but no storage account is '
        f'configured. Set AZURE_STORAGE_ACCOUNT_NAME to the account that holds the '
        f'container (and log in with `az login`, or set AZURE_STORAGE_ACCOUNT_KEY or '
        f'AZURE_STORAGE_SAS_TOKEN), or set AZURE_STORAGE_CONNECTION_STRING. See {_DOCS}.')
  if any(environ.get(name) for name in ('AZURE_STORAGE_ACCOUNT_KEY', 'AZURE_STORAGE_SAS_TOKEN',
                                         'AZURE_STORAGE_CLIENT_SECRET')):
    return
  if environ.get('AZURE_STORAGE_ANON', 'false').lower() not in ('false', '0', 'f', ''):
    return  # a public container, as adlfs reads it
  # adlfs then signs in with DefaultAzureCredential: env, managed identity, `az login`.
  import importlib.util  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec('azure.identity') is None:
    raise StorageError(
        f'--workdir={workdir} needs the azure.identity package to reach Azure Blob Storage '
        "with an Entra ID login. Install it with `pip install 'jaxlab[azure]'` and rerun.")
  from azure import identity  # pylint: disable=g-import-not-at-top
  try:
    paths.within(timeout_s, lambda: identity.DefaultAzureCredential().get_token(
        'https://storage.azure.com/.default'))
  except Exception as error:  # pylint: disable=broad-except
    reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    raise StorageError(
        f'--workdir={workdir} is on Azure Blob Storage but no Azure credentials were found '
        f'for the account {environ["AZURE_STORAGE_ACCOUNT_NAME"]} ({reason}). Run `az login`, '
        f'or on an Azure VM give it a managed identity with the Storage Blob Data '
        f'Contributor role, or set AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN or '
        f'AZURE_STORAGE_CONNECTION_STRING. See {_DOCS}.') from None


def azure_endpoint(workdir):
  return paths.filesystem(workdir).service_client.url
