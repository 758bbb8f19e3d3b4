"""What a failed checkpoint read leaves behind (Orbax's other reads, TensorStore's late
completions), kept quiet so that the one-line error is all the user sees."""

import gc
import logging
import sys


def collect_abandoned_reads():
  """A failed read leaves Orbax's other reads behind as coroutines never awaited: collect
  them now, quietly, rather than let Python print their tracebacks at a later moment."""
  hook = sys.unraisablehook
  sys.unraisablehook = lambda unraisable: None
  try:
    gc.collect()
  finally:
    sys.unraisablehook = hook


def ignore_reads_completing_after_failure():
  """After a failed restore, TensorStore's other reads still complete, from its own
  threads, into the event loop Orbax has closed; Python reports each one as an
  unraisable "Event loop is closed" traceback over the one-line error. They are
  harmless (their results are no longer wanted), so that report alone is dropped.
  Installed when a Checkpointer is made, not on failure: those reports can arrive
  before the failed restore's exception reaches `restore`."""
  if getattr(sys.unraisablehook, 'ignores_closed_event_loops', False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and \
        str(unraisable.exc_value) == 'Event loop is closed':
      return
    previous(unraisable)

  hook.ignores_closed_event_loops = True
  sys.unraisablehook = hook
  # The gathered read that failed is also reported by asyncio when collected.
  logging.getLogger('asyncio').addFilter(
      lambda record: 'exception was never retrieved' not in record.getMessage())


def first_line(error):
  """The root cause's first line: TensorStore wraps its reason in generic errors."""
  while error.__cause__ or error.__context__:
    error = error.__cause__ or error.__context__
  lines = str(error).strip().splitlines()
  return f'{type(error).__name__}: {lines[0] if lines else ""}'[:300]
