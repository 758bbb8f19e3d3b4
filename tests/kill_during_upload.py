"""`python tests/kill_during_upload.py STEP jaxlab-args...`: runs the jaxlab CLI and
kill -9s it while it uploads the checkpoint at STEP, after the step's files and before
its commit marker: the worst moment for a staged (s3://, az://) checkpoint."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxlab.checkpoint import staging as checkpoint_staging  # pylint: disable=g-import-not-at-top
from jaxlab import main

_KILL_AT = int(sys.argv.pop(1))
_upload = checkpoint_staging.StagedCheckpoints._upload  # pylint: disable=protected-access


def _upload_then_die(self, step):
  if step == _KILL_AT:
    write = self._fs.pipe_file  # pylint: disable=protected-access

    def write_unless_marker(path, *args, **kwargs):
      if path.endswith(checkpoint_staging.COMMIT_MARKER):
        os.kill(os.getpid(), signal.SIGKILL)
      return write(path, *args, **kwargs)
    self._fs.pipe_file = write_unless_marker  # pylint: disable=protected-access
  return _upload(self, step)


checkpoint_staging.StagedCheckpoints._upload = _upload_then_die  # pylint: disable=protected-access
main.run()
