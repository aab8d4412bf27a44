"""Sphinx configuration of the API reference, built from the docstrings.

Build: ``pip install -e '.[docs]'`` then ``sphinx-build -W -b html docs docs/_build/html``
(``.ci/run`` does it, warnings as errors).
"""

from __future__ import annotations

import sys
from importlib.metadata import version as _version

from sphinx.application import Sphinx
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer

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
# Furo: a maintained theme with a sidebar of every page and section (the docs extra).
html_theme = "furo"
html_title = f"mettl-async {release}"
html_static_path: list[str] = []


def _comment_of_reexport(
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """A package's data re-exported from one of its private modules (``webhooks._processor``)
    gets the ``#:`` comment written where it is defined, not its type's docstring."""
    if what != "data":
        return
    package, _, short = name.rpartition(".")
    for modname in sorted(sys.modules):
        if not modname.startswith(package + "._"):
            continue
        if getattr(sys.modules[modname], short, lines) is not obj:
            continue
        try:
            comments = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except PycodeError:
            continue
        if ("", short) in comments:
            lines[:] = list(comments["", short])
            return


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-docstring", _comment_of_reexport)
