"""``python -m mettl_async``: the same command line as ``mettl-async``."""

from .cli import main_entry

main_entry()
