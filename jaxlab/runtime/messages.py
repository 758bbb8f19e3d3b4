"""How the library tells the person running it something while it works: progress lines,
a skipped record, a lock taken over. It never writes to a console itself: `say`, `warn`
and `progress` emit records of the `jaxlab` logger, and whoever runs the library decides
where they go. The command line shows them (jaxlab/commands/console.py); a program or a
notebook sees them wherever it sends logging (`logging.basicConfig(level=logging.INFO)`).
"""

import logging

LOGGER = logging.getLogger('jaxlab')
PROGRESS = 'jaxlab_progress'  # a record's extra: the train progress it reports


def say(message):
  """A line for the person running jaxlab (the command line prints it on stdout)."""
  LOGGER.info(message)


def warn(message):
  """A problem the run survives (the command line prints it on stderr)."""
  LOGGER.warning(message)


def progress(message, step, total, initial, summary):
  """A train record: `message` as a line; `summary` is the short form a progress bar
  shows beside its step count (step/total, starting from `initial`)."""
  LOGGER.info(message, extra={PROGRESS: dict(step=step, total=total, initial=initial,
                                             summary=summary)})


def progress_done():
  """The train progress ends (a bar closes)."""
  LOGGER.info('', extra={PROGRESS: None})
