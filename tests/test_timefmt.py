"""Timestamps, dates and times as Mettl writes them: parsed fast, written back exactly."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mettl_async import _timefmt
from mettl_async._timefmt import (
    ZONES,
    format_date,
    format_time,
    format_timestamp,
    parse_date,
    parse_time,
    parse_timestamp,
)

IST = timedelta(hours=5, minutes=30)

# Every timestamp text in the articles' samples, with its UTC offset.
ARTICLE_TIMESTAMPS = [
    ("Tue, 08 Feb 2022 11:13:55 GMT", timedelta(0)),  # article 11
    ("Tue, 08 Feb 2022 07:19:47 GMT", timedelta(0)),  # article 11
    ("Fri, 11 Feb 2022 23:08:02 GMT", timedelta(0)),  # article 13 webhooks
    ("Fri, 29 Oct 2021 09:25:56 UTC", timedelta(0)),  # article 13 graded webhook
    ("Fri, 29 Oct 2021 14:55:56 IST", IST),  # article 13 graded webhook
    ("Fri, 18 Feb 2022 02:37:24 GMT", timedelta(0)),  # article 16
    ("Fri, 16 Aug 2024 18:44:13 IST", IST),  # article 17 fixture
    ("Fri, 16 Aug 2024 13:14:13 UTC", timedelta(0)),  # article 17 fixture
]


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which zones and texts were already reported."""
    monkeypatch.setattr(_timefmt._warn_once, "seen", set())


@pytest.mark.parametrize(("text", "offset"), ARTICLE_TIMESTAMPS, ids=lambda v: str(v))
def test_article_timestamps_parse_to_aware_datetimes(text: str, offset: timedelta) -> None:
    """GMT, UTC and IST texts become timezone-aware datetimes with the right UTC offset."""
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert parsed.utcoffset() == offset


@pytest.mark.parametrize(("text", "offset"), ARTICLE_TIMESTAMPS, ids=lambda v: str(v))
def test_article_timestamps_format_back_exactly(text: str, offset: timedelta) -> None:
    """A parsed timestamp is written back as the very same text, zone abbreviation included."""
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert format_timestamp(parsed) == text


def test_ist_is_india_standard_time() -> None:
    """Article 13 gives the same instant as 14:55:56 IST and 09:25:56 UTC: IST is +05:30."""
    local = parse_timestamp("Fri, 29 Oct 2021 14:55:56 IST")
    gmt = parse_timestamp("Fri, 29 Oct 2021 09:25:56 UTC")
    assert local == gmt
    assert local == datetime(2021, 10, 29, 9, 25, 56, tzinfo=UTC)


def test_empty_text_is_none_without_a_warning(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Article 16's ``"lastResponseTime": ""`` is simply no time; nothing is logged."""
    with caplog.at_level(logging.DEBUG, logger="mettl_async"):
        assert parse_timestamp("") is None
        assert parse_timestamp("   ") is None
        assert parse_timestamp(None) is None
    assert caplog.records == []


def test_unknown_zone_is_none_and_reported_once(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    """An abbreviation outside the table gives None (never an error) and one WARNING per zone."""
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        assert parse_timestamp("Fri, 18 Feb 2022 02:37:24 XST") is None
        assert parse_timestamp("Sat, 19 Feb 2022 02:37:24 XST") is None
    assert len(caplog.records) == 1
    assert "'XST'" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fri, 8 Feb 2022 02:37:24 GMT", datetime(2022, 2, 8, 2, 37, 24, tzinfo=UTC)),
        ("08 Feb 2022 02:37:24 GMT", datetime(2022, 2, 8, 2, 37, 24, tzinfo=UTC)),
        ("Tue, 08 Feb 2022 02:37 GMT", datetime(2022, 2, 8, 2, 37, tzinfo=UTC)),
        ("Tue, 08 FEB 2022 02:37:24 gmt", datetime(2022, 2, 8, 2, 37, 24, tzinfo=UTC)),
        (
            "Tue, 08 Feb 2022 08:07:24 +0530",
            datetime(2022, 2, 8, 8, 7, 24, tzinfo=timezone(IST)),
        ),
        (
            "Tue, 08 Feb 2022 08:07:24 GMT+05:30",
            datetime(2022, 2, 8, 8, 7, 24, tzinfo=timezone(IST)),
        ),
        (
            "Tue, 08 Feb 2022 02:37:24 PST",
            datetime(2022, 2, 8, 10, 37, 24, tzinfo=UTC),
        ),
    ],
)
def test_other_rfc_1123_variants_parse(text: str, expected: datetime) -> None:
    """One-digit days, no weekday, no seconds, other case and numeric offsets are read too."""
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "Tue, 30 Feb 2022 02:37:24 GMT", "Tue, 08 Feb 2022 25:00:00 GMT"]
)
def test_unreadable_text_is_none(fresh_warnings: None, text: str) -> None:
    """Text in no known shape, or not a real date, gives None rather than an error."""
    assert parse_timestamp(text) is None


