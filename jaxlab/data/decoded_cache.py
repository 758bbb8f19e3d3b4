"""Decoded rows of a record source: decoded in parallel once, memory-mapped afterwards.

Decoding every PNG of a TFDS split on one core costs ~80-130 us a record (~6-9 s for
Fashion-MNIST) in every run. `cached_rows` decodes rows [start, stop) of a source in a
pool of worker processes (each opens its own copy of the source), writes them as one
.npy file per feature, and later runs memory-map those files: a second run starts as
fast as one on an .npz file.

The cache folder, `<cache_dir>/<name>/<key>/`, is keyed by the data set's name,
version and split, the rows, the features, the shard files (names, sizes, records)
and `FORMAT`; a change to any of them makes a new entry. An entry is written into a
temporary folder and renamed into place when complete, so a run killed mid-write
leaves nothing that a later run reads, and of two runs writing the same entry the
first rename wins and the other reads it. Splits whose decoded size exceeds
`max_bytes` are not cached (stream them record by record instead).
"""

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import socket
import uuid

from absl import logging
import numpy as np

from jaxlab.runtime import processes
from jaxlab.data import sources

DEFAULT_CACHE_DIR = '~/.cache/jaxlab/datasets'
DEFAULT_MAX_BYTES = 16 * 2**30
FORMAT = 1  # bump when the layout of an entry changes
MIN_PARALLEL_ROWS = 4096  # below this, starting worker processes costs more than it saves
MIN_CHUNK_ROWS = 1024  # rows a worker decodes per task
_META = 'meta.json'


def cached_rows(source, start=0, stop=None, *, cache_dir=DEFAULT_CACHE_DIR, features=None,
                max_bytes=DEFAULT_MAX_BYTES, workers=None):
  """Rows [start, stop) of `source` as {feature: array (stop - start, ...)}.

  Memory-mapped, read-only, from the cache when an entry for these rows (or for the
  whole split) exists; otherwise decoded in parallel and, if the source can be
  fingerprinted (`source.files()`) and fits in `max_bytes`, written to the cache
  first. `features` names the features to keep (default: every fixed-shape numeric
  one). `cache_dir=None` decodes without caching.
  """
  stop = len(source) if stop is None else stop
  key = _key(source, start, stop, features) if cache_dir else None
  if key is None:
    return decode_rows(source, start, stop, features=features, workers=workers)
  root = os.path.join(os.path.expanduser(cache_dir), _safe(source.name))
  whole = _key(source, 0, len(source), features)
  for candidate, offset in ((key, 0), (whole, start)):
    rows = _read(os.path.join(root, candidate))
    if rows is not None:
      return {k: v[offset:offset + stop - start] for k, v in rows.items()}
  return _write(source, start, stop, features, os.path.join(root, key), max_bytes, workers)


def decode_rows(source, start, stop, *, features=None, workers=None, out_dir=None):
  """Rows [start, stop) decoded in a pool of `workers` processes (default: one per
  core), stacked per feature; into .npy files in `out_dir` when given."""
  first = _select(source[start], features)
  layout = {k: (v.shape, v.dtype) for k, v in first.items()}
  files = None
  if out_dir is not None:
    files = {k: os.path.join(out_dir, f'{k}.npy') for k in layout}
    for k, (shape, dtype) in layout.items():
      np.lib.format.open_memmap(files[k], 'w+', dtype, (stop - start, *shape)).flush()
  chunks = _chunks(start, stop, workers)
  parts = None
  if len(chunks) > 1 and _reopens_elsewhere(source):
    parts = _in_pool(source, chunks, layout, files, start, workers)
  if parts is None:
    parts = [_decode_chunk(source, a, b, layout, files, start) for a, b in chunks]
  for part in parts:
    if isinstance(part, _Bad):
      raise sources.BadRecord(source, part.index, part.reason)
  if files is not None:
    return {k: np.load(f, mmap_mode='r') for k, f in files.items()}
  return {k: np.concatenate([p[k] for p in parts]) for k in layout}


class _Bad:
  """A BadRecord as a worker returns it (the exception itself does not unpickle)."""

  def __init__(self, index, reason):
    self.index, self.reason = index, reason


def _decode_chunk(source, a, b, layout, files, start):
  """Rows [a, b) into arrays, or into rows [a - start, b - start) of `files`."""
  out = {k: np.empty((b - a, *shape), dtype) for k, (shape, dtype) in layout.items()}
  try:
    examples = _read_many(source, range(a, b))
  except sources.BadRecord as bad:
    return _Bad(bad.index, bad.reason)
  for i, example in enumerate(examples):
    for k in layout:
      out[k][i] = example[k]
  if files is None:
    return out
  for k, f in files.items():
    target = np.load(f, mmap_mode='r+')
    target[a - start:b - start] = out[k]
    target.flush()
  return None


