"""Mettl's date and time texts, parsed by hand (fast) and written back exactly.

Three shapes appear in the articles:

- timestamps, RFC 1123 style with a zone *abbreviation*:
  ``"Tue, 08 Feb 2022 11:13:55 GMT"`` (article 11), ``"… UTC"`` and ``"… IST"``
  (article 13's graded webhook: ``14:55:56 IST`` is ``09:25:56 UTC``, so IST is
  India, +05:30). They become timezone-aware :class:`~datetime.datetime`\\ s;
- schedule-window dates ``"Mon, 07 Feb 2022"`` -> :class:`~datetime.date`;
- schedule-window times ``"12:00:00"`` -> :class:`~datetime.time`.

Decoding never fails: an empty text (article 16 sends ``"lastResponseTime": ""``)
gives ``None`` silently; an unknown zone abbreviation or a text in no known
shape gives ``None`` and one WARNING on the ``mettl_async.models`` logger (once per
abbreviation, once per text; see ``_warnonce``). The original text stays in the
model's ``raw`` mapping. ``strptime`` is not used: it is about ten times slower
than slicing a fixed layout, and it cannot read zone abbreviations other than UTC/GMT.

The timestamp fast path (the fixed layout every example uses) is written once,
as source (:func:`timestamp_fast_path`): :func:`parse_timestamp` is compiled from
it, and the converter's generated readers inline the same lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any, Final

from ._codegen import compile_function
from ._warnonce import WarnOnce

__all__ = [
    "TIMESTAMP_NAMES",
    "ZONES",
    "format_date",
    "format_time",
    "format_timestamp",
    "parse_date",
    "parse_time",
    "parse_timestamp",
    "timestamp_fast_path",
]

#: Each unreadable text, unknown zone or odd value is reported once.
_warn_once: Final = WarnOnce()

_MONTH_NAMES: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final[dict[str, int]] = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
# Month names in any case, for the slow path ("FEB", "feb").
_MONTHS_FOLDED: Final[dict[str, int]] = {name.casefold(): n for name, n in _MONTHS.items()}


def _zone(name: str, hours: int, minutes: int = 0) -> timezone:
    sign = -1 if hours < 0 else 1
    return timezone(sign * timedelta(hours=abs(hours), minutes=minutes), name)


# Abbreviation -> fixed offset. Each zone object carries its abbreviation as its
# name, so a parsed timestamp formats back to the same text. Where an
# abbreviation is ambiguous the table follows the usage Mettl's data implies:
# IST is India (article 13), CST/EST/... are the US zones (RFC 822's reading).
_ZONE_TABLE: Final[dict[str, timezone]] = {
    "GMT": _zone("GMT", 0),
    "UTC": UTC,
    "UT": _zone("UT", 0),
    "Z": _zone("Z", 0),
    "IST": _zone("IST", 5, 30),
    "WET": _zone("WET", 0),
    "WEST": _zone("WEST", 1),
    "BST": _zone("BST", 1),
    "CET": _zone("CET", 1),
    "CEST": _zone("CEST", 2),
    "EET": _zone("EET", 2),
    "EEST": _zone("EEST", 3),
    "MSK": _zone("MSK", 3),
    "WAT": _zone("WAT", 1),
    "CAT": _zone("CAT", 2),
    "SAST": _zone("SAST", 2),
    "EAT": _zone("EAT", 3),
    "GST": _zone("GST", 4),  # Gulf Standard Time (Dubai)
    "PKT": _zone("PKT", 5),
    "NPT": _zone("NPT", 5, 45),
    "ICT": _zone("ICT", 7),
    "WIB": _zone("WIB", 7),
    "SGT": _zone("SGT", 8),
    "HKT": _zone("HKT", 8),
    "AWST": _zone("AWST", 8),
    "JST": _zone("JST", 9),
    "KST": _zone("KST", 9),
    "ACST": _zone("ACST", 9, 30),
    "ACDT": _zone("ACDT", 10, 30),
    "AEST": _zone("AEST", 10),
    "AEDT": _zone("AEDT", 11),
    "NZST": _zone("NZST", 12),
    "NZDT": _zone("NZDT", 13),
    "BRT": _zone("BRT", -3),
    "ART": _zone("ART", -3),
    "EST": _zone("EST", -5),
    "EDT": _zone("EDT", -4),
    "CST": _zone("CST", -6),
    "CDT": _zone("CDT", -5),
    "MST": _zone("MST", -7),
    "MDT": _zone("MDT", -6),
    "PST": _zone("PST", -8),
    "PDT": _zone("PDT", -7),
    "AKST": _zone("AKST", -9),
    "AKDT": _zone("AKDT", -8),
    "HST": _zone("HST", -10),
}

#: The zone abbreviations understood in timestamps, each with its fixed offset.
ZONES: Final[Mapping[str, tzinfo]] = MappingProxyType(_ZONE_TABLE)

# The slow path: optional weekday, 1-2 digit day, month name, year, h:mm[:ss], zone.
_TIMESTAMP_RE: Final = re.compile(
    r"\s*(?:[A-Za-z]{3,9},?\s+)?(\d{1,2})\s+([A-Za-z]{3})[A-Za-z]*\.?\s+(\d{4})"
    r"\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(.*?)\s*"
)
# Numeric zones: "+0530", "+05:30", "GMT+05:30", "UTC-8".
_OFFSET_RE: Final = re.compile(r"(?:GMT|UTC|UT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
_DATE_RE: Final = re.compile(
    r"\s*(?:[A-Za-z]{3,9},?\s+)?(\d{1,2})\s+([A-Za-z]{3})[A-Za-z]*\.?\s+(\d{4})\s*"
)
_ISO_DATE_RE: Final = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})\s*")
_TIME_RE: Final = re.compile(r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*")


def _zone_for(text: str) -> tzinfo | None:
    zone = _ZONE_TABLE.get(text) or _ZONE_TABLE.get(text.upper())
    if zone is not None:
        return zone
    match = _OFFSET_RE.fullmatch(text)
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if offset >= timedelta(hours=24):
        return None
    return timezone(-offset if sign == "-" else offset)


# "18 Feb 2022" -> date, for the fast path; cleared when full (input is untrusted).
_DAYS_SEEN: dict[str, date] = {}
# Where the day sits in the fixed layout: "Tue, [08 Feb 2022] 11:13:55 GMT".
_DAY_AT: Final = slice(5, 16)
_DAYS_SEEN_LIMIT: Final = 4096
_combine: Final = datetime.combine
_time_of_day: Final = time.fromisoformat


def _remember_day(text: str) -> date:
    """``"18 Feb 2022"`` -> ``date``; raises ``ValueError``/``KeyError`` if it is not one."""
    if text[2] != " " or text[6] != " ":
        raise ValueError(text)
    day = date(int(text[7:11]), _MONTHS[text[3:6]], int(text[0:2]))
    if len(_DAYS_SEEN) >= _DAYS_SEEN_LIMIT:
        _DAYS_SEEN.clear()
    _DAYS_SEEN[text] = day
    return day


def timestamp_fast_path(target: str, text: str) -> list[str]:
    """:func:`parse_timestamp`'s fast path, as lines of code (four spaces in): its one text.

    The lines set ``target`` to what :func:`parse_timestamp` returns for the
    value named ``text``: the fixed layout every example uses (``"Tue, 08 Feb
    2022 11:13:55 GMT"``), its date part from a cache (a page's records share a
    few days), its time of day from the C parser; anything else (a day not yet
    cached, another layout, a value that is no text) goes to ``_other``. Run
    with :data:`TIMESTAMP_NAMES` in the namespace. :func:`parse_timestamp` is
    compiled from these lines; code generated elsewhere that reads many
    timestamps (``_convert``'s lazy readers) inlines them: a call less per read.
    """
    day = f"{text}[{_DAY_AT.start}:{_DAY_AT.stop}]"
    return [
        "    try:",
        f"        if {text}[25] == ' ' and {text}[19] == ':' and {text}[22] == ':':",
        f"            {target} = _combine(",
        f"                _days[{day}], _time_of_day({text}[17:25]), _zones[{text}[26:]]",
        "            )",
        "        else:",
        f"            {target} = _other({text})",
        "    except (TypeError, IndexError, KeyError, ValueError):",
        f"        {target} = _other({text})",
    ]


def _parse_other_timestamp(text: object) -> datetime | None:
    """What the fast path does not take: a new day, another layout, ``None``, a non-text.

    The fast path only reads the cache of days: a day it has not seen is remembered
    here (if it is one), and the fast path tried again.
    """
    if isinstance(text, str):
        day = text[_DAY_AT]
        if day and day not in _DAYS_SEEN:
            try:
                _remember_day(day)
            except (IndexError, KeyError, ValueError):
                pass
            else:  # the fast path again, the day known now
                return parse_timestamp(text)
        return _parse_timestamp_slowly(text)
    if text is None or isinstance(text, datetime):
        return text
    _warn_once(f"timestamp:{text!r}", "Mettl sent %r where a timestamp belongs: left None", text)
    return None


#: The names :func:`timestamp_fast_path`'s lines use.
TIMESTAMP_NAMES: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "_combine": _combine,
        "_time_of_day": _time_of_day,
        "_days": _DAYS_SEEN,
        "_zones": _ZONE_TABLE,
        "_other": _parse_other_timestamp,
    }
)

parse_timestamp: Final[Callable[[object], datetime | None]] = compile_function(
    "parse_timestamp",
    ["def parse_timestamp(text):", *timestamp_fast_path("value", "text"), "    return value"],
    {"__name__": __name__, **TIMESTAMP_NAMES},
    doc="""``"Tue, 08 Feb 2022 11:13:55 GMT"`` -> an aware ``datetime``; ``None`` if unreadable.

    ``None`` and ``""`` give ``None`` silently; an unknown zone abbreviation or
    an unreadable text gives ``None`` and one WARNING. A ``datetime`` is
    returned unchanged.
    """,
)


def _parse_timestamp_slowly(text: str) -> datetime | None:
    if not text or text.isspace():
        return None
    match = _TIMESTAMP_RE.fullmatch(text)
    month = _MONTHS_FOLDED.get(match.group(2).casefold()) if match else None
    if match is None or month is None:
        _warn_once(
            f"timestamp:{text}",
            "timestamp %r is in no shape Mettl uses: left None (the text stays in raw)",
            text,
        )
        return None
    day, _, year, hour, minute, second, zone_text = match.groups()
    zone = _zone_for(zone_text)
    if zone is None:
        _warn_once(
            f"zone:{zone_text}",
            "unknown time-zone abbreviation %r (in %r): timestamps with it are left None "
            "(the text stays in raw)",
            zone_text,
            text,
        )
        return None
    try:
        return datetime(
            int(year), month, int(day), int(hour), int(minute), int(second or 0), 0, zone
        )
    except ValueError:
        _warn_once(f"timestamp:{text}", "timestamp %r is not a real date: left None", text)
        return None


def format_timestamp(value: datetime) -> str:
    """An aware ``datetime`` -> ``"Tue, 08 Feb 2022 11:13:55 GMT"``.

    The zone is written as its abbreviation when the datetime carries one of
    :data:`ZONES` (so parsed timestamps round-trip exactly); any other zone is
    converted to GMT. A naive datetime raises ``ValueError``.
    """
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"cannot write a naive datetime as a Mettl timestamp: {value!r}")
    name = value.tzname()
    zone = _ZONE_TABLE.get(name) if name else None
    if zone is None or zone.utcoffset(None) != offset:
        value = value.astimezone(_ZONE_TABLE["GMT"])
        name = "GMT"
    return (
        f"{_DAY_NAMES[value.weekday()]}, {value.day:02d} {_MONTH_NAMES[value.month - 1]} "
        f"{value.year:04d} {value.hour:02d}:{value.minute:02d}:{value.second:02d} {name}"
    )


def parse_date(text: object) -> date | None:
    """``"Mon, 07 Feb 2022"`` (or ISO ``"2022-02-07"``) -> ``date``; ``None`` if unreadable."""
    if isinstance(text, str):
        try:
            if text[3] == "," and len(text) == 16:
                return date(int(text[12:16]), _MONTHS[text[8:11]], int(text[5:7]))
        except (IndexError, KeyError, ValueError):
            pass
        return _parse_date_slowly(text)
    if text is None:
        return None
    if isinstance(text, date) and not isinstance(text, datetime):
        return text
    _warn_once(f"date:{text!r}", "Mettl sent %r where a date belongs: left None", text)
    return None


def _parse_date_slowly(text: str) -> date | None:
    if not text or text.isspace():
        return None
    try:
        match = _DATE_RE.fullmatch(text)
        if match is not None:
            month = _MONTHS_FOLDED.get(match.group(2).casefold())
            if month is not None:
                return date(int(match.group(3)), month, int(match.group(1)))
        match = _ISO_DATE_RE.fullmatch(text)
        if match is not None:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        pass
    _warn_once(f"date:{text}", "date %r is in no shape Mettl uses: left None", text)
    return None


def format_date(value: date) -> str:
    """``date(2022, 2, 7)`` -> ``"Mon, 07 Feb 2022"``."""
    return (
        f"{_DAY_NAMES[value.weekday()]}, {value.day:02d} "
        f"{_MONTH_NAMES[value.month - 1]} {value.year:04d}"
    )


def parse_time(text: object) -> time | None:
    """``"12:00:00"`` (or ``"12:00"``) -> ``time``; ``None`` if unreadable."""
    if isinstance(text, str):
        match = _TIME_RE.fullmatch(text)
        if match is not None:
            hour, minute, second = match.groups()
            try:
                return time(int(hour), int(minute), int(second or 0))
            except ValueError:
                pass
        if text and not text.isspace():
            _warn_once(f"time:{text}", "time %r is in no shape Mettl uses: left None", text)
        return None
    if text is None or isinstance(text, time):
        return text
    _warn_once(f"time:{text!r}", "Mettl sent %r where a time belongs: left None", text)
    return None


def format_time(value: time) -> str:
    """``time(12, 0)`` -> ``"12:00:00"``."""
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
