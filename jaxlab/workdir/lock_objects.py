"""One object in a bucket, written only under a precondition: what the workdir lock of a
bucket workdir is built on (jaxlab.workdir.lock).

Each store answers four calls, each atomic in the bucket:
- `create(data)`: the object's version, or None if it exists already;
- `read()`: (data, version), or (None, None) if there is none;
- `replace(version, data)`: the new version; raises Changed if the object is not at
  `version` any more;
- `delete(version)`: True if it deleted that version, False if it was changed or gone.
The version is GCS's generation, S3's ETag (If-None-Match / If-Match conditional writes
and deletes) or Azure's ETag (if_none_match / match_condition). Each store uses the
client and credentials of the workdir's fsspec filesystem.
"""

import fsspec.asyn

from jaxlab import storage


class Changed(Exception):
  """The object is not at the version the writer held."""


def for_url(url):
  kind = storage.scheme(storage.normalize(url))
  return dict(gs=GcsObject, s3=S3Object, az=AzureBlob)[kind](url)


class _Store:

  def __init__(self, url):
    self.fs = storage.filesystem(url)
    self.bucket, _, self.key = storage.bucket_path(url).partition('/')


class GcsObject(_Store):
  """gcsfs's JSON API calls with ifGenerationMatch (412 surfaces as FileExistsError)."""

  def _upload(self, data, **precondition):
    result = self.fs.call('POST', f'{self.fs._location}/upload/storage/v1/b/{self.bucket}/o',  # pylint: disable=protected-access
                          uploadType='media', name=self.key, data=data, json_out=True,
                          headers={'Content-Type': 'application/octet-stream'}, **precondition)
    return result['generation']

  def create(self, data):
    try:
      return self._upload(data, ifGenerationMatch='0')
    except FileExistsError:
      return None

  def read(self):
    try:
      info = self.fs.call('GET', 'b/{}/o/{}', self.bucket, self.key, json_out=True)
      _, content = self.fs.call('GET', 'b/{}/o/{}', self.bucket, self.key, alt='media',
                                generation=info['generation'])
    except FileNotFoundError:
      return None, None
    return content, info['generation']

  def replace(self, version, data):
    try:
      return self._upload(data, ifGenerationMatch=str(version))
    except FileExistsError:
      raise Changed() from None

  def delete(self, version):
    try:
      self.fs.call('DELETE', 'b/{}/o/{}', self.bucket, self.key, ifGenerationMatch=version)
      return True
    except (FileNotFoundError, FileExistsError):
      return False


class S3Object(_Store):
  """S3's conditional writes (2024) and deletes (2025), through s3fs's own client."""

  _LOST = ('PreconditionFailed', 'ConditionalRequestConflict', 'NoSuchKey', '404', '412')

  def _call(self, method, **kwargs):
    async def call():
      client = await self.fs.set_session()
      return await getattr(client, method)(Bucket=self.bucket, Key=self.key, **kwargs)
    return fsspec.asyn.sync(self.fs.loop, call)

  @classmethod
  def _lost(cls, error):
    response = getattr(error, 'response', None) or {}
    return response.get('Error', {}).get('Code') in cls._LOST

  def create(self, data):
    try:
      return self._call('put_object', Body=data, IfNoneMatch='*')['ETag']
    except Exception as error:  # pylint: disable=broad-except
      if self._lost(error):
        return None
      raise

  def read(self):
    try:
      response = self._call('get_object')
    except Exception as error:  # pylint: disable=broad-except
      if self._lost(error):
        return None, None
      raise

    async def body():
      async with response['Body'] as stream:
        return await stream.read()
    return fsspec.asyn.sync(self.fs.loop, body), response['ETag']

  def replace(self, version, data):
    try:
      return self._call('put_object', Body=data, IfMatch=version)['ETag']
    except Exception as error:  # pylint: disable=broad-except
      if self._lost(error):
        raise Changed() from None
      raise

  def delete(self, version):
    try:
      self._call('delete_object', IfMatch=version)
      return True
    except Exception as error:  # pylint: disable=broad-except
      if self._lost(error):
        return False
      raise


class AzureBlob(_Store):
  """Azure's ETag conditions, through adlfs's own (async) blob service client."""

  def _run(self, method, **kwargs):
    async def call():
      client = self.fs.service_client.get_blob_client(self.bucket, self.key)
      return await getattr(client, method)(**kwargs)
    return fsspec.asyn.sync(self.fs.loop, call)

  def create(self, data):
    from azure.core import exceptions  # pylint: disable=g-import-not-at-top
    try:
      return self._run('upload_blob', data=data, overwrite=False)['etag']
    except exceptions.ResourceExistsError:
      return None

  def read(self):
    from azure.core import exceptions  # pylint: disable=g-import-not-at-top

    async def call():
      client = self.fs.service_client.get_blob_client(self.bucket, self.key)
      downloader = await client.download_blob()
      return await downloader.readall(), downloader.properties.etag
    try:
      return fsspec.asyn.sync(self.fs.loop, call)
    except exceptions.ResourceNotFoundError:
      return None, None

  def replace(self, version, data):
    from azure.core import MatchConditions, exceptions  # pylint: disable=g-import-not-at-top
    try:
      return self._run('upload_blob', data=data, overwrite=True, etag=version,
                       match_condition=MatchConditions.IfNotModified)['etag']
    except (exceptions.ResourceModifiedError, exceptions.ResourceNotFoundError):
      raise Changed() from None

  def delete(self, version):
    from azure.core import MatchConditions, exceptions  # pylint: disable=g-import-not-at-top
    try:
      self._run('delete_blob', etag=version, match_condition=MatchConditions.IfNotModified)
      return True
    except (exceptions.ResourceModifiedError, exceptions.ResourceNotFoundError):
      return False