def _read_many(source, indices):
  if hasattr(source, '__getitems__'):
    return source.__getitems__(list(indices))
  return [source[i] for i in indices]


_WORKER_SOURCE = None


def _init_worker(source):
  global _WORKER_SOURCE
  _WORKER_SOURCE = source


def _worker_chunk(a, b, layout, files, start):
  return _decode_chunk(_WORKER_SOURCE, a, b, layout, files, start)


def _in_pool(source, chunks, layout, files, start, workers):
  """The chunks' results from a process pool, or None if the pool could not start."""
  # Spawned, not forked: the parent may run JAX's threads, which a fork would copy mid-work.
  context = multiprocessing.get_context('spawn')
  try:
    with concurrent.futures.ProcessPoolExecutor(
        min(_workers(workers), len(chunks)), mp_context=context,
        initializer=_init_worker, initargs=(source,)) as pool:
      futures = [pool.submit(_worker_chunk, a, b, layout, files, start) for a, b in chunks]
      return [f.result() for f in futures]
  except concurrent.futures.process.BrokenProcessPool as error:
    # A script without `if __name__ == '__main__':` cannot spawn workers (they re-run it).
    logging.warning('Decoding %s on one core: its worker processes failed to start (%s). '
                    'Guard the script that calls it with `if __name__ == "__main__":`.',
                    source, error)
    return None


def _workers(workers):
  return workers or os.cpu_count() or 1


def _chunks(start, stop, workers):
  count = stop - start
  if count < MIN_PARALLEL_ROWS or _workers(workers) == 1:
    return [(start, stop)] if count else []
  size = max(MIN_CHUNK_ROWS, -(-count // (_workers(workers) * 4)))  # 4 chunks a worker balance the load
  return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def _reopens_elsewhere(source):
  """Whether a worker process can open its own copy (a mocked data set cannot)."""
  files = getattr(source, 'files', None)
  return files is None or files() is not None


def _select(example, features):
  if features is not None:
    return {k: np.asarray(example[k]) for k in features}
  return {k: np.asarray(v) for k, v in example.items()
          if isinstance(v, (np.ndarray, np.generic, int, float))
          and np.asarray(v).dtype.kind in 'biuf'}


def _key(source, start, stop, features):
  """The entry's folder name, or None where the source cannot be fingerprinted."""
  files = source.files() if hasattr(source, 'files') else None
  if not files:
    return None
  info = source.info
  identity = dict(name=source.name, version=str(info.version), split=str(source.split),
                  records=len(source), start=start, stop=stop, files=files,
                  features=sorted(features) if features else None,
                  decode=getattr(source, 'decode', True), format=FORMAT)
  digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
  return f'{info.version}-{_safe(str(source.split))}-{start}-{stop}-of-{len(source)}-{digest}'


def _safe(text):
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', text)


def _read(folder):
  """The entry's arrays, memory-mapped, or None if there is no complete entry."""
  try:
    with open(os.path.join(folder, _META)) as f:
      meta = json.load(f)
    rows = {k: np.load(os.path.join(folder, f'{k}.npy'), mmap_mode='r') for k in meta['features']}
  except (OSError, ValueError, KeyError):
    return None
  if any(len(v) != meta['rows'] for v in rows.values()):
    return None
  return rows


def _write(source, start, stop, features, folder, max_bytes, workers):
  first = _select(source[start], features) if stop > start else {}
  size = sum(v.nbytes for v in first.values()) * (stop - start)
  if size > max_bytes or stop <= start:
    return decode_rows(source, start, stop, features=features, workers=workers)
  os.makedirs(os.path.dirname(folder), exist_ok=True)
  _remove_abandoned(folder)
  temporary = f'{folder}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}'
  os.makedirs(temporary)
  try:
    decode_rows(source, start, stop, features=features, workers=workers, out_dir=temporary)
    with open(os.path.join(temporary, _META), 'w') as f:
      json.dump(dict(features=sorted(first), rows=stop - start, source=repr(source)), f)
    try:
      os.rename(temporary, folder)
    except OSError:  # another process completed the entry first: read theirs
      pass
  finally:
    shutil.rmtree(temporary, ignore_errors=True)
  rows = _read(folder)
  if rows is None:
    raise OSError(f'Cannot read the decoded cache just written at {folder}: is the disk full '
                  f'or the folder shared with another machine? Pass another cache_dir.')
  return rows


def _remove_abandoned(folder):
  """Deletes temporary folders of this entry left by killed processes on this machine."""
  parent, prefix = os.path.dirname(folder), os.path.basename(folder) + '.tmp-'
  host = socket.gethostname()
  for name in os.listdir(parent):
    if not name.startswith(prefix):
      continue
    owner_host, _, rest = name[len(prefix):].rpartition('-')[0].rpartition('-')
    if owner_host == host and rest.isdigit() and not processes.alive(int(rest)):
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
