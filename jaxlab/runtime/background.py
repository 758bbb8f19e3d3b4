"""Start-up work done in a daemon thread (an import that would otherwise delay the
first step) and joined where its result is first needed.

A thread's own exception is only printed by `threading` and then lost, and whoever
uses the work afterwards meets a half-done state instead (a module half imported).
`Background` keeps the outcome, so the joiner decides what a failure means.
"""

import threading

from jaxlab.errors import UserError


class Unfinished(Exception):
  """The work was still running when its result was needed, `timeout` seconds later."""


class Background:
  """`function(*args)` computed in a daemon thread; `result()` joins it and returns its
  value or raises what it raised."""

  def __init__(self, function, *args, name=None):
    self._outcome = {}
    self._thread = threading.Thread(target=self._run, args=(function, args), daemon=True,
                                    name=name or f'jaxlab-{function.__name__}')
    self._thread.start()

  def _run(self, function, args):
    try:
      self._outcome['value'] = function(*args)
    except BaseException as error:  # pylint: disable=broad-except
      self._outcome['error'] = error

  def result(self, timeout=None):
    """Waits for the work (at most `timeout` seconds, then raises Unfinished)."""
    self._thread.join(timeout)
    if self._thread.is_alive():
      raise Unfinished(f'{self._thread.name} still running after {timeout:g} s')
    if 'error' in self._outcome:
      raise self._outcome['error']
    return self._outcome['value']


def one_line(error):
  """An exception for a warning line: a UserError's message, others' with their type,
  since some messages alone say nothing (a KeyError's is just the key)."""
  lines = str(error).strip().splitlines()
  if isinstance(error, UserError) and lines:
    return lines[0]
  return f'{type(error).__name__}: {lines[0]}' if lines else type(error).__name__
