"""What every part of the export shares: its error, the interface of an output format,
and the registry of formats by name."""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Final, TypeAlias

import msgspec

from mettl_async._errors import MettlError
from mettl_async._paging import RawRecord
from mettl_async.export.options import ExportOptions, Format

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportFormat",
    "Format",
    "FormatFactory",
    "count_lines",
    "get_format",
    "register_format",
    "unregister_format",
]


class ExportError(MettlError):
    """The export cannot start or continue as asked (an existing file, a foreign checkpoint)."""


class ExportFormat(abc.ABC):
    """An output format: the lines it spools to ``PATH.partial``, the file it makes of them.

    The engine owns ``PATH.partial`` and ``PATH.checkpoint``: it opens the data
    file (new, or appending on resume), writes whole pages of lines, fsyncs it
    before each checkpoint that vouches for its size, and on resume truncates it
    to the last good size and drops the records already in it. A format only
    says which line each record becomes, what it finds in a line it wrote
    before, and what ``PATH`` is made of the finished file. It holds no state
    of its own: its methods may run in a later process than the one that wrote
    the lines (a resume).

    A line holds one record and ends in ``\\n``, the only line break in it. The
    defaults of :meth:`identify` and :meth:`count` suit a format whose lines
    are JSON objects with the record's ``accessKey`` and ``email``, and whose
    finished file has one line per record: both built-in formats spool so.
    A format whose spooled lines are its finished file sets ``streamable``, and
    can then also be written to standard output as it comes (``--output -``).
    """

    #: Whether the lines of :meth:`encode_page` are the finished file (no ``finish`` work).
    streamable: ClassVar[bool] = False

    def for_options(self, options: ExportOptions) -> ExportFormat:
        """This format as an export's options ask for it (default: unchanged)."""
        return self

    @abc.abstractmethod
    def encode_page(self, schedule: Mapping[str, Any], records: Sequence[RawRecord]) -> list[bytes]:
        """One schedule's page of raw records as lines: one per record, in order."""

    def identify(self, line: bytes) -> tuple[str, str | None] | None:
        """A line written before (resume): its schedule's access key and its email.

        The email is ``None`` for a record without one (such a line is then
        recognised by its bytes); ``None`` for a line that names no schedule,
        which stays in the file and matches no record.
        """
        try:
            row = _IDENTITY.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        key, email = row.accessKey, row.email
        if not isinstance(key, str):
            return None
        return key, email if isinstance(email, str) else None

    def count(self, output: Path) -> int:
        """Records in a finished ``PATH`` (a resume that finds the export already done)."""
        return count_lines(output)

    @abc.abstractmethod
    def finish(self, partial: Path, output: Path) -> None:
        """Make ``PATH`` of the complete ``PATH.partial``, then remove ``PATH.partial``.

        ``PATH`` must appear whole or not at all (write a temporary file, then
        ``os.replace``), and ``PATH.partial`` go only once ``PATH`` is in place:
        a resume after an interruption here calls ``finish`` again.
        """


# Only the two fields a resume needs are read; the rest of a line is skipped unparsed
# (so a number beyond a double, say, which Mettl may send, does not hide the line).
class _Identity(msgspec.Struct):
    accessKey: Any = None
    email: Any = None


_IDENTITY: Final = msgspec.json.Decoder(_Identity)


def count_lines(path: Path) -> int:
    """Lines in the file at ``path`` (never through a symbolic link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        return sum(1 for _ in stream)


#: Makes the format for an export; a class derived from :class:`ExportFormat` is one.
FormatFactory: TypeAlias = Callable[[], ExportFormat]

_FORMATS: dict[str, FormatFactory] = {}
#: The registered formats by name, in the order of registration (a read-only view).
FORMATS: Mapping[str, FormatFactory] = MappingProxyType(_FORMATS)


def register_format(name: str, factory: FormatFactory, *, replace: bool = False) -> None:
    """Make ``ExportOptions(format=name)`` (and ``--format name``) export with ``factory()``."""
    if not name:
        raise ValueError("an export format needs a name")
    if name in _FORMATS and not replace:
        raise ValueError(f"an export format named {name!r} is registered already")
    _FORMATS[name] = factory


def unregister_format(name: str) -> None:
    """Forget a format registered by :func:`register_format` (``KeyError`` if there is none)."""
    del _FORMATS[name]


def get_format(name: str) -> ExportFormat:
    """The format registered as ``name``, made for one export."""
    factory = _FORMATS.get(name)
    if factory is None:
        known = ", ".join(_FORMATS) or "none"
        raise ExportError(f"no export format is named {name!r} (known: {known})")
    return factory()
