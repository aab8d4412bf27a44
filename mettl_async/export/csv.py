"""CSV export: flattened records spooled as JSON lines, turned into CSV at the end, when
the union of columns over all schedules is known.

Cells (and column names) that a spreadsheet would read as a formula, those
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, are
written with a leading ``'`` (OWASP's advice against CSV injection), unless
the export asks for raw cells (``ExportOptions(csv_raw=True)``, ``--csv-raw``).
Numbers are numbers, not text, and are never changed. Mettl's timestamps are
kept as sent, each followed by the same instant in ISO 8601 UTC
(``startTime``, ``startTimeUtc``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, Final

import orjson

from mettl_async._paging import RawRecord
from mettl_async._timefmt import parse_timestamp
from mettl_async.export.base import ExportFormat
from mettl_async.export.files import create_new, remove
from mettl_async.export.options import ExportOptions

__all__ = ["CSV_FIXED_COLUMNS", "CsvFormat", "csv_columns", "csv_row", "neutralize"]

_STATUS_FIELDS: Final = (
    "status",
    "overallStatus",
    "detailedStatus",
    "startTime",
    "endTime",
    "completionMode",
)
#: Mettl's timestamps among them; each gets a column ``<name>Utc`` right after it.
_TIMESTAMP_FIELDS: Final = frozenset({"startTime", "endTime"})
_STATUS_COLUMNS: Final = tuple(
    column
    for name in _STATUS_FIELDS
    for column in ((name, f"{name}Utc") if name in _TIMESTAMP_FIELDS else (name,))
)
_RESULT_FIELDS: Final = (
    "totalMarks",
    "maxMarks",
    "percentile",
    "attemptTime",
    "candidateCredibilityIndex",
)
#: The first columns of a CSV export, in this order; registration fields follow
#: ``email``, marks per section come last.
CSV_FIXED_COLUMNS: Final = (
    "accessKey",
    "scheduleName",
    "assessmentId",
    "email",
    *_STATUS_COLUMNS,
    *_RESULT_FIELDS,
)
_REGISTRATION_FIRST: Final[tuple[str, ...]] = ("Email Address", "First Name", "Last Name")
#: What a spreadsheet reads as the start of a formula (OWASP, CSV injection).
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


class CsvFormat(ExportFormat):
    """``PATH.partial`` spools :func:`csv_row` as JSON lines; finishing writes the CSV.

    ``raw=True`` writes cells as they are (see the module documentation).
    """

    def __init__(self, *, raw: bool = False) -> None:
        self.raw = raw

    def for_options(self, options: ExportOptions) -> CsvFormat:
        return CsvFormat(raw=options.csv_raw)

    def encode_page(self, schedule: Mapping[str, Any], records: Sequence[RawRecord]) -> list[bytes]:
        return [
            orjson.dumps(csv_row(schedule, record), option=orjson.OPT_APPEND_NEWLINE)
            for record in records
        ]

    def count(self, output: Path) -> int:
        """Rows of a finished CSV (a cell may hold a line break: rows, not lines)."""
        fd = os.open(output, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, encoding="utf-8-sig", newline="") as stream:
            return sum(1 for _ in csv.reader(stream)) - 1  # the header

    def finish(self, partial: Path, output: Path) -> None:
        _spool_to_csv(partial, output, neutralizing=not self.raw)
        partial.unlink()


def neutralize(value: Any) -> Any:
    """A cell a spreadsheet would run as a formula, made text with a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _utc(text: Any) -> str | None:
    """Mettl's timestamp text as ISO 8601 UTC (``2022-02-08T11:13:55Z``); ``None`` if none."""
    when = parse_timestamp(text) if isinstance(text, str) else None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    return orjson.dumps(value).decode()


