"""The package's shape: no import cycles, small modules, a root that holds only the entry
point. Read statically (ast), so nothing here imports jaxlab."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'jaxlab'
MAX_LINES = 300


def module_name(path):
  """'jaxlab.storage' for jaxlab/storage/__init__.py, 'jaxlab.storage.paths' for paths.py."""
  parts = list(path.relative_to(ROOT).with_suffix('').parts)
  if parts[-1] == '__init__':
    parts.pop()
  return '.'.join(parts)


def modules():
  return {module_name(path): path for path in sorted(PACKAGE.rglob('*.py'))}


def imported(name, path, known):
  """The jaxlab modules `name` imports anywhere in its file (at the top or inside a
  function): `from P import X` counts as P.X where P.X is a module, else as P; a package's
  __init__ is a module like any other."""
  is_package = path.name == '__init__.py'
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:  # relative: from the package that holds `name`
        package = name.split('.')
        package = package[:len(package) - node.level + (1 if is_package else 0)]
        base = '.'.join(package + ([base] if base else []))
      for alias in node.names:
        found.add(f'{base}.{alias.name}' if f'{base}.{alias.name}' in known else base)
  return {module for module in found if module in known and module != name}


def import_graph():
  known = modules()
  return {name: imported(name, path, known) for name, path in known.items()}


def find_cycle(graph):
  """One import cycle as [a, b, ..., a], or None."""
  state = {}  # module -> 'open' while on the stack, 'done' after

  def visit(node, stack):
    state[node] = 'open'
    stack.append(node)
    for target in sorted(graph[node]):
      if state.get(target) == 'open':
        return stack[stack.index(target):] + [target]
      if target not in state and (cycle := visit(target, stack)):
        return cycle
    stack.pop()
    state[node] = 'done'
    return None

  for start in sorted(graph):
    if start not in state and (cycle := visit(start, [])):
      return cycle
  return None


def test_the_import_graph_reads_from_imports_and_relative_imports(tmp_path):
  package = tmp_path / 'jaxlab'
  (package / 'sub').mkdir(parents=True)
  (package / '__init__.py').write_text('')
  (package / 'sub' / '__init__.py').write_text('from jaxlab.sub import a\n')
  (package / 'sub' / 'a.py').write_text('def f():\n  from . import b\n  return b.X\n')
  (package / 'sub' / 'b.py').write_text('import jaxlab.sub\nX = 1\n')
  paths = {'jaxlab': package / '__init__.py', 'jaxlab.sub': package / 'sub' / '__init__.py',
           'jaxlab.sub.a': package / 'sub' / 'a.py', 'jaxlab.sub.b': package / 'sub' / 'b.py'}
  graph = {name: imported(name, path, set(paths)) for name, path in paths.items()}
  assert graph['jaxlab.sub'] == {'jaxlab.sub.a'}
  assert graph['jaxlab.sub.a'] == {'jaxlab.sub.b'}
  assert graph['jaxlab.sub.b'] == {'jaxlab.sub'}
  assert find_cycle(graph) == ['jaxlab.sub', 'jaxlab.sub.a', 'jaxlab.sub.b', 'jaxlab.sub']


def test_no_import_cycles():
  cycle = find_cycle(import_graph())
  assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


@pytest.mark.parametrize('name', sorted(modules()))
def test_module_is_at_most_300_lines(name):
  lines = len(modules()[name].read_text().splitlines())
  assert lines <= MAX_LINES, f'{name} has {lines} lines; split it by job'


def test_the_package_root_holds_only_the_entry_point_and_errors():
  files = sorted(p.name for p in PACKAGE.glob('*.py'))
  assert files == ['__init__.py', 'errors.py', 'main.py']
