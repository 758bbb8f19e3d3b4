"""Sphinx extension: the config reference page, generated from jaxlab's field declarations.

`docs/config_reference.md` holds an introduction and the marker line `<!-- config-fields -->`;
at build time the marker is replaced by one table per section listing every field that
`jaxlab.config.fields()` declares (dotted name, default, allowed values, comment), so the
page cannot drift from the code. The page is re-read on every build.
"""

import re

PAGE = 'config_reference'
MARKER = '<!-- config-fields -->'
TOP_LEVEL = 'Top level'


def _escape(text):
  """Plain text safe inside a Markdown table cell."""
  return re.sub(r'([\\`*_|<>\[\]])', r'\\\1', str(text))


def _default(value):
  return 'unset' if value is None else f'`{value!r}`'


def sections():
  """[(section title, [Field, ...])] in declaration order: top-level fields first."""
  from jaxlab import config  # pylint: disable=g-import-not-at-top
  grouped = {}
  for field in config.fields():
    section = field.key.split('.')[0] if '.' in field.key else TOP_LEVEL
    grouped.setdefault(section, []).append(field)
  return [(TOP_LEVEL, grouped.pop(TOP_LEVEL, []))] + list(grouped.items())


def markdown():
  """The generated tables, as MyST Markdown."""
  lines = []
  for title, fields in sections():
    lines += [f'## {title if title == TOP_LEVEL else f"`{title}`"}', '',
              '| field | default | allowed | what it does |', '| --- | --- | --- | --- |']
    lines += [f'| `{f.key}` | {_default(f.default)} | {_escape(f.allowed)} | {_escape(f.doc)} |'
              for f in fields]
    lines.append('')
  return '\n'.join(lines)


def _fill(app, docname, source):
  del app
  if docname == PAGE:
    if MARKER not in source[0]:
      raise ValueError(f'{PAGE}.md lacks the marker line {MARKER}')
    source[0] = source[0].replace(MARKER, markdown())


def _always_outdated(app, env, added, changed, removed):
  del app, added, changed, removed
  return [PAGE] if PAGE in env.found_docs else []


def setup(app):
  app.connect('source-read', _fill)
  app.connect('env-get-outdated', _always_outdated)
  return {'parallel_read_safe': True, 'parallel_write_safe': True}