def csv_row(schedule: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """A record flattened for CSV: fixed fields, ``registration``, ``sections`` (name -> marks)."""
    status = record.get("testStatus")
    status = status if isinstance(status, Mapping) else {}
    result = status.get("result")
    result = result if isinstance(result, Mapping) else {}
    details = schedule.get("assessmentDetails")
    row: dict[str, Any] = {
        "accessKey": schedule.get("accessKey"),
        "scheduleName": schedule.get("name"),
        "assessmentId": _text(details.get("id")) if isinstance(details, Mapping) else None,
        "email": record.get("email"),
    }
    for name in _STATUS_FIELDS:
        value = status.get(name)
        row[name] = _text(value)
        if name in _TIMESTAMP_FIELDS:
            row[f"{name}Utc"] = _utc(value)
    for name in _RESULT_FIELDS:
        row[name] = _text(result.get(name))
    registration = record.get("registration")
    row["registration"] = (
        {str(k): _text(v) for k, v in registration.items()}
        if isinstance(registration, Mapping)
        else {}
    )
    sections: dict[str, list[Any]] = {}
    marks = result.get("sectionMarks")
    for section in marks if isinstance(marks, list) else ():
        if isinstance(section, Mapping):
            base = name = str(section.get("sectionName") or "")
            repeat = 1
            while name in sections:  # two sections of one name keep their own columns
                repeat += 1
                name = f"{base} ({repeat})"
            sections[name] = [section.get("totalMarks"), section.get("maxMarks")]
    row["sections"] = sections
    return row


def _section_columns(name: str) -> tuple[str, str]:
    return f"{name} (marks)", f"{name} (max marks)"


def _registration_columns(labels: Iterable[str], sections: Iterable[str]) -> dict[str, str]:
    """Registration label -> its column: the label itself, unless another column has it."""
    taken = set(CSV_FIXED_COLUMNS)
    for name in sections:
        taken.update(_section_columns(name))
    unique = set(labels)
    ordered = [label for label in _REGISTRATION_FIRST if label in unique]
    ordered += sorted(unique - set(_REGISTRATION_FIRST))
    return {label: label if label not in taken else f"registration: {label}" for label in ordered}


def csv_columns(registration: Iterable[str], sections: Iterable[str]) -> list[str]:
    """The CSV header: fixed columns, registration labels after ``email``, then section marks."""
    names = sorted(set(sections))
    registration_columns = list(_registration_columns(registration, names).values())
    section_columns = [column for name in names for column in _section_columns(name)]
    head = list(CSV_FIXED_COLUMNS)
    at = head.index("email") + 1
    return head[:at] + registration_columns + head[at:] + section_columns


def _spool_rows(spool: Path) -> Iterator[dict[str, Any]]:
    with spool.open("rb") as stream:
        for line in stream:
            if line.strip():
                yield orjson.loads(line)


def _spool_to_csv(spool: Path, output: Path, *, neutralizing: bool = True) -> None:
    """Two passes over the spool: the union of columns, then the rows; renamed when written."""
    registration: set[str] = set()
    sections: set[str] = set()
    for row in _spool_rows(spool):
        registration.update(row.get("registration", {}))
        sections.update(row.get("sections", {}))
    columns = csv_columns(registration, sections)
    registration_column = _registration_columns(registration, sections)
    cell = neutralize if neutralizing else _as_is
    temporary = output.with_name(output.name + ".csv-partial")
    remove(temporary)  # left by an interrupted finish (or a link planted there: not followed)
    try:
        fd = create_new(temporary)
        # UTF-8 with a byte order mark: spreadsheets then read names like "Zoë" right.
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as stream:
            writer = csv.writer(stream, quoting=csv.QUOTE_MINIMAL)
            writer.writerow([cell(column) for column in columns])
            for row in _spool_rows(spool):
                flat = {name: row.get(name) for name in CSV_FIXED_COLUMNS}
                for label, value in row.get("registration", {}).items():
                    flat[registration_column[label]] = value
                for name, (marks, maximum) in row.get("sections", {}).items():
                    marks_column, max_column = _section_columns(name)
                    flat[marks_column] = marks
                    flat[max_column] = maximum
                writer.writerow(["" if flat.get(c) is None else cell(flat[c]) for c in columns])
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, output)
    except BaseException:
        remove(temporary)
        raise


def _as_is(value: Any) -> Any:
    return value
