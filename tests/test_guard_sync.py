"""Tests of the sync mechanisms that mutation testing found unguarded.

Most drive a :class:`~mettl_async.sync.sink.ResultSink` directly over a SQLite file: what a
sync writes of the pages and commits it is given, without a server.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mettl_async import _walk as walk_module
from mettl_async._walk import WalkProgress
from mettl_async.sync import SyncConfigurationError, open_database, sync_results
from mettl_async.sync import engine as engine_module
from mettl_async.sync.base import Counts, Database, ScheduleCommit
from mettl_async.sync.engine import stop_reason
from mettl_async.sync.rows import result_row
from mettl_async.sync.sink import Committed, ResultSink
from mettl_async.sync.writer import WriterProcess
from mettl_async.testing import FakeAccount, FakeMettl, FakeMettlServer

from .test_sync import hold_results

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COLUMNS = ("A schedule", 7, '{"accessKey": "k"}')


def record(email: str | None, marks: float = 1.0) -> tuple[object, bytes]:
    """``(email, JSON bytes)`` of one listed result, as the sink is given it."""
    result = {"totalMarks": marks, "maxMarks": 10.0}
    data: dict[str, Any] = {"email": email, "testStatus": {"status": "Completed", "result": result}}
    return email, orjson.dumps(data)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path / 'mettl.db'}")
    try:
        yield database
    finally:
        await database.close()


async def results(db: Database, key: str) -> dict[str, tuple[float, bool]]:
    """email -> (total marks, deleted) of schedule ``key``'s stored rows."""
    rows = await db.fetch_all(
        "SELECT email, total_marks, deleted_at FROM candidate_results WHERE access_key = ?", key
    )
    return {email: (marks, deleted is not None) for email, marks, deleted in rows}


async def last_run(db: Database) -> tuple[Any, ...]:
    rows = await db.fetch_all(
        "SELECT complete, schedules, inserted, updated, unchanged, deleted, error "
        "FROM sync_runs ORDER BY id"
    )
    return rows[-1]


async def sync_one(db: Database, key: str, *pages: list[tuple[object, bytes]]) -> Committed:
    """A complete run of one schedule listed as ``pages``."""
    sink = ResultSink(db)
    await sink.begin(NOW, [key])
    await sink.mark(key)
    for page in pages:
        await sink.page(key, page)
    committed = await sink.commit(key, COLUMNS, NOW)
    assert await sink.finish(NOW, delete_schedules=False) == 0
    return committed


async def test_records_without_an_email_are_counted_not_stored(db: Database) -> None:
    """Every record without an email is counted (across pages); the others are stored."""
    committed = await sync_one(
        db, "k", [record(None), record("a@x"), record(None)], [record("b@x"), record(None)]
    )
    assert committed.skipped == 3
    assert (committed.counts.inserted, committed.counts.unchanged) == (2, 0)
    assert set(await results(db, "k")) == {"a@x", "b@x"}
    assert (await last_run(db))[:6] == (1, 1, 2, 0, 0, 0)


async def test_a_rerun_counts_unchanged_changed_and_gone(db: Database) -> None:
    """Against the stored rows: equal content unchanged, other content updated, unlisted
    rows deleted, and a deleted row listed again is live again."""
    await sync_one(db, "k", [record("a@x"), record("b@x"), record("c@x")])
    again = await sync_one(db, "k", [record("a@x"), record("b@x", 2.0)])
    assert (again.counts.inserted, again.counts.updated) == (0, 1)
    assert (again.counts.unchanged, again.counts.deleted) == (1, 1)
    assert await results(db, "k") == {"a@x": (1.0, False), "b@x": (2.0, False), "c@x": (1.0, True)}
    back = await sync_one(db, "k", [record("a@x"), record("b@x", 2.0), record("c@x")])
    assert (back.counts.updated, back.counts.unchanged) == (1, 2)
    assert await results(db, "k") == {"a@x": (1.0, False), "b@x": (2.0, False), "c@x": (1.0, False)}


