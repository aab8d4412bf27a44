"""Sphinx configuration of the API reference, built from the docstrings.

Build: ``pip install -e '.[docs]'`` then ``sphinx-build -W -b html docs docs/_build/html``
(``.ci/run`` does it, warnings as errors).
"""

from __future__ import annotations

from importlib.metadata import version as _version

project = "mettl-async"
author = "mettl-async maintainers"
copyright = "mettl-async maintainers, MIT licence"
release = _version("mettl-async")
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]

# The docstrings are reStructuredText; types come from the annotations.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Private modules define what the package re-exports: show the public path.
add_module_names = False
python_use_unqualified_type_names = True

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"mettl-async {release}"
html_static_path: list[str] = []
