"""Sphinx configuration of jaxlab's docs site (MyST Markdown pages).

Build strictly, as .ci/run does: sphinx-build -W --keep-going -n -b html docs docs/_build/html
"""

import pathlib
import sys

DOCS = pathlib.Path(__file__).parent
sys.path.insert(0, str(DOCS / '_ext'))
sys.path.insert(0, str(DOCS.parent))  # this checkout's jaxlab, for autodoc

project = 'jaxlab'
author = 'the jaxlab authors'
copyright = '2026, the jaxlab authors'  # pylint: disable=redefined-builtin

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'config_reference',  # docs/_ext: the generated config reference
]
source_suffix = {'.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', '_ext']

# Directives are written with ::: fences, so the docs tests' ``` parsers see only code.
myst_enable_extensions = ['colon_fence']
myst_heading_anchors = 3  # [text](page.md#a-section) links

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_preserve_defaults = True  # `jnp.float32` as written, not its repr
default_role = 'code'  # `name` in docstrings is code, as on GitHub

html_theme = 'furo'
html_title = 'jaxlab'
