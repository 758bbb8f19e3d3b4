"""The docs site: its generated config reference, and the strict Sphinx build.

docs/_ext/config_reference.py turns `jaxlab.config.fields()` into the tables of
docs/config_reference.md at build time; these tests check that it lists every field of
`defaults()` with what it does, and that `sphinx-build -W -n` (warnings are errors: broken
links and cross-references, pages outside the table of contents, autodoc failures)
passes, as .ci/run runs it.
"""

import importlib.util
import re
import subprocess
import sys

import pytest

from jaxlab import config as config_lib
from tests.conftest import ROOT

DOCS = ROOT / 'docs'


def _extension():
  spec = importlib.util.spec_from_file_location('config_reference',
                                                DOCS / '_ext' / 'config_reference.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _rows(markdown):
  """{dotted key: [default, allowed, what it does]} of the generated tables."""
  return {m[1]: [cell.strip() for cell in re.split(r'(?<!\\)\|', m[2])]
          for m in re.finditer(r'^\| `([\w.]+)` \|(.*)\|$', markdown, re.M)}


def test_config_reference_lists_every_default_field_with_its_comment():
  rows = _rows(_extension().markdown())
  assert sorted(rows) == sorted(config_lib.flat_keys(config_lib.defaults()))
  undocumented = [key for key, (_, allowed, doc) in rows.items() if not allowed or not doc]
  assert not undocumented  # every field(...) line carries a comment and a described check


def test_config_reference_shows_declared_defaults_and_allowed_values():
  rows = _rows(_extension().markdown())
  assert rows['data.batch_size'][:2] == ['`32`', 'integer ≥ 1']
  assert rows['optimizer.name'][:2] == ["`'adam'`", "one of 'adam', 'adamw', 'sgd'"]
  assert rows['num_steps'][0] == 'unset'
  assert rows['optimizer.warmup_percent'][1] == 'number ≥ 0, ≤ 100'


@pytest.mark.slow  # imports jaxlab for autodoc and writes the whole site (about 10 s)
def test_strict_sphinx_build_passes(tmp_path):
  out = tmp_path / 'html'
  result = subprocess.run(
      [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-n', '-j', '1', '-q',
       '-b', 'html', '-d', str(tmp_path / 'doctrees'), str(DOCS), str(out)],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-5000:]
  page = (out / 'config_reference.html').read_text()
  missing = [k for k in config_lib.flat_keys(config_lib.defaults()) if f'>{k}<' not in page]
  assert not missing
  assert 'model_inputs' in (out / 'api' / 'tasks.html').read_text()