async def test_a_schedule_committed_without_a_page_has_its_rows_deleted(db: Database) -> None:
    """A complete walk that listed nothing: every stored row of the schedule is gone."""
    await sync_one(db, "k", [record("a@x"), record("b@x")])
    empty = await sync_one(db, "k")
    assert (empty.counts.deleted, empty.skipped) == (2, 0)
    assert await results(db, "k") == {"a@x": (1.0, True), "b@x": (1.0, True)}


async def test_a_row_stored_after_the_mark_is_kept(db: Database) -> None:
    """A row another writer stores after the schedule's mark is newer than the listing:
    neither overwritten nor deleted by it. Rows stored before the mark are."""
    await sync_one(db, "k", [record("a@x"), record("b@x"), record("c@x")])
    sink = ResultSink(db)
    await sink.begin(NOW, ["k"])
    await sink.mark("k")
    await db.store_result("k", result_row("a@x", record("a@x", 9.0)[1]), NOW)  # a webhook's
    await db.store_result("k", result_row("d@x", record("d@x", 9.0)[1]), NOW)
    await sink.page("k", [record("a@x", 2.0), record("b@x", 2.0)])
    counts = (await sink.commit("k", COLUMNS, NOW)).counts
    assert (counts.inserted, counts.updated, counts.deleted) == (0, 1, 1)
    assert await results(db, "k") == {
        "a@x": (9.0, False),  # the listener's, newer
        "b@x": (2.0, False),
        "c@x": (1.0, True),
        "d@x": (9.0, False),  # stored after the mark, not listed: kept
    }


async def test_a_schedule_not_marked_takes_the_runs_mark(db: Database) -> None:
    """A schedule whose pages come without its mark (named otherwise by the walk) is
    marked as the run began: a row stored since is kept, one stored before updated."""
    await sync_one(db, "k", [record("a@x"), record("b@x")])
    sink = ResultSink(db)
    await sink.begin(NOW, None)
    await db.store_result("k", result_row("a@x", record("a@x", 9.0)[1]), NOW)
    await sink.page("k", [record("a@x", 2.0), record("b@x", 2.0)])
    counts = (await sink.commit("k", COLUMNS, NOW)).counts
    assert (counts.updated, counts.deleted) == (1, 0)
    assert await results(db, "k") == {"a@x": (9.0, False), "b@x": (2.0, False)}


async def test_a_schedule_marked_late_is_read_at_its_own_mark(db: Database) -> None:
    """The schedule's own mark, not the run's: a row stored between the run's start and
    the schedule's mark is older than the listing, which overwrites it."""
    await sync_one(db, "k", [record("a@x")])
    sink = ResultSink(db)
    await sink.begin(NOW, None)
    await db.store_result("k", result_row("a@x", record("a@x", 9.0)[1]), NOW)
    await sink.mark("k")
    await sink.page("k", [record("a@x", 2.0)])
    assert (await sink.commit("k", COLUMNS, NOW)).counts.updated == 1
    assert await results(db, "k") == {"a@x": (2.0, False)}


async def test_an_aborted_run_writes_nothing_of_the_schedules_being_walked(
    db: Database,
) -> None:
    """abort: committed schedules stay, a schedule with pages but no commit is not written,
    and the run's row says it is incomplete, why, and how many schedules it committed."""
    sink = ResultSink(db, spool_memory=0)  # the walked schedule's rows in a file
    await sink.begin(NOW, None)
    for key in ("k1", "k2", "k3"):
        await sink.mark(key)
    await sink.page("k1", [record("a@x")])
    await sink.commit("k1", COLUMNS, NOW)
    await sink.page("k2", [record("b@x"), record("c@x")])
    await sink.abort(NOW, "interrupted (SIGINT)")
    assert await results(db, "k1") == {"a@x": (1.0, False)}
    assert await results(db, "k2") == {}
    assert await last_run(db) == (0, 1, 1, 0, 0, 0, "interrupted (SIGINT)")


