"""The up-front checks of s3:// and az:// workdirs (gs:// ones are in jaxlab.storage).

Each scheme has a `Check`: `client(workdir, timeout_s)` raises StorageError when the
client package is missing or no credentials are found, looking where the SDK itself
looks; `probe_error` explains a failed probe write (jaxlab.storage writes and deletes one
object). Nothing here runs at import; the SDKs are imported only when a workdir uses them.
"""

import dataclasses
import importlib.util
import os
import socket
import urllib.parse
from typing import Callable

from jaxlab import storage
from jaxlab.storage import StorageError

_DOCS = 'docs/cloud_storage.md'
_S3_HINT = 'AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL if you set one'
_AZURE_HINT = 'the BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING if you set one'


@dataclasses.dataclass(frozen=True)
class Check:
  client: Callable  # (workdir, timeout_s) -> None, raises StorageError
  probe_error: Callable  # (workdir, bucket, error) -> StorageError
  unreachable_hint: str  # what to look at when the endpoint does not answer


def _require(workdir, module, extra, what):
  if importlib.util.find_spec(module) is None:
    raise StorageError(
        f'--workdir={workdir} needs the {module} package to reach {what}. Install it with '
        f"`pip install 'jaxlab[{extra}]'` and rerun.")


def _text(error):
  return f'{type(error).__name__}: {error}'


def _reachable(workdir, url, timeout_s, hint):
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


# --- S3 --------------------------------------------------------------------------------


def _s3_client(workdir, timeout_s):
  _require(workdir, 's3fs', 's3', 'Amazon S3')
  import botocore.session  # pylint: disable=g-import-not-at-top  (s3fs depends on it)
  try:
    credentials = storage.within(timeout_s, lambda: botocore.session.get_session().get_credentials())
  except Exception as error:  # pylint: disable=broad-except
    credentials, reason = None, f' ({_text(error)})'
  else:
    reason = ''
  if credentials is None:
    raise StorageError(
        f'--workdir={workdir} is on S3 but no AWS credentials were found{reason}. Set '
        f'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure` (or `aws sso '
        f'login` with AWS_PROFILE), or on EC2 attach an instance role that may read and '
        f'write the bucket. See {_DOCS}.')
  import fsspec.asyn  # pylint: disable=g-import-not-at-top
  store = storage.filesystem(workdir)
  client = fsspec.asyn.sync(store.loop, store.set_session)  # resolves the endpoint, no traffic
  _reachable(workdir, client.meta.endpoint_url, timeout_s, _S3_HINT)


def _s3_probe_error(workdir, bucket, error):
  text = _text(error)
  if isinstance(error, FileNotFoundError) or 'NoSuchBucket' in text:
    return StorageError(
        f'--workdir={workdir}: the bucket s3://{bucket} does not exist. Create it with '
        f'`aws s3 mb s3://{bucket} --region REGION` (the region of your instances), or fix '
        f'the bucket name, and rerun.')
  if isinstance(error, PermissionError) or any(
      word in text for word in ('AccessDenied', 'Forbidden', 'InvalidAccessKeyId',
                                'SignatureDoesNotMatch', '403')):
    return StorageError(
        f'--workdir={workdir}: your AWS credentials may not write to s3://{bucket} ({text}). '
        f'Grant them s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket on the '
        f'bucket, or use credentials that have them, and rerun.')
  if any(word in text for word in ('Could not connect', 'ConnectionRefused', 'Connect call failed',
                                   'EndpointConnectionError', 'Name or service not known')):
    return StorageError(
        f'--workdir={workdir}: the S3 endpoint could not be reached ({text}). Check the '
        f'network, and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL if you set one, and rerun.')
  return StorageError(
      f'--workdir={workdir}: a test write to s3://{bucket} failed ({text}). Check the '
      f'bucket, the credentials and the network, and rerun.')


# --- Azure Blob ------------------------------------------------------------------------


def _azure_client(workdir, timeout_s):
  container = storage.bucket_path(workdir).partition('/')[0]
  if '@' in container:  # abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH
    name, _, host = container.partition('@')
    path = storage.bucket_path(workdir).partition('/')[2]
    raise StorageError(
        f'--workdir={workdir} names the storage account in the URL, which jaxlab does not '
        f'read. Write --workdir=az://{name}/{path} and set '
        f'AZURE_STORAGE_ACCOUNT_NAME={host.split(".")[0]} (see {_DOCS}).')
  _require(workdir, 'adlfs', 'azure', 'Azure Blob Storage')
  _azure_credentials(workdir, timeout_s)
  _reachable(workdir, storage.filesystem(workdir).service_client.url, timeout_s, _AZURE_HINT)


def _azure_credentials(workdir, timeout_s):
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
  _require(workdir, 'azure.identity', 'azure', 'Azure Blob Storage with an Entra ID login')
  from azure import identity  # pylint: disable=g-import-not-at-top
  try:
    storage.within(timeout_s, lambda: identity.DefaultAzureCredential().get_token(
        'https://storage.azure.com/.default'))
  except Exception as error:  # pylint: disable=broad-except
    reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    raise StorageError(
        f'--workdir={workdir} is on Azure Blob Storage but no Azure credentials were found '
        f'for the account {environ["AZURE_STORAGE_ACCOUNT_NAME"]} ({reason}). Run `az login`, '
        f'or on an Azure VM give it a managed identity with the Storage Blob Data '
        f'Contributor role, or set AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN or '
        f'AZURE_STORAGE_CONNECTION_STRING. See {_DOCS}.') from None


def _azure_probe_error(workdir, container, error):
  text = _text(error)
  if isinstance(error, FileNotFoundError) or 'ContainerNotFound' in text:
    return StorageError(
        f'--workdir={workdir}: the container {container} does not exist in the storage '
        f'account. Create it with `az storage container create --name {container} '
        f'--account-name ACCOUNT --auth-mode login`, or fix the name, and rerun.')
  if isinstance(error, PermissionError) or any(
      word in text for word in ('AuthorizationFailure', 'AuthorizationPermissionMismatch',
                                'AuthenticationFailed', 'ClientAuthenticationError', '403')):
    return StorageError(
        f'--workdir={workdir}: your Azure credentials may not write to the container '
        f'{container} ({text}). Grant them the Storage Blob Data Contributor role on it, or '
        f'use an account key or SAS token that allows writes, and rerun.')
  if any(word in text for word in ('Cannot connect', 'ServiceRequestError', 'Connection refused',
                                   'Connect call failed', 'Name or service not known')):
    return StorageError(
        f'--workdir={workdir}: the Azure Blob endpoint could not be reached ({text[:200]}). '
        f'Check the network, and the BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING if you '
        f'set one, and rerun.')
  return StorageError(
      f'--workdir={workdir}: a test write to the container {container} failed ({text}). '
      f'Check the container, the credentials and the network, and rerun.')


CHECKS = {
    's3': Check(_s3_client, _s3_probe_error, _S3_HINT),
    'az': Check(_azure_client, _azure_probe_error, _AZURE_HINT),
}
