"""Writes tests/module_seconds.json, the seconds each test module took, from the output of
`python -m pytest --durations=0` (tests/conftest.py starts the longest modules first).

  python -m pytest -q --durations=0 > durations.txt
  python -m tests.module_seconds durations.txt
"""

import collections
import json
import pathlib
import re
import sys

LINE = re.compile(r'([0-9.]+)s (?:call|setup|teardown)\s+tests/(\S+?)\.py::')


def module_seconds(lines):
  seconds = collections.Counter()
  for line in lines:
    if (match := LINE.match(line)):
      seconds[match[2]] += float(match[1])
  return {name: round(total) for name, total in seconds.most_common() if total >= 1}


if __name__ == '__main__':
  table = module_seconds(pathlib.Path(sys.argv[1]).read_text().splitlines())
  out = pathlib.Path(__file__).parent / 'module_seconds.json'
  out.write_text(json.dumps(table, indent=0) + '\n')
  print(f'{len(table)} modules, {sum(table.values())} s in all -> {out}')