async def test_rows_spooled_to_a_file_commit_the_same(db: Database) -> None:
    """A sink whose spools hold nothing in memory writes what one that keeps them does."""
    sink = ResultSink(db, spool_memory=0)
    assert sink.spool_memory == 0
    await sink.begin(NOW, ["k"])
    await sink.mark("k")
    await sink.page("k", [record("a@x"), record("b@x")])
    await sink.page("k", [record("c@x", 3.0)])
    assert (await sink.commit("k", COLUMNS, NOW)).counts.inserted == 3
    assert await results(db, "k") == {"a@x": (1.0, False), "b@x": (1.0, False), "c@x": (3.0, False)}
    assert ResultSink(db).spool_memory == 2 * 1024 * 1024


async def test_finish_marks_unlisted_schedules_only_for_a_whole_account_walk(
    db: Database,
) -> None:
    """finish(delete_schedules=True) marks the stored schedules the run did not commit,
    and says how many; a run of chosen schedules marks none."""
    for key in ("k1", "k2", "k3"):
        await sync_one(db, key, [record("a@x")])
    sink = ResultSink(db)
    await sink.begin(NOW, None)
    await sink.mark("k2")
    await sink.page("k2", [record("a@x")])
    await sink.commit("k2", COLUMNS, NOW)
    assert await sink.finish(NOW, delete_schedules=True) == 2
    assert await last_run(db) == (1, 1, 0, 0, 1, 0, None)
    marked = await db.fetch_all("SELECT access_key FROM schedules WHERE deleted_at IS NOT NULL")
    assert sorted(key for (key,) in marked) == ["k1", "k3"]


# -- the engine: a sync of a fake account ----------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeMettlServer]:
    async with FakeMettlServer(FakeMettl(account=FakeAccount(3, 6, seed=3))) as running:
        yield running


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"access_keys": ["k", " "]}, ValueError, "access_keys must be non-empty strings"),
        ({"access_keys": ["k", 5]}, ValueError, "access_keys must be non-empty strings"),
        ({"writer": "fork"}, ValueError, "writer must be 'thread' or 'process', got 'fork'"),
        (
            {"writer": "process", "database": "sqlite:///:memory:"},
            ValueError,
            'writer="process" needs the database as a URL of a file or a server',
        ),
        (
            {"writer": "process", "timeouts": 5},
            SyncConfigurationError,
            "timeouts must be DatabaseTimeouts, got 5",
        ),
    ],
    ids=["blank-key", "int-key", "writer", "memory", "timeouts"],
)
async def test_bad_arguments_are_refused_by_name(
    server: FakeMettlServer, tmp_path: Path, options: dict[str, Any], error: type, message: str
) -> None:
    """Before anything is opened or asked for: the argument and what was wrong."""
    options.setdefault("database", f"sqlite:///{tmp_path / 'mettl.db'}")
    async with server.client() as client:
        with pytest.raises(error) as caught:
            await sync_results(client, **options)
    assert str(caught.value).startswith(message)
    assert server.fake.requests == 0
    assert not (tmp_path / "mettl.db").exists()


async def test_a_database_object_is_refused_for_a_writer_process(
    server: FakeMettlServer, db: Database
) -> None:
    async with server.client() as client:
        with pytest.raises(ValueError, match="a database object and sqlite:///:memory:"):
            await sync_results(client, db, writer="process")


