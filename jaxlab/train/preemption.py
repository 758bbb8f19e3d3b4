"""Turns SIGTERM and SIGINT into a request to save and stop at the next block end.

With several processes, every process must stop at the same step: the request is
agreed on across processes (any process signalled -> all stop), and on Cloud TPU
JAX's own preemption notice counts too.
"""

import contextlib
import signal

import jax

from jaxlab.parallel import multihost

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:

  def __init__(self):
    self.signal_name = None
    self._agreed = False

  def _handler(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name

  def requested(self, step=None):
    """Whether to stop now; collective (call on every process at the same step)."""
    if self._agreed:
      return True
    local = self.signal_name is not None
    if jax.process_count() > 1:
      local = multihost.any_process(local) or _jax_preemption_notice(step)
      if local and self.signal_name is None:
        self.signal_name = 'preemption on another host'
    self._agreed = local
    return local


def _jax_preemption_notice(step):
  """JAX's preemption sync point (TPU VMs); false where the service is not running."""
  if step is None:
    return False
  try:
    from jax.experimental import multihost_utils
    return bool(multihost_utils.reached_preemption_sync_point(step))
  except (RuntimeError, ValueError):
    return False


@contextlib.contextmanager
def watch():
  request = StopRequest()
  previous = {s: signal.signal(s, request._handler) for s in SIGNALS}
  try:
    yield request
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
