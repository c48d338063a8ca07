"""Sphinx configuration of the documentation site: ``make docs`` builds it into docs/_build/html.

The user guide pages include the sections of README.md (one home for every table and
figure); the API reference is generated from the docstrings.
"""

import ovito_atomclass

project = "ovito-atomclass"
author = "The ovito-atomclass authors"
copyright = "2026, The ovito-atomclass authors"
release = version = ovito_atomclass.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode", "sphinx.ext.intersphinx"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
# the README's sections start at "##": a page's own "#" title sits above them
suppress_warnings = ["myst.header"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
intersphinx_mapping = {}

html_theme = "furo"
html_title = f"ovito-atomclass {release}"
html_static_path = []