async def test_the_summary_and_progress_count_what_was_done(
    server: FakeMettlServer, db: Database, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """Records without an email are counted as skipped and logged once per schedule; the
    summary's records, requests and retries are the run's; progress counts every record
    and schedule (no totals: the sync reads none); a database object given stays open."""
    fake = server.fake
    real = FakeAccount.candidate_bytes
    first = fake.account.schedules[0]

    def no_email(self: FakeAccount, schedule: Any, j: int, **options: bool) -> bytes:
        data = real(self, schedule, j, **options)
        if schedule is first and j < 2:
            return orjson.dumps({**orjson.loads(data), "email": None})
        return data

    monkeypatch.setattr(FakeAccount, "candidate_bytes", no_email)
    fake.add_fault("http500", times=1, path=f"/schedules/{first.access_key}/candidates")
    total = fake.account.total_candidates
    progress = WalkProgress()
    async with server.client() as client:
        with caplog.at_level(logging.WARNING, logger="mettl_async.sync"):
            summary = await sync_results(client, db, progress=progress)
        requests = client.stats.requests
    assert summary.complete
    assert (summary.schedules, summary.skipped) == (3, 2)
    assert summary.records == summary.inserted == total - 2
    assert (summary.updated, summary.unchanged, summary.deleted) == (0, 0, 0)
    assert (summary.requests, summary.retries) == (requests, 1)
    assert summary.seconds > 0
    assert (progress.records, progress.schedules_done) == (total, 3)
    assert progress.records_expected() is None  # no totals read: no percentage, no ETA
    warnings = [r.getMessage() for r in caplog.records if r.name == "mettl_async.sync"]
    assert warnings == [
        f"sync: 2 result(s) of schedule {first.access_key} have no email; not stored"
    ]
    assert await db.fetch_all("SELECT 1") == [(1,)]  # left open


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (asyncio.CancelledError(), "interrupted"),
        (asyncio.CancelledError("terminated (SIGTERM)"), "terminated (SIGTERM)"),
        (asyncio.CancelledError(""), "interrupted"),
        (asyncio.CancelledError(15), "interrupted"),
        (OSError("disk gone"), "OSError: disk gone"),
        (KeyError(), "KeyError"),
    ],
)
def test_a_runs_error_says_why_it_stopped(exc: BaseException, reason: str) -> None:
    """sync_runs.error: a cancellation's reason when its canceller gave one as text."""
    assert stop_reason(exc) == reason


async def settled() -> None:
    """Until every other task of the loop is done, and their callbacks have run."""
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    if others:
        await asyncio.wait(others)
    await asyncio.sleep(0)


async def test_an_abort_drops_the_reads_of_schedules_not_begun_quietly(
    db: Database, caplog: Any
) -> None:
    """A schedule marked (its stored rows being read) but not yet walked when the run is
    aborted: the read is dropped, and nothing is logged about it, failed or cancelled."""
    await sync_one(db, "k1", [record("a@x")])
    sink = ResultSink(db)
    await sink.begin(NOW, None)
    await sink.mark("k1")
    await sink.mark("k2")
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        await sink.abort(NOW, "interrupted")
        await settled()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert await last_run(db) == (0, 0, 0, 0, 0, 0, "interrupted")


async def test_the_runs_row_names_its_scope(db: Database) -> None:
    """sync_runs.scope: the schedules asked for, as JSON; NULL for the whole account."""
    await sync_one(db, "k", [record("a@x")])
    sink = ResultSink(db)
    await sink.begin(NOW, None)
    await sink.finish(NOW, delete_schedules=False)
    scopes = await db.fetch_all("SELECT scope FROM sync_runs ORDER BY id")
    assert [orjson.loads(s) if s else s for (s,) in scopes] == [["k"], None]


