"""JSONL export: one line per record, the record exactly as Mettl sent it, with the
``accessKey``, ``scheduleName`` and ``assessmentId`` of its schedule put first."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from mettl_async._paging import RawRecord
from mettl_async.export.base import ExportFormat

__all__ = ["JsonlFormat", "jsonl_line"]


class JsonlFormat(ExportFormat):
    """``PATH.partial`` holds the final lines: finishing renames it to ``PATH``.

    Every line is UTF-8 JSON (the listing's scan refuses a record that is not).
    """

    streamable = True

    def encode_page(self, schedule: Mapping[str, Any], records: Sequence[RawRecord]) -> list[bytes]:
        head = _jsonl_head(schedule)
        return [_jsonl_line(head, record) for record in records]

    def finish(self, partial: Path, output: Path) -> None:
        # A rename never follows a link: one planted at PATH is replaced, not written through.
        os.replace(partial, output)


def jsonl_line(schedule: Mapping[str, Any], record: RawRecord) -> bytes:
    """One JSONL line: the schedule's identity first, then the record as Mettl sent it."""
    return _jsonl_line(_jsonl_head(schedule), record)


def _jsonl_head(schedule: Mapping[str, Any]) -> bytes:
    """``{"accessKey":…,"scheduleName":…,"assessmentId":…}``: the same for a whole page."""
    details = schedule.get("assessmentDetails")
    assessment_id = details.get("id") if isinstance(details, Mapping) else None
    return orjson.dumps(
        {
            "accessKey": schedule.get("accessKey"),
            "scheduleName": schedule.get("name"),
            "assessmentId": assessment_id,
        }
    )


def _jsonl_line(head: bytes, record: RawRecord) -> bytes:
    body = record.json.strip()
    if b"\n" in body or b"\r" in body:
        # JSON strings cannot hold raw line breaks: these are whitespace between tokens.
        body = body.replace(b"\r", b" ").replace(b"\n", b" ")
    if body[:1] != b"{":  # not an object: keep it whole under "record"
        return head[:-1] + b',"record":' + body + b"}\n"
    if body[1:].lstrip()[:1] == b"}":  # an empty object
        return head + b"\n"
    return head[:-1] + b"," + body[1:] + b"\n"
