"""What every part of the export shares."""

from __future__ import annotations

from mettl_async._errors import MettlError

__all__ = ["ExportError"]


class ExportError(MettlError):
    """The export cannot start or continue as asked (an existing file, a foreign checkpoint)."""
