"""The up-front checks of bucket workdirs: one table row per cloud (gs, s3, az).

`validate_workdir` checks, in order: the scheme is supported and names a bucket; the
cloud's client package is installed; credentials are found where the SDK itself looks
(and, where the endpoint is known, it answers); then one probe object is written and
deleted within a timeout. A failure is a StorageError with one paragraph saying what to
do. The clouds differ only in their row of `CLOUDS`: the words by which their errors say
"no such bucket", "denied" or "unreachable", and the commands that fix each. Nothing here
runs at import; the SDKs are imported only when a workdir uses them.
"""

import dataclasses
import importlib.util
import os
import time
from typing import Callable, Optional

from jaxlab.storage import credentials
from jaxlab.storage import paths
from jaxlab.storage.paths import StorageError

PROBE_TIMEOUT_S = 60.0
_DOCS = 'docs/cloud_storage.md'


@dataclasses.dataclass(frozen=True)
class Cloud:
  """How one cloud's workdirs are checked. Message formats take {workdir}, {bucket},
  {text} (the error) and {short} (its first 200 characters)."""
  package: str  # the fsspec client module
  install: str  # how to install it
  service: str  # its name in messages
  credentials: Callable  # (workdir, timeout_s) -> None, raises StorageError
  endpoint: Optional[Callable]  # workdir -> URL that must accept a connection, or None
  hint: str  # what to look at when the endpoint does not answer
  not_found: tuple  # words of an error that means the bucket does not exist
  denied: tuple  # ... that the credentials may not write
  unreachable: tuple  # ... that the endpoint did not answer
  missing_text: str
  denied_text: str
  unreachable_text: str
  failed_text: str


_S3_HINT = 'AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL if you set one'
_AZURE_HINT = 'the BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING if you set one'

CLOUDS = {
    'gs': Cloud(
        package='gcsfs', install="`pip install 'jaxlab[gcs]'` (or `pip install gcsfs`)",
        service='Google Cloud Storage', credentials=credentials.google, endpoint=None,
        hint='STORAGE_EMULATOR_HOST if you use an emulator',
        not_found=('bucket does not exist',), denied=('Forbidden', '403', '401'), unreachable=(),
        missing_text='the bucket gs://{bucket} does not exist. Create it with `gcloud storage '
        'buckets create gs://{bucket} --location=REGION` (a region near your accelerators), or '
        'fix the bucket name, and rerun.',
        denied_text='your credentials may not write to gs://{bucket} ({text}). Grant the '
        'account roles/storage.objectAdmin on the bucket, or log in as an account that has '
        'it, and rerun.',
        unreachable_text='',
        failed_text='a test write to gs://{bucket} failed ({text}). Check the bucket, the '
        'credentials and the network, and rerun.'),
    's3': Cloud(
        package='s3fs', install="`pip install 'jaxlab[s3]'`", service='Amazon S3',
        credentials=credentials.aws, endpoint=credentials.s3_endpoint, hint=_S3_HINT,
        not_found=('NoSuchBucket',),
        denied=('AccessDenied', 'Forbidden', 'InvalidAccessKeyId', 'SignatureDoesNotMatch',
                '403'),
        unreachable=('Could not connect', 'ConnectionRefused', 'Connect call failed',
                     'EndpointConnectionError', 'Name or service not known'),
        missing_text='the bucket s3://{bucket} does not exist. Create it with `aws s3 mb '
        's3://{bucket} --region REGION` (the region of your instances), or fix the bucket '
        'name, and rerun.',
        denied_text='your AWS credentials may not write to s3://{bucket} ({text}). Grant them '
        's3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket on the bucket, or use '
        'credentials that have them, and rerun.',
        unreachable_text='the S3 endpoint could not be reached ({text}). Check the network, '
        'and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL if you set one, and rerun.',
        failed_text='a test write to s3://{bucket} failed ({text}). Check the bucket, the '
        'credentials and the network, and rerun.'),
    'az': Cloud(
        package='adlfs', install="`pip install 'jaxlab[azure]'`", service='Azure Blob Storage',
        credentials=credentials.azure, endpoint=credentials.azure_endpoint, hint=_AZURE_HINT,
        not_found=('ContainerNotFound',),
        denied=('AuthorizationFailure', 'AuthorizationPermissionMismatch',
                'AuthenticationFailed', 'ClientAuthenticationError', '403'),
        unreachable=('Cannot connect', 'ServiceRequestError', 'Connection refused',
                     'Connect call failed', 'Name or service not known'),
        missing_text='the container {bucket} does not exist in the storage account. Create it '
        'with `az storage container create --name {bucket} --account-name ACCOUNT --auth-mode '
        'login`, or fix the name, and rerun.',
        denied_text='your Azure credentials may not write to the container {bucket} ({text}). '
        'Grant them the Storage Blob Data Contributor role on it, or use an account key or SAS '
        'token that allows writes, and rerun.',
        unreachable_text='the Azure Blob endpoint could not be reached ({short}). Check the '
        'network, and the BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING if you set one, and '
        'rerun.',
        failed_text='a test write to the container {bucket} failed ({text}). Check the '
        'container, the credentials and the network, and rerun.'),
}


