"""Source generated at run time, compiled in one place: the library's only ``exec``.

The decoders' hottest functions are generated rather than written: the
converter's builders and lazy readers from the rename table (``_convert``), and
:func:`~mettl_async._timefmt.parse_timestamp` from the one text of its fast
path, which the lazy readers inline. Straight-line code is what the interpreter
runs fastest (the inlined timestamp alone is about 6% of a full result decode).
The inputs are the library's own attribute names and constants, never data.
Each source is kept in :mod:`linecache`, as cattrs does for its own generated
functions, so a traceback through generated code shows its lines.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable
from typing import Any, cast

__all__ = ["compile_function"]


def compile_function(
    name: str, lines: list[str], namespace: dict[str, Any], *, doc: str | None = None
) -> Callable[..., Any]:
    """Compile ``lines`` (the source of a function ``name``) with ``namespace`` as its globals.

    ``namespace`` is the function's module namespace: put ``__name__`` in it for a
    function that must pickle (a module-level name). ``doc`` becomes its docstring.
    """
    source = "\n".join([*lines, ""])
    filename = f"<mettl_async {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    function = cast("Callable[..., Any]", namespace[name])
    if doc is not None:
        function.__doc__ = doc
    return function
