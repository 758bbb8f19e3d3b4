"""Where the command line shows what the library says while it works (jaxlab.runtime.
messages): lines on stdout, warnings on stderr, and the train progress as a bar on a
terminal (tqdm) or as lines elsewhere. The streams are looked up at each record, so a
caller's redirection of sys.stdout (a test, a notebook cell) sees the lines."""

import logging
import sys

from jaxlab.runtime import messages


class ConsoleHandler(logging.Handler):

  def __init__(self):
    super().__init__(logging.INFO)
    self._bar = None

  def emit(self, record):
    try:
      if hasattr(record, messages.PROGRESS):
        self._progress(record, getattr(record, messages.PROGRESS))
      elif record.levelno >= logging.WARNING:
        self._write(sys.stderr, record.getMessage())
      else:
        self._write(sys.stdout, record.getMessage())
    except Exception:  # pylint: disable=broad-except
      self.handleError(record)

  def _progress(self, record, report):
    if report is None:
      if self._bar is not None:
        self._bar.close()
        self._bar = None
      return
    if self._bar is None and sys.stderr.isatty():
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      self._bar = tqdm(total=report['total'], initial=report['initial'], unit='step',
                       dynamic_ncols=True)
    if self._bar is not None:
      self._bar.update(report['step'] - self._bar.n)
      if report['summary']:
        self._bar.set_postfix_str(report['summary'])
    elif record.getMessage():
      self._write(sys.stdout, record.getMessage())

  def _write(self, stream, text):
    if self._bar is not None:
      self._bar.write(text, file=stream)
    else:
      print(text, file=stream, flush=True)


def show():
  """Shows the library's messages on this process's console (once)."""
  logger = messages.LOGGER
  if not any(isinstance(h, ConsoleHandler) for h in logger.handlers):
    logger.addHandler(ConsoleHandler())
  logger.setLevel(logging.INFO)
  logger.propagate = False
