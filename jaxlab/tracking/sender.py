"""Sends a run's records to a tracking service from a daemon thread, so that the training
thread never waits on the network.

The training thread only puts records into a bounded queue and never blocks: when the
queue is full, the record is dropped and counted. The thread hands the records to the
backend in order, the metric records queued at that moment in one request. A request
that fails is not repeated here (the backend's client has already retried it a few
times); its records are counted as not sent, and the thread waits before the next
request (2 s, doubling up to 30 s) while records keep queueing, so a server that comes
back receives what queued meanwhile. Failures cost warnings: one at once, then at most
one per `warn_every_s`, with counts. `close` waits at most `timeout_s` for the queue to
drain (after a failure while closing it stops trying) and then says what was not sent.
Every record also stays in metrics.jsonl, which is why losing some here is acceptable.
"""

import queue
import threading
import time

from jaxlab.runtime import background
from jaxlab.runtime import messages

_STOP = object()  # queued by close(): the thread ends after the records before it
MAX_METRIC_RECORDS_PER_REQUEST = 100
FIRST_PAUSE_S, LONGEST_PAUSE_S = 2.0, 30.0


def print_warning(message):
  messages.warn(f'jaxlab: warning: {message}')


class Sender:
  """`submit(kind, payload)` from the training thread; `close(timeout_s)` at the end.

  `backend` has open() (idempotent: create or resume the run), log_params(dict),
  log_metrics([(step, {name: value}, unix_time)]), log_text(name, text), finish(status)
  and a `name` for messages ('MLflow').
  """

  def __init__(self, backend, max_pending=1000, warn_every_s=60.0, warn=print_warning):
    self._backend = backend
    self._queue = queue.Queue(maxsize=max_pending)
    self._warn_every_s, self._warn = warn_every_s, warn
    self._held = None  # a record taken while gathering metrics, sent next
    self._closing = threading.Event()
    self._gave_up = False
    self._pause_s = 0.0
    self.submitted = self.sent = self.failed = 0  # records; failed includes dropped
    self._dropped_full = 0  # written by the training thread only
    self._unreported = 0  # failures since the last warning
    self._last_warning = None  # time.monotonic() of the last warning
    self._last_error = ''
    self._thread = threading.Thread(target=self._run, daemon=True,
                                    name=f'jaxlab-tracking-{backend.name}')
    self._thread.start()

  # --- the training thread -------------------------------------------------------

  def submit(self, kind, payload):
    """Queues one record; never blocks."""
    self.submitted += 1
    try:
      self._queue.put_nowait((kind, payload))
    except queue.Full:
      self._dropped_full += 1

  def close(self, timeout_s):
    """Lets the thread send what is queued for at most `timeout_s` seconds, then reports
    what was not sent."""
    deadline = time.monotonic() + timeout_s
    self._closing.set()
    try:
      self._queue.put(_STOP, timeout=max(timeout_s, 0.001))
    except queue.Full:
      pass
    self._thread.join(max(deadline - time.monotonic(), 0))
    if self._thread.is_alive():
      self._gave_up = True  # the thread drops what it still holds, as daemon it dies with us
      self._last_error = (f'still sending after {timeout_s:g} s; raise '
                          '--config.tracking.close_timeout_s to wait longer')
    unsent = self.submitted - self.sent
    if unsent:
      reasons = [self._last_error] if self._last_error else []
      if self._dropped_full:
        reasons.append(f'{self._dropped_full} dropped while the queue was full: raise '
                       '--config.tracking.max_pending')
      self._warn(f'{self._backend.name}: {unsent} of {self.submitted} records were not sent '
                 f'({"; ".join(reasons)}). The run\'s outputs in its workdir are complete; '
                 'metrics.jsonl holds every metric.')

  # --- the sending thread ----------------------------------------------------------

  def _run(self):
    while True:
      record = self._next()
      if record is _STOP:
        return
      if self._gave_up:
        continue
      kind, payload = record
      count = len(payload) if kind == 'metrics' else 1
      try:
        self._backend.open()
      except Exception as error:  # pylint: disable=broad-except
        self._failed(count, 'the run could not be started or resumed', error)
        continue
      try:
        self._send(kind, payload)
      except Exception as error:  # pylint: disable=broad-except
        self._failed(count, f'could not send the {_describe(kind, payload)}', error)
      else:
        self.sent += count
        self._pause_s = 0.0

  def _send(self, kind, payload):
    if kind == 'params':
      self._backend.log_params(payload)
    elif kind == 'metrics':
      self._backend.log_metrics(payload)
    elif kind == 'text':
      self._backend.log_text(*payload)
    else:
      self._backend.finish(payload)

  def _next(self):
    """The next record; consecutive metric records are gathered into one."""
    record = self._held or self._queue.get()
    self._held = None
    if record is _STOP or record[0] != 'metrics':
      return record
    gathered = [record[1]]
    while len(gathered) < MAX_METRIC_RECORDS_PER_REQUEST:
      try:
        following = self._queue.get_nowait()
      except queue.Empty:
        break
      if following is _STOP or following[0] != 'metrics':
        self._held = following
        break
      gathered.append(following[1])
    return 'metrics', gathered

  def _failed(self, count, what, error):
    self.failed += count
    self._last_error = background.one_line(error)
    if self._closing.is_set():
      self._gave_up = True  # at the end, one failure is enough: do not hold the run's exit
    now = time.monotonic()
    if self._last_warning is None:
      self._warn(f'{self._backend.name}: {what} ({self._last_error}). '
                 'Training goes on; metrics.jsonl keeps every record. Further failures are '
                 f'reported at most every {self._warn_every_s:g} s.')
      self._last_warning = now
    else:
      self._unreported += count
      if now - self._last_warning >= self._warn_every_s:
        self._warn(f'{self._backend.name}: {self._unreported} more records not sent '
                   f'({self._last_error}).')
        self._last_warning, self._unreported = now, 0
    if not self._gave_up:
      self._pause_s = min(max(self._pause_s * 2, FIRST_PAUSE_S), LONGEST_PAUSE_S)
      self._closing.wait(self._pause_s)  # close() cuts the pause short


def _describe(kind, payload):
  if kind == 'metrics':
    first, last = payload[0][0], payload[-1][0]
    return f'metrics of step {first}' + (f' to {last}' if last != first else '')
  if kind == 'text':
    return payload[0]
  return 'parameters' if kind == 'params' else 'end of the run'