def test_every_zone_in_the_table_round_trips() -> None:
    """Each abbreviation in the table formats back to itself."""
    for name, zone in ZONES.items():
        moment = datetime(2022, 2, 8, 11, 13, 55, tzinfo=zone)
        assert parse_timestamp(format_timestamp(moment)) == moment, name
        assert format_timestamp(moment).endswith(f" {name}")


def test_a_zone_outside_the_table_is_written_as_gmt() -> None:
    """A datetime in an arbitrary offset is converted to GMT on the way out."""
    moment = datetime(2022, 2, 8, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    assert format_timestamp(moment) == "Tue, 08 Feb 2022 11:00:00 GMT"


def test_a_naive_datetime_cannot_be_written() -> None:
    """Writing a time without a zone is refused rather than guessed."""
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2022, 2, 8, 12, 0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mon, 07 Feb 2022", date(2022, 2, 7)),  # article 13
        ("Fri, 11 Feb 2022", date(2022, 2, 11)),  # article 13
        ("Tue, 08 Feb 2022", date(2022, 2, 8)),  # article 11
        ("Wed, 09 Feb 2022", date(2022, 2, 9)),  # article 11
        ("Wed, 20 Oct 2021", date(2021, 10, 20)),  # article 13 prose
    ],
)
def test_schedule_window_dates_round_trip_exactly(text: str, expected: date) -> None:
    """``"Mon, 07 Feb 2022"`` is a date, and that date is written back as the same text."""
    assert parse_date(text) == expected
    assert format_date(expected) == text


@pytest.mark.parametrize("text", ["12:00:00", "18:00:00", "12:49:00", "09:00:00", "00:00:00"])
def test_schedule_window_times_round_trip_exactly(text: str) -> None:
    """``"12:00:00"`` is a time, written back as the same text."""
    parsed = parse_time(text)
    assert isinstance(parsed, time)
    assert format_time(parsed) == text


def test_iso_dates_and_short_times_are_accepted() -> None:
    """Convenient spellings a caller may hand in are understood too."""
    assert parse_date("2022-02-07") == date(2022, 2, 7)
    assert parse_time("9:05") == time(9, 5)


def test_unreadable_dates_and_times_are_none(fresh_warnings: None) -> None:
    """A date or time in no known shape is None, not an error."""
    assert parse_date("07/02/2022") is None
    assert parse_date("") is None
    assert parse_time("noon") is None
    assert parse_time("25:00:00") is None


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
def test_any_second_precision_timestamp_round_trips(moment: datetime) -> None:
    """Any time, in IST or GMT, survives format then parse (to the second)."""
    for zone in (ZONES["IST"], ZONES["GMT"]):
        aware = moment.replace(microsecond=0, tzinfo=zone)
        text = format_timestamp(aware)
        parsed = parse_timestamp(text)
        assert parsed == aware
        assert parsed is not None
        assert format_timestamp(parsed) == text


@given(st.dates())
def test_any_date_round_trips(day: date) -> None:
    """Every date from year 1 to 9999 survives format then parse."""
    assert parse_date(format_date(day)) == day


def test_a_value_that_is_no_text_is_none_and_a_datetime_is_kept(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    """What JSON may put where a timestamp belongs: never an error, one WARNING per value."""
    moment = datetime(2022, 2, 8, 11, 13, 55, tzinfo=UTC)
    assert parse_timestamp(moment) is moment
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        for value in (3, 2.5, True, ["Tue, 08 Feb 2022 11:13:55 GMT"], {"25": " "}, b"x" * 30):
            assert parse_timestamp(value) is None
        assert parse_timestamp(3) is None
    assert len(caplog.records) == 6
    assert all("where a timestamp belongs" in r.getMessage() for r in caplog.records)


def test_a_day_not_seen_before_is_read_and_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path's cache of days may miss (it starts empty, it is cleared when full): the
    timestamp is read all the same, and its day remembered for the next one."""
    days = _timefmt._DAYS_SEEN  # the one cache, shared with the generated readers
    saved = dict(days)
    monkeypatch.setattr(_timefmt, "_DAYS_SEEN_LIMIT", 2)
    try:
        days.clear()
        texts = [f"Tue, {n:02d} Feb 2022 11:13:55 GMT" for n in (8, 9, 10, 8)]
        parsed = [parse_timestamp(text) for text in texts]
        assert [p.day if p else None for p in parsed] == [8, 9, 10, 8]
        assert parsed[0] == datetime(2022, 2, 8, 11, 13, 55, tzinfo=UTC)
        assert len(days) <= 2
        assert days["08 Feb 2022"] == date(2022, 2, 8)
    finally:
        days.clear()
        days.update(saved)
