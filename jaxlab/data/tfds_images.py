"""TFDS image-classification sets (MNIST, Fashion-MNIST, CIFAR-10) as Splits whose
whole-range reads go through `jaxlab.data.decoded_cache`: decoded in parallel once,
memory-mapped on later runs.

Once a whole split is cached, a small index beside the cache entries
(`<cache_dir>/<name>/index-<hash>.json`) records where its arrays are, the data set's
info, and the shard files' paths, sizes and modification times: a later `load` whose
shards, prepared versions and TFDS version are unchanged memory-maps the arrays without
importing TFDS (~1 s) or opening the data set; any change misses and reads TFDS.
"""

import hashlib
import importlib.metadata
import json
import os
import uuid

import numpy as np

from jaxlab.data.tfds_source import PIXEL_MAX, TfdsSource, source


class CachedRows:
  """A TFDS split whose whole-range reads (`rows`, what the device-resident placement
  uses) go through the decoded cache; single examples (streaming) read the records."""

  def __init__(self, source, cache_dir, features, info=None):
    self.source, self.cache_dir, self.features, self.info = source, cache_dir, features, info

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    return self.source[index]

  def rows(self, start, stop):
    from jaxlab.data import decoded_cache
    rows = decoded_cache.cached_rows(self.source, start, stop, cache_dir=self.cache_dir,
                                     features=self.features)
    if self.cache_dir and self.info and (start, stop) == (0, len(self.source)):
      _write_index(self, rows)
    return rows

  def __repr__(self):
    return repr(self.source)


def load(data_config, workdir=None):
  """An image-classification data set (see the module doc) as Splits."""
  del workdir
  from jaxlab.data.info import Splits, image_info  # pylint: disable=g-import-not-at-top
  name, data_dir = data_config.name, data_config.data_dir
  cache_dir = data_config.cache_dir or None  # '' turns the cache off
  features = ('image', 'label')
  indexed = _read_indexes(name, data_dir, cache_dir, features) if cache_dir else None
  if indexed:
    return indexed
  train, test = source(name, 'train', data_dir), source(name, 'test', data_dir)
  image = train.info.features['image']
  label = train.info.features['label']
  info = image_info(name, image.shape, label.num_classes, pixel_max=PIXEL_MAX,
                    class_names=label.names)
  return Splits(info, CachedRows(train, cache_dir, features, info),
                CachedRows(test, cache_dir, features, info))


class IndexedRows:
  """A cached split found through its index: whole-range reads slice the memory-mapped
  arrays; single examples (streaming) open the records on first use."""

  def __init__(self, arrays, source):
    self.arrays, self.source = arrays, source

  def __len__(self):
    return len(self.arrays['label'])

  def __getitem__(self, index):
    return self.source[index]

  def rows(self, start, stop):
    return {k: v[start:stop] for k, v in self.arrays.items()}

  def __reduce__(self):  # to a worker process: the files' names, not their bytes
    return _memory_mapped, ({k: v.filename for k, v in self.arrays.items()}, self.source)

  def __repr__(self):
    return repr(self.source)


def _memory_mapped(files, source):
  return IndexedRows({k: np.load(f, mmap_mode='r') for k, f in files.items()}, source)


def _index_path(cache_dir, name, data_dir, split, features):
  from jaxlab.data import decoded_cache
  identity = dict(name=name, data_dir=data_dir, split=split, features=sorted(features),
                  tfds_data_dir=os.environ.get('TFDS_DATA_DIR'), format=decoded_cache.FORMAT)
  digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
  return os.path.join(os.path.expanduser(cache_dir), decoded_cache._safe(name),  # pylint: disable=protected-access
                      f'index-{decoded_cache._safe(split)}-{digest}.json')  # pylint: disable=protected-access


def _fingerprint(shards):
  """What must not change for an index to hold: the shards, the data set's prepared
  versions (its folder's listing), its dataset_info.json and the TFDS version."""
  version_dir = os.path.dirname(shards[0])
  stamped = [*shards, os.path.join(version_dir, 'dataset_info.json')]
  return dict(files=[[f, os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in stamped],  # JSON's lists
              versions=sorted(os.listdir(os.path.dirname(version_dir))),
              tfds=importlib.metadata.version('tensorflow-datasets'))


def _write_index(cached, rows):
  from tensorflow_datasets.core.data_sources import base
  source = cached.source
  try:
    shards = [i.filename for i in base.file_instructions(source.info, source.reader.split)]
    record = dict(arrays={k: v.filename for k, v in rows.items()}, rows=len(source),
                  info=cached.info.to_json(), fingerprint=_fingerprint(shards))
  except (OSError, TypeError, AttributeError, KeyError, IndexError):
    return  # not files on this machine, or not memory-mapped: no index
  path = _index_path(cached.cache_dir, source.name, source.data_dir, str(source.split),
                     cached.features)
  temporary = f'{path}.tmp-{uuid.uuid4().hex[:8]}'
  try:
    with open(temporary, 'w') as f:
      json.dump(record, f)
    os.replace(temporary, path)  # readers see the old index or the new, never half of one
  except OSError:  # the index only saves time; the cache entry itself is complete
    pass


def _read_indexed_split(name, data_dir, cache_dir, split, features):
  """(info, IndexedRows) of a split whose index still holds, else None."""
  try:
    with open(_index_path(cache_dir, name, data_dir, split, features)) as f:
      record = json.load(f)
    shards = [f for f, _, _ in record['fingerprint']['files'][:-1]]
    if _fingerprint(shards) != record['fingerprint']:
      return None
    arrays = {k: np.load(f, mmap_mode='r') for k, f in record['arrays'].items()}
  except (OSError, ValueError, KeyError, IndexError, TypeError,
          importlib.metadata.PackageNotFoundError):
    return None
  if sorted(arrays) != sorted(features) or any(len(a) != record['rows'] for a in arrays.values()):
    return None
  return record['info'], IndexedRows(arrays, TfdsSource(name, split, data_dir))


def _read_indexes(name, data_dir, cache_dir, features):
  """Splits read through the indexes of both splits, or None if either misses."""
  from jaxlab.data.info import DatasetInfo, Splits  # pylint: disable=g-import-not-at-top
  data_dir = os.path.expanduser(data_dir) if data_dir else None
  found = [_read_indexed_split(name, data_dir, cache_dir, s, features) for s in ('train', 'test')]
  if None in found:
    return None
  return Splits(DatasetInfo.from_json(found[0][0]), found[0][1], found[1][1])
