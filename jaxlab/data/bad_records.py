"""Bad records met by a training stream: counted, warned about at a bounded rate, and
held to a budget.

The budget (`data.max_bad_records_fraction`) is a share of the records read since the
run started or resumed, judged at each block once `data.min_records_for_bad_fraction`
records were read, so a few bad records early on cannot stop a run but a data set that
is mostly bad stops within its first blocks. The records read are counted from the steps
(steps x global batch), and the bad ones summed over every process, so all processes
judge the same numbers and stop at the same step.
"""

import time

from jaxlab.runtime import messages

FULL_WARNINGS = 5  # the first bad records each get a warning line of their own...
SUMMARY_SECONDS = 10.0  # ...then one line with a count, at most this often
NAMED_IN_STOP = 3  # bad records named when the budget stops the run


class TooManyBadRecords(Exception):
  """More of the records read were bad than data.max_bad_records_fraction allows."""

  def __init__(self, bad, read, max_fraction, first):
    named = '; '.join(f'record {index} of {source}: {reason}' for source, index, reason in first)
    super().__init__(
        f'{bad} of the {read} records read since the run started were bad ({bad / read:.1%}), '
        f'more than --config.data.max_bad_records_fraction={max_fraction:g} allows. '
        f'The first{" on this process" if first else ""}: {named or "none on this process"}')


def over_budget(bad, read, max_fraction, min_records):
  """True when `bad` of `read` records exceed the share allowed (judged from min_records on)."""
  return read >= min_records and bad > max_fraction * read


class BadRecordLog:
  """This process's skipped records: a count, the first few named, warning lines
  rate-limited (the first FULL_WARNINGS in full, then a count every SUMMARY_SECONDS)."""

  def __init__(self, clock=time.monotonic, out=None):
    self.count = 0
    self.first = []  # (source, index, reason) of the first NAMED_IN_STOP
    self._clock, self._out = clock, out
    self._unsaid, self._since = 0, None  # skipped but not yet in a line; the window's start

  def add(self, records):
    """Counts `records` [(source, index, reason)] and warns about them."""
    for source, index, reason in records:
      self.count += 1
      if len(self.first) < NAMED_IN_STOP:
        self.first.append((source, index, reason))
      if self.count <= FULL_WARNINGS:
        self._say(f'skipped bad record {index} of {source}: {reason}'
                  + (' (later ones are counted, not named)' if self.count == FULL_WARNINGS else ''))
      else:
        self._unsaid += 1
    if self._unsaid and self._clock() - self._since >= SUMMARY_SECONDS:
      self.flush()

  def flush(self):
    """Says how many records were skipped since the last line (at the end of a run)."""
    if self._unsaid:
      seconds = self._clock() - self._since
      self._say(f'skipped {self._unsaid} more bad records in the last {seconds:.0f} s '
                f'(total {self.count})')

  def _say(self, message):
    if self._out is not None:  # a stream the caller gave (a test's)
      print(f'jaxlab: warning: {message}', file=self._out, flush=True)
    else:
      messages.warn(f'jaxlab: warning: {message}')
    self._unsaid, self._since = 0, self._clock()
