"""A candidate result as the database stores it: the columns read out of Mettl's JSON.

Pure: no I/O, no clock. A record is read with a narrow msgspec schema (only the
fields the columns need, about 3x cheaper than parsing the whole record); a
record in another shape (a number sent as text, say) is read leniently from
its parsed JSON instead, so an odd value becomes ``NULL``, never an error.
``raw`` keeps the record exactly as Mettl sent it, and ``content_hash`` is a
hash of those bytes: a record sent again unchanged is recognised without
comparing anything else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any, Final, TypeAlias

import msgspec
import orjson

from mettl_async._paging import RawRecord
from mettl_async._timefmt import parse_timestamp

__all__ = [
    "ROW_FIELDS",
    "SECTION_FIELDS",
    "Row",
    "Section",
    "content_hash",
    "result_row",
    "schedule_columns",
    "utc_text",
]

#: One section's columns after (access_key, email): position, section_name, total_marks,
#: max_marks, time_taken, total_question, total_correct_answers, total_unanswered.
Section: TypeAlias = tuple[Any, ...]
#: email, status, total_marks, max_marks, percentile, start_time, end_time, raw,
#: content_hash, sections (a tuple of :data:`Section`).
Row: TypeAlias = tuple[Any, ...]

ROW_FIELDS: Final = (
    "email",
    "status",
    "total_marks",
    "max_marks",
    "percentile",
    "start_time",
    "end_time",
    "raw",
    "content_hash",
)
SECTION_FIELDS: Final = (
    "position",
    "section_name",
    "total_marks",
    "max_marks",
    "time_taken",
    "total_question",
    "total_correct_answers",
    "total_unanswered",
)

_MONTHS: Final = {
    name: f"{number:02d}"
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


#: ``"Fri, 18 Feb 2022 01:09:52 GMT"``: day, month's name, year, time (UTC's too).
_GMT: Final = re.compile(
    r".{3}, ([0-9]{2}) ([A-Za-z]{3}) ([0-9]{4}) ([0-9]{2}:[0-9]{2}:[0-9]{2}) (?:GMT|UTC)", re.DOTALL
)


def utc_text(text: object) -> str | None:
    """Mettl's ``"Fri, 18 Feb 2022 01:09:52 GMT"`` (any zone it uses) as UTC
    ``"2022-02-18 01:09:52"``; ``None`` for anything unreadable or empty."""
    if not isinstance(text, str) or not text:
        return None
    # The common case, GMT or UTC, by one match (parse_timestamp reads every other zone).
    match = _GMT.fullmatch(text)
    if match is not None:
        day, name, year, clock = match.groups()
        month = _MONTHS.get(name)
        if month is not None:
            return year + "-" + month + "-" + day + " " + clock
    when = parse_timestamp(text)
    if when is None:
        return None
    when = when.astimezone(UTC)
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )


def content_hash(raw: bytes) -> str:
    """The hash that tells a changed record from an unchanged one (of the bytes as sent)."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


# -- the narrow schema (fast path) --------------------------------------------------------


class _Section(msgspec.Struct):
    sectionName: str | None = None
    totalMarks: float | None = None
    maxMarks: float | None = None
    timeTaken: float | None = None
    totalQuestion: float | None = None
    totalCorrectAnswers: float | None = None
    totalUnAnswered: float | None = None


class _Result(msgspec.Struct):
    totalMarks: float | None = None
    maxMarks: float | None = None
    percentile: float | None = None
    sectionMarks: list[_Section] | None = None


class _Status(msgspec.Struct):
    status: str | None = None
    startTime: str | None = None
    endTime: str | None = None
    result: _Result | None = None


class _Record(msgspec.Struct):
    testStatus: _Status | None = None


_DECODER: Final = msgspec.json.Decoder(_Record)


def _fast(raw: bytes) -> tuple[Any, ...] | None:
    try:
        record = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    status = record.testStatus
    if status is None:
        return None, None, None, None, None, None, ()
    result = status.result
    sections: tuple[Section, ...] = ()
    if result is None:
        totals: tuple[Any, Any, Any] = (None, None, None)
    else:
        totals = (result.totalMarks, result.maxMarks, result.percentile)
        if result.sectionMarks:
            sections = tuple(
                (
                    position,
                    s.sectionName,
                    s.totalMarks,
                    s.maxMarks,
                    s.timeTaken,
                    s.totalQuestion,
                    s.totalCorrectAnswers,
                    s.totalUnAnswered,
                )
                for position, s in enumerate(result.sectionMarks)
            )
    return (
        status.status,
        *totals,
        utc_text(status.startTime),
        utc_text(status.endTime),
        sections,
    )


# -- the lenient path -----------------------------------------------------------------------


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _lenient(raw: bytes) -> tuple[Any, ...]:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        record = None
    status = _mapping(_mapping(record).get("testStatus"))
    result = _mapping(status.get("result"))
    marks = result.get("sectionMarks")
    sections: list[Section] = []
    if isinstance(marks, list):
        for position, item in enumerate(marks):
            s = _mapping(item)
            sections.append(
                (
                    position,
                    _text(s.get("sectionName")),
                    _number(s.get("totalMarks")),
                    _number(s.get("maxMarks")),
                    _number(s.get("timeTaken")),
                    _number(s.get("totalQuestion")),
                    _number(s.get("totalCorrectAnswers")),
                    _number(s.get("totalUnAnswered")),
                )
            )
    return (
        _text(status.get("status")),
        _number(result.get("totalMarks")),
        _number(result.get("maxMarks")),
        _number(result.get("percentile")),
        utc_text(status.get("startTime")),
        utc_text(status.get("endTime")),
        tuple(sections),
    )


def _raw_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # not what JSON allows: keep what can be read
        return raw.decode("utf-8", errors="replace")


def result_row(email: str, raw: bytes) -> Row:
    """The columns of one candidate result (see :data:`Row`), from the JSON Mettl sent."""
    columns = _fast(raw)
    if columns is None:
        columns = _lenient(raw)
    *values, sections = columns
    return (email, *values, _raw_text(raw), content_hash(raw), sections)


def record_row(record: RawRecord) -> Row | None:
    """:func:`result_row` of a listed record; ``None`` for a record without an email."""
    email = record.key
    if not isinstance(email, str):
        return None
    return result_row(email, record.json)


def schedule_columns(schedule: Mapping[str, Any]) -> tuple[str | None, int | None, str]:
    """A schedule's ``name``, ``assessment_id`` and ``raw`` JSON text."""
    name = _text(schedule.get("name"))
    details = _mapping(schedule.get("assessmentDetails"))
    assessment = details.get("id")
    assessment_id = (
        assessment if isinstance(assessment, int) and not isinstance(assessment, bool) else None
    )
    raw = schedule.json if isinstance(schedule, RawRecord) else orjson.dumps(dict(schedule))
    return name, assessment_id, _raw_text(raw)


def sections_of(rows: Sequence[Row], access_key: str) -> list[tuple[Any, ...]]:
    """Every section row of ``rows``: (access_key, email, *section)."""
    return [(access_key, row[0], *section) for row in rows for section in row[9]]
