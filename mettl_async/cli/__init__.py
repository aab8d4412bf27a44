"""The ``mettl-async`` command line: entry point, shared parts, one module per command group."""

from .entry import main, main_entry

__all__ = ["main", "main_entry"]
