"""The package's version, in one module that imports nothing.

``mettl_async.__version__`` and the User-Agent header both read it from here.
It must say what ``version`` in pyproject.toml says.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"
