"""Paths on every scheme (local, gs://, s3://, az://) and the up-front bucket checks.

`from jaxlab import storage` gives the file API of `jaxlab.storage.paths` and
`validate_workdir` of `jaxlab.storage.clouds`.
"""

from jaxlab.storage.clouds import PROBE_TIMEOUT_S, validate_workdir
from jaxlab.storage.paths import (
    STAGED_SCHEMES, SUPPORTED_SCHEMES, StorageError, absolute, bucket_path, configure,
    copy_file, exists, filesystem, is_remote, is_staged, make_dirs, move_tree, normalize,
    as_epath, read_lines, read_text, scheme, within, write_bytes, write_text)
