"""What an export is asked to do: :class:`ExportOptions`, and the names it uses.

Every other module of the export reads these (the engine, the journal that
checks a checkpoint against them, the formats that take options of their own);
this one imports none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeAlias

import attrs

__all__ = ["ExportOptions", "Format", "Mode"]

#: The name of a registered format: ``"jsonl"``, ``"csv"``, or one of
#: :func:`~mettl_async.export.register_format`.
Format: TypeAlias = str

Mode = Literal["new", "resume", "overwrite"]


@attrs.frozen
class ExportOptions:
    """What to export, where, and how."""

    output: Path
    format: Format = "jsonl"
    access_keys: tuple[str, ...] | None = None  # None: every schedule of the account
    concurrency: int | None = None
    include_recommendation: bool = False
    include_essay_responses: bool = False
    mode: Mode = "new"
    #: CSV only: write cells as they are, without neutralizing those that start like a
    #: spreadsheet formula (``=``, ``+``, ``-``, ``@``, tab, carriage return).
    csv_raw: bool = False

    @property
    def partial(self) -> Path:
        return self.output.with_name(self.output.name + ".partial")

    @property
    def checkpoint(self) -> Path:
        return self.output.with_name(self.output.name + ".checkpoint")

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed by these options."""
        return {
            "format": self.format,
            "access_keys": list(self.access_keys) if self.access_keys is not None else None,
            "include_recommendation": self.include_recommendation,
            "include_essay_responses": self.include_essay_responses,
        }
