"""Appending lines to a workdir file that may live in a bucket.

Object stores cannot append, so `LineWriter` appends to a local file, but for a remote
one keeps every line in memory and rewrites the whole object on `flush()`. An upload
replaces an object atomically, so a reader sees the old or the new file, never half of
one. Reopening an existing remote file loads its lines first, so a resumed run keeps its
history. Cost: each flush uploads the whole file; fine for one record per log step
(thousands of lines), not for per-example logs.
"""

import os
import time

from jaxlab.storage.paths import is_remote, read_lines, write_text


class LineWriter:
  """Appends lines to a text file, local or in a bucket (see the module docstring).

  Local: every `write` reaches the file at once. Remote: lines are uploaded on
  `flush()`, on `close()`, and by a `write` when `flush_secs` have passed since the
  last upload, so a crash loses at most that window.
  """

  def __init__(self, path, flush_secs=60.0):
    self._path = os.fspath(path)
    self._remote = is_remote(path)
    self._flush_secs = flush_secs
    if self._remote:
      self._lines = read_lines(path)
      self._uploaded = len(self._lines)
      self._last_upload = time.monotonic()
    else:
      self._file = open(path, 'a', encoding='utf-8')

  def write(self, line):
    if not self._remote:
      self._file.write(line + '\n')
      self._file.flush()
      return
    self._lines.append(line)
    if time.monotonic() - self._last_upload >= self._flush_secs:
      self.flush()

  def flush(self):
    if not self._remote:
      self._file.flush()
      return
    if len(self._lines) != self._uploaded:
      write_text(self._path, ''.join(line + '\n' for line in self._lines))
      self._uploaded = len(self._lines)
    self._last_upload = time.monotonic()

  def close(self):
    if self._remote:
      self.flush()
    else:
      self._file.close()
