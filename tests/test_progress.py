"""The export's progress: what it knows of the total, its ETA, the bar and the plain lines."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mettl_async import ClientStats
from mettl_async.cli.export import ProgressLine
from mettl_async.export import ExportOptions, ExportProgress, export_results
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(**stats: Any) -> Any:
    return SimpleNamespace(stats=ClientStats(**stats))


def progress_at(elapsed: float, **fields: Any) -> ExportProgress:
    return ExportProgress(started=time.monotonic() - elapsed, **fields)


# -- what the export knows -------------------------------------------------------------


def test_the_total_is_exact_once_every_schedule_has_begun() -> None:
    progress = progress_at(
        10, schedules_total=10, schedules_begun=10, records_reported=10_000, records=5_000
    )
    assert progress.records_expected() == 10_000
    assert progress.eta(rate=500) == 10.0
    assert progress.eta() is not None
    assert 9.0 < progress.eta() < 11.0  # type: ignore[operator]  # the average: 5,000 in ~10 s


def test_the_total_is_estimated_from_the_schedules_begun() -> None:
    """Before the schedule listing ends, its totalRecords says how many schedules there are."""
    progress = progress_at(1, schedules_reported=40, schedules_begun=4, records_reported=2_000)
    assert progress.records_expected() == 20_000
    progress.schedules_skipped = 20  # a resume: only 20 schedules left to walk
    assert progress.records_expected() == 10_000


def test_nothing_is_promised_before_a_total_is_known() -> None:
    progress = progress_at(1, records=10)
    assert progress.records_expected() is None
    assert progress.eta(rate=100) is None
    progress.schedules_reported = 3
    assert progress.records_expected() is None  # no schedule has begun
    assert progress_at(1, schedules_total=1, schedules_begun=1).eta(rate=0) is None


def test_the_total_never_falls_below_what_was_seen() -> None:
    """Candidates arriving during the walk make a schedule longer than its first page said."""
    progress = progress_at(
        1, schedules_total=1, schedules_begun=1, records_reported=100, records=120
    )
    assert progress.records_expected() == 120
    assert progress.eta(rate=10) == 0.0


async def test_an_export_learns_the_total_from_the_first_pages(tmp_path: Path) -> None:
    fake = FakeMettl(account=FakeAccount([30, 0, 120, 7], seed=3))
    progress = ExportProgress()
    seen: list[int | None] = []
    async with FakeMettlServer(fake) as server, server.client(max_in_flight=4) as mettl:
        await export_results(
            mettl,
            ExportOptions(output=tmp_path / "out.jsonl"),
            progress=progress,
            on_progress=lambda p: seen.append(p.records_expected()),
        )
    assert progress.schedules_total == 4
    assert progress.schedules_begun == 4
    assert progress.records_reported == 157
    assert progress.records_expected() == 157 == progress.records
    assert all(value is None or value >= 0 for value in seen)


# -- the display ------------------------------------------------------------------------


def test_a_bar_on_a_terminal() -> None:
    stream = Terminal()
    clock = Clock()
    stats = {"requests": 120, "retries": 3, "throttled": 2, "allowed_rate": 18.5}
    line = ProgressLine(stream, client(**stats), enabled=True, clock=clock)
    progress = progress_at(
        10, schedules_total=10, schedules_begun=10, records_reported=10_000, records=5_000
    )
    progress.schedules_done = 5
    line(progress)
    text = stream.getvalue()
    assert " 50%|" in text
    assert "5,000/10,000 records" in text
    assert "ETA 0:00:1" in text  # 5,000 left at ~500/s
    assert "schedules 5/10" in text
    assert "requests 120" in text
    assert "retries 3" in text
    assert "throttled: 18.5 req/s" in text
    progress.records = 10_000
    progress.schedules_done = 10
    line.close(progress)
    text = stream.getvalue()
    assert "100%|" in text
    assert text.endswith("\n")


def test_the_bar_shows_an_estimate_and_waits_for_a_total() -> None:
    stream = Terminal()
    line = ProgressLine(stream, client(), enabled=True, clock=Clock())
    line(progress_at(1, records=10))
    assert "10 records | ETA ?" in stream.getvalue()
    assert "%|" not in stream.getvalue()
    line(progress_at(1, schedules_reported=40, schedules_begun=4, records_reported=2_000))
    assert "/~20,000 records" in stream.getvalue()
    assert "throttled" not in stream.getvalue()  # nothing refused yet
    line.close()


def test_the_rate_is_over_the_last_seconds() -> None:
    """After a slow start (listing the schedules), the ETA follows the current pace."""
    clock = Clock()
    line = ProgressLine(Terminal(), client(), enabled=False, clock=clock)
    progress = progress_at(0.5, schedules_total=1, schedules_begun=1, records_reported=10**6)
    assert line.rate(progress) == 0.0
    for _ in range(30):
        clock.now += 1.0
        progress.records += 1_000
        rate = line.rate(progress)
    assert rate == 1_000.0
    clock.now += 1.0
    progress.records += 5_000  # faster now
    assert 1_000 < line.rate(progress) < 5_000


def test_plain_lines_every_interval_when_not_a_terminal() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream, client(retries=1), enabled=True, interval=10, clock=Clock())
    progress = progress_at(
        5, schedules_total=2, schedules_begun=2, records_reported=1_000, records=100
    )
    line(progress)
    assert stream.getvalue() == ""  # the first interval has not passed
    progress.started -= 6  # 11 s in
    line(progress)
    line(progress)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("progress: 10% | 100/1,000 records | ETA ")
    assert "\r" not in stream.getvalue()
    progress.started -= 20  # 31 s in: one more line, not one per missed interval
    line(progress)
    assert len(stream.getvalue().splitlines()) == 2
    line.close()


def test_quiet_shows_nothing() -> None:
    for stream in (Terminal(), io.StringIO()):
        line = ProgressLine(stream, client(), enabled=False, interval=0.0)
        line(progress_at(100, schedules_total=1, schedules_begun=1, records_reported=5))
        line.close(progress_at(100))
        assert stream.getvalue() == ""