async def test_a_schedules_stored_rows_are_read_once_from_its_mark(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read starts when the schedule is marked (its first page need not wait for it),
    once however often it is marked, and its first page uses it rather than read again."""
    await sync_one(db, "k", [record("a@x"), record("b@x")])
    reads: list[str] = []
    real = db.snapshot

    def snapshot(key: str) -> Any:
        reads.append(key)
        return real(key)

    monkeypatch.setattr(db, "snapshot", snapshot)
    sink = ResultSink(db)
    await sink.begin(NOW, None)
    await sink.mark("k")
    assert reads == ["k"]
    await sink.mark("k")
    await sink.page("k", [record("a@x")])
    await sink.mark("k")
    await sink.page("k", [record("b@x", 2.0)])
    assert reads == ["k"]
    counts = (await sink.commit("k", COLUMNS, NOW)).counts
    assert (counts.updated, counts.unchanged) == (1, 1)


async def test_a_second_cancel_while_the_run_is_recorded_logs_no_stray_error(
    server: FakeMettlServer, db: Database, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """Ctrl+C twice: the second stops the wait for the run's row; when recording it then
    fails, that failure is not reported later as an exception nobody retrieved."""
    fake = server.fake
    hold_results(fake, fake.account.schedules)
    begun, aborting, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_begin = ResultSink.begin

    async def begin(self: ResultSink, now: datetime, scope: Any) -> int:
        try:
            return await real_begin(self, now, scope)
        finally:
            begun.set()

    async def abort(self: ResultSink, now: datetime, error: str) -> None:
        aborting.set()
        await release.wait()
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ResultSink, "begin", begin)
    monkeypatch.setattr(ResultSink, "abort", abort)
    async with server.client() as client:
        task = asyncio.create_task(sync_results(client, db))
        await begun.wait()
        task.cancel()
        await aborting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        release.set()
        for _ in range(10):  # the abort's end, then its callbacks
            await asyncio.sleep(0)
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


async def test_only_rows_that_differ_from_the_stored_ones_are_held_for_the_commit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged record is not spooled (memory, a temporary file): only new, changed
    and deleted-but-listed-again records reach the commit, marked schedule or not."""
    for key in ("k", "j"):
        await sync_one(db, key, [record("a@x"), record("b@x"), record("c@x")])
        await sync_one(db, key, [record("a@x"), record("b@x")])  # c@x deleted
    spooled: dict[str, set[str]] = {}
    real = db.commit_schedule

    async def commit_schedule(commit: ScheduleCommit) -> Counts:
        spooled[commit.access_key] = {row[0] for rows in commit.spool.chunks() for row in rows}
        return await real(commit)

    monkeypatch.setattr(db, "commit_schedule", commit_schedule)
    sink = ResultSink(db)
    await sink.begin(NOW, None)
    await sink.mark("k")  # "j" is not marked: its rows are read at its first page
    for key in ("k", "j"):
        listing = [record("a@x"), record("b@x", 2.0), record("c@x"), record("d@x")]
        await sink.page(key, listing)
        counts = (await sink.commit(key, COLUMNS, NOW)).counts
        assert (counts.inserted, counts.updated, counts.unchanged) == (1, 2, 1)
    assert spooled == {"k": {"b@x", "c@x", "d@x"}, "j": {"b@x", "c@x", "d@x"}}


async def test_progress_is_reported_as_the_walk_goes(
    server: FakeMettlServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """on_progress is called with the records read so far (here after every page)."""
    monkeypatch.setattr(walk_module, "REPORT_EVERY", 0)
    reports: list[tuple[int, int]] = []
    async with server.client() as client:
        await sync_results(
            client, db, on_progress=lambda p: reports.append((p.records, p.schedules_done))
        )
    assert len(reports) >= 3
    assert reports[-1] == (server.fake.account.total_candidates, 3)


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time zone: UTC+05:30."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_the_runs_times_are_utc_whatever_the_local_zone(
    server: FakeMettlServer, db: Database, kolkata: None
) -> None:
    """sync_runs and the rows are stamped in UTC, not in the machine's local time."""
    before = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    async with server.client() as client:
        await sync_results(client, db)
    after = datetime.now(UTC).replace(tzinfo=None)
    ((started, finished),) = await db.fetch_all("SELECT started_at, finished_at FROM sync_runs")
    stamps = await db.fetch_all("SELECT DISTINCT updated_at FROM candidate_results")
    for text in (started, finished, *(s for (s,) in stamps)):
        assert before <= datetime.fromisoformat(text) <= after


async def test_each_schedule_is_marked_before_its_pages(
    server: FakeMettlServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync reads each schedule's version mark once, before any page of it."""
    events: list[tuple[str, str]] = []
    real_mark, real_page = ResultSink.mark, ResultSink.page

    async def mark(self: ResultSink, key: str) -> None:
        events.append(("mark", key))
        await real_mark(self, key)

    async def page(self: ResultSink, key: str, records: Any) -> None:
        events.append(("page", key))
        await real_page(self, key, records)

    monkeypatch.setattr(ResultSink, "mark", mark)
    monkeypatch.setattr(ResultSink, "page", page)
    async with server.client() as client:
        await sync_results(client, db)
    keys = [s.access_key for s in server.fake.account.schedules]
    assert sorted(key for what, key in events if what == "mark") == sorted(keys)
    for key in keys:
        assert events.index(("mark", key)) < events.index(("page", key))


async def test_a_cancellation_says_why_through_a_writer_process(
    server: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """writer="process": the canceller's reason (the command line's signal) reaches the
    run's row as it does in this process."""
    fake = server.fake
    hold_results(fake, fake.account.schedules)
    begun = asyncio.Event()
    real_begin = WriterProcess.begin

    async def begin(self: WriterProcess, now: datetime, scope: Any) -> int:
        try:
            return await real_begin(self, now, scope)
        finally:
            begun.set()

    monkeypatch.setattr(WriterProcess, "begin", begin)
    url = f"sqlite:///{tmp_path / 'mettl.db'}"
    async with server.client() as client:
        task = asyncio.create_task(sync_results(client, url, writer="process"))
        await begun.wait()
        task.cancel("terminated (SIGTERM)")
        with pytest.raises(asyncio.CancelledError):
            await task
    async with await open_database(url) as db:
        assert await last_run(db) == (0, 0, 0, 0, 0, 0, "terminated (SIGTERM)")


# -- the in-process writer's bound on pending commits, and the writer process's watch ---------


class HeldCommits:
    """Stands for a sink's ``commit``: each schedule's commit waits until released."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.cancelled: list[str] = []

    async def commit(self, key: str, columns: object, now: datetime) -> Committed:
        gate = self.gates.setdefault(key, asyncio.Event())
        try:
            await gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        return Committed(Counts(inserted=1), 0)

    def release(self, key: str) -> None:
        self.gates.setdefault(key, asyncio.Event()).set()


async def turns(count: int = 10) -> None:
    """Let every task that can run, run (no time passes)."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_at_most_four_commits_wait_while_the_walk_goes_on(db: Database) -> None:
    """The walk hands over a schedule's commit and goes on; with PENDING_COMMITS (4) still
    waiting it waits for one of them to be done, and again for each commit after."""
    assert engine_module.PENDING_COMMITS == 4
    writer = engine_module._InProcess(db)
    held = HeldCommits()
    writer._sink.commit = held.commit  # type: ignore[method-assign]
    done: list[int] = []

    def on_done(outcome: Committed) -> None:
        done.append(outcome.counts.inserted)

    for key in ("k1", "k2", "k3"):
        await writer.commit(key, COLUMNS, NOW, on_done)  # returns at once
    fourth = asyncio.ensure_future(writer.commit("k4", COLUMNS, NOW, on_done))
    await turns()
    assert not fourth.done()  # four pending: the walk waits
    held.release("k1")
    await turns()
    assert fourth.done()  # one of them done: three pending
    assert done == [1]
    fifth = asyncio.ensure_future(writer.commit("k5", COLUMNS, NOW, on_done))
    await turns()
    assert not fifth.done()  # four pending again
    held.release("k3")
    await turns()
    assert fifth.done()
    for key in ("k2", "k4", "k5"):
        held.release(key)
    await turns()
    assert done == [1] * 5
    assert held.cancelled == []


async def test_an_abort_cancels_the_commits_still_waiting_then_records_the_run(
    db: Database,
) -> None:
    """A run that fails with commits pending: those are cancelled (their schedules not
    written, not reported done), then the run is recorded as stopped."""
    writer = engine_module._InProcess(db)
    held = HeldCommits()
    writer._sink.commit = held.commit  # type: ignore[method-assign]
    aborted: list[str] = []

    async def abort(now: datetime, error: str) -> None:
        assert sorted(held.cancelled) == ["k1", "k2"]  # the commits are stopped first
        aborted.append(error)

    writer._sink.abort = abort  # type: ignore[method-assign]
    done: list[Committed] = []
    await writer.commit("k1", COLUMNS, NOW, done.append)
    await writer.commit("k2", COLUMNS, NOW, done.append)
    await turns()  # both commits under way
    await writer.abort(NOW, "RuntimeError: boom")
    assert aborted == ["RuntimeError: boom"]
    assert done == []


async def test_a_writer_process_watch_returns_the_syncs_result_as_soon_as_it_is_done() -> None:
    """The sync done, its summary comes back; the writer process still being there (its
    ``gone`` never set) is no reason to wait."""
    gone: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    finish = asyncio.Event()

    async def work() -> str:
        await finish.wait()
        return "summary"

    watched = asyncio.ensure_future(engine_module._watched(work(), gone))
    try:
        await turns()
        assert not watched.done()
        finish.set()
        await turns()
        assert watched.done()
        assert watched.result() == "summary"
    finally:
        gone.cancel()  # nothing left waiting, whatever the outcome
        await asyncio.gather(watched, return_exceptions=True)


async def test_a_writer_process_gone_stops_the_sync_with_its_error() -> None:
    """The writer process gone mid-run: the sync's work is cancelled (and has ended) before
    the process's error is raised, at once, not at the walk's next page."""
    gone: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    ended: list[str] = []

    async def work() -> str:
        try:
            await asyncio.Event().wait()  # a walk whose next page is long in coming
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        return "never"

    error = RuntimeError("the writer process died (exit code -9)")
    watched = asyncio.ensure_future(engine_module._watched(work(), gone))
    await turns()
    gone.set_result(error)
    with pytest.raises(RuntimeError) as raised:
        await watched
    assert raised.value is error
    assert ended == ["cancelled"]


# -- what sync_results hands on: the scope, the walk's concurrency, skipped records ----------


async def test_a_sync_of_some_schedules_records_them_as_its_scope(
    server: FakeMettlServer, db: Database
) -> None:
    key = server.fake.account.schedules[1].access_key
    async with server.client() as client:
        summary = await sync_results(client, db, access_keys=[key, key])
    assert summary.schedules == 1
    (scope,) = await db.fetch_all("SELECT scope FROM sync_runs WHERE id = ?", summary.run_id)
    assert orjson.loads(scope[0]) == [key]


async def test_a_sync_walks_as_many_schedules_at_once_as_asked(
    server: FakeMettlServer, db: Database
) -> None:
    """``concurrency=1``: one schedule's results at a time (the default would walk all
    three schedules of the account at once)."""
    server.fake.latency = 0.02  # answers overlap when asked for at once
    async with server.client() as client:
        summary = await sync_results(client, db, concurrency=1)
    assert summary.schedules == 3
    assert 1 <= server.fake.peak_in_flight <= 2  # the schedule listing, one schedule's page


async def test_records_without_an_email_are_added_up_over_the_schedules(
    server: FakeMettlServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = FakeAccount.candidate_bytes

    def no_email(self: FakeAccount, schedule: Any, j: int, **options: bool) -> bytes:
        data = real(self, schedule, j, **options)
        if j == 0:  # the first result of every schedule
            return orjson.dumps({**orjson.loads(data), "email": None})
        return data

    monkeypatch.setattr(FakeAccount, "candidate_bytes", no_email)
    async with server.client() as client:
        summary = await sync_results(client, db)
    assert (summary.schedules, summary.skipped) == (3, 3)


async def test_a_resyncs_records_are_every_listed_result_changed_or_not(
    server: FakeMettlServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary's records: inserted, updated and unchanged, added up."""
    total = server.fake.account.total_candidates
    async with server.client() as client:
        first = await sync_results(client, db)
        assert (first.records, first.inserted) == (total, total)
        real = FakeAccount.candidate_bytes

        def graded_again(self: FakeAccount, schedule: Any, j: int, **options: bool) -> bytes:
            data = real(self, schedule, j, **options)
            if j == 0:  # the first result of every schedule changed
                return orjson.dumps({**orjson.loads(data), "testStatus": {"status": "Graded"}})
            return data

        monkeypatch.setattr(FakeAccount, "candidate_bytes", graded_again)
        second = await sync_results(client, db)
    assert (second.inserted, second.updated, second.unchanged) == (0, 3, total - 3)
    assert second.records == total
