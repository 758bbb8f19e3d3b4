"""<workdir>/tracking.json: which tracking run a workdir's training logs to, so that a
resumed run continues it: {"backend": "mlflow", "uri": ..., "run_id": ...}."""

import json

from jaxlab import storage
from jaxlab.workdir import files as workdir_files


def read(workdir, backend, uri):
  """The stored record if it is for this backend and server, else None."""
  path = workdir_files.path(workdir, workdir_files.TRACKING)
  if not storage.exists(path):
    return None
  record = json.loads(storage.read_text(path))
  return record if record.get('backend') == backend and record.get('uri') == uri else None


def write(workdir, backend, uri, run_id):
  storage.write_text(workdir_files.path(workdir, workdir_files.TRACKING),
                     json.dumps(dict(backend=backend, uri=uri, run_id=run_id), indent=2) + '\n')
