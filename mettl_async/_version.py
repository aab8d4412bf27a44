"""The package's version, in one module that imports nothing.

``mettl_async.__version__`` and the User-Agent header both read it from here.
pyproject.toml reads the version from here too (``[tool.hatch.version]``): this is its one source.
"""

from __future__ import annotations

__version__ = "0.1.0"
