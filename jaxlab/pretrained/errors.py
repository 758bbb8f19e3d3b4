"""The refusal of a checkpoint jaxlab cannot map: one paragraph, the first problems listed."""

from jaxlab.errors import UserError

SHOWN = 8  # problems listed per kind; the rest are counted


class UnmappableCheckpoint(UserError):
  """A Hugging Face checkpoint whose architecture, files, keys or shapes jaxlab cannot map.

  Raised before any weight is read, so nothing is loaded or written half.
  """


def listing(items, shown=SHOWN):
  """'a, b, c (and 12 more)' of the first `shown` items."""
  items = list(items)
  more = f' (and {len(items) - shown} more)' if len(items) > shown else ''
  return ', '.join(items[:shown]) + more


def refuse(source, architecture, problems, fix):
  """UnmappableCheckpoint naming `source`, each kind of problem and what to do.

  problems: {kind: [item, ...]}, e.g. {'unmapped keys': [...], 'missing keys': [...]}.
  """
  found = '; '.join(f'{kind}: {listing(items)}' for kind, items in problems.items() if items)
  what = f' ({architecture})' if architecture else ''
  return UnmappableCheckpoint(f'Cannot import the checkpoint {source}{what}: {found}. {fix}')