def validate_workdir(workdir, timeout_s=PROBE_TIMEOUT_S):
  """Fails fast, with a StorageError that says what to do, if `workdir` is unusable.
  Local paths pass (their folder is created later)."""
  kind = paths.scheme(paths.normalize(workdir))
  if not kind:
    return
  if kind not in CLOUDS:
    raise StorageError(
        f'--workdir={workdir}: {kind}:// is not a supported storage. Use a local folder, '
        f'gs://bucket/path, s3://bucket/path or az://container/path (see {_DOCS}).')
  bucket = paths.bucket_path(workdir).partition('/')[0]
  if not bucket:
    raise StorageError(f'--workdir={workdir} names no bucket; write {kind}://BUCKET/PATH.')
  cloud = CLOUDS[kind]
  credentials.check_url_form(workdir)
  if not has_module(cloud.package):
    raise StorageError(
        f'--workdir={workdir} needs the {cloud.package} package to reach {cloud.service}. '
        f'Install it with {cloud.install} and rerun.')
  cloud.credentials(workdir, timeout_s)
  if cloud.endpoint:
    credentials.reachable(workdir, cloud.endpoint(workdir), timeout_s, cloud.hint)
  _probe_write(workdir, bucket, cloud, timeout_s)


def has_module(name):
  return importlib.util.find_spec(name) is not None


def _probe_write(workdir, bucket, cloud, timeout_s):
  """Writes and deletes one small object, in a thread so that a dead endpoint cannot hang
  us."""
  kind = paths.scheme(paths.normalize(workdir))
  probe = paths.as_epath(workdir) / f'.jaxlab-probe-{os.getpid()}-{time.time_ns()}'

  def write_and_delete():
    probe.write_text('jaxlab write probe\n')
    probe.unlink()

  try:
    paths.within(timeout_s, write_and_delete)
  except TimeoutError:
    raise StorageError(
        f'--workdir={workdir}: could not write to {kind}://{bucket} within {timeout_s:.0f} s; '
        f'the storage endpoint is unreachable or too slow. Check the network (and '
        f'{cloud.hint}) and rerun.') from None
  except Exception as error:  # pylint: disable=broad-except
    raise probe_error(cloud, workdir, bucket, error) from None


def probe_error(cloud, workdir, bucket, error):
  """The StorageError that explains a failed probe write on `cloud`."""
  text = f'{type(error).__name__}: {error}'
  if isinstance(error, FileNotFoundError) or any(w.lower() in text.lower()
                                                 for w in cloud.not_found):
    message = cloud.missing_text
  elif isinstance(error, PermissionError) or any(word in text for word in cloud.denied):
    message = cloud.denied_text
  elif any(word in text for word in cloud.unreachable):
    message = cloud.unreachable_text
  else:
    message = cloud.failed_text
  return StorageError(f'--workdir={workdir}: ' + message.format(
      workdir=workdir, bucket=bucket, text=text, short=text[:200]))
