"""Encoded images with class labels as a random-access source (image_folder, hf_disk).

`source[i]` reads record i's bytes and decodes them (`jaxlab.data.image_fit`): a dict of
'image' (uint8 size x size x channels) and 'label' (int32). With `encoded=True` the image
stays bytes, for a host transform to crop at random while streaming. Bytes that do not
decode, or a file that cannot be read, raise `sources.BadRecord` naming the file: the
streaming path skips and counts it (data.max_bad_records_fraction), the device path says
to stream.

Picklable and light (file paths, or an Arrow table's location): Grain's worker processes
each open their own copy. `rows(start, stop)` decodes a whole range in a pool of processes
(`decoded_cache.decode_rows`), for data placed on the devices.
"""

import numpy as np

from jaxlab.data import decoded_cache, image_fit, sources


class FileBytes:
  """Bytes of files by index."""

  def __init__(self, paths):
    self.paths = list(paths)

  def __len__(self):
    return len(self.paths)

  def __getitem__(self, index):
    with open(self.paths[index], 'rb') as f:
      return f.read()

  def describe(self, index):
    return self.paths[index]


class EncodedImageSource:
  """See the module docstring. `reader[i]` gives record i's bytes (OSError if unreadable),
  `reader.describe(i)` names it."""

  decodes = True  # decoding is the work: stream it through Grain's worker processes

  def __init__(self, reader, labels, *, size, channels, resize_mode, name, encoded=False):
    self.reader, self.labels = reader, np.asarray(labels, np.int32)
    self.size, self.channels, self.name, self.encoded = size, channels, name, encoded
    self.resize_mode = 'stretch' if resize_mode == 'stretch' else 'center_crop'

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, index):
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(index)
    try:
      data = self.reader[index]
      image = data if self.encoded else image_fit.fit(data, self.size, self.channels,
                                                       self.resize_mode)
    except OSError as error:
      raise sources.BadRecord(self, index, f'{self.reader.describe(index)}: {error}') from error
    except sources.BadRecord as error:
      raise sources.BadRecord(self, index,
                              f'{self.reader.describe(index)}: {error.reason}') from error
    return {'image': image, 'label': self.labels[index]}

  def rows(self, start, stop):
    """Examples [start, stop) decoded, stacked; in worker processes for large ranges."""
    if stop <= start:
      return {}
    return decoded_cache.decode_rows(self, start, stop)

  def __repr__(self):
    return self.name
