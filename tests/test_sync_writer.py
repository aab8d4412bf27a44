"""``sync_results(..., writer="process")``: the database's work in a child process.

The same promises as in one process (the database mirrors the account, a
failed schedule changes nothing, a cancelled run is recorded and a rerun ends
equal, one sync at a time), and what a second process adds: errors cross it
typed, and the child never outlives its parent with the lock held.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from mettl_async import ServerError
from mettl_async.sync import (
    DatabaseLostError,
    ResultUpdater,
    SyncConfigurationError,
    SyncLockedError,
    open_database,
    sync_results,
)
from mettl_async.sync.base import DEFAULT_TIMEOUTS
from mettl_async.sync.writer import WriterProcess
from mettl_async.testing import (
    DEMO_PRIVATE_KEY,
    DEMO_PUBLIC_KEY,
    FakeAccount,
    FakeMettl,
    FakeMettlServer,
)
from mettl_async.webhooks import parse_event

from .test_sync import (  # noqa: F401 (database_url: a fixture, SQLite and PostgreSQL)
    assert_mirrors,
    committed_one,
    database_url,
    graded_payload,
    hold_all_but_the_first,
    runs,
    stored,
    truth,
)


@pytest.fixture
async def server() -> AsyncIterator[FakeMettlServer]:
    async with FakeMettlServer(FakeMettl(account=FakeAccount(6, 40, seed=5))) as running:
        yield running


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mettl.db'}"


def writer_pids(parent: int) -> set[int]:
    """The writer processes started by process ``parent`` (Linux's /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == parent and b"mettl_async.sync.writer" in command:
                found.add(int(entry.name))
    return found


async def test_a_sync_by_a_writer_process_equals_one_in_this_process(
    server: FakeMettlServer,
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> None:
    """Row for row, the same database either way; a rerun rewrites nothing; changes and
    deletions come through."""
    fake = server.fake
    here, there = f"sqlite:///{tmp_path / 'here.db'}", database_url
    async with server.client() as client:
        first = await sync_results(client, there, writer="process")
        await sync_results(client, here)
        assert first.complete
        assert first.inserted == fake.account.total_candidates
        assert first.schedules == len(fake.account.schedules)

        def comparable(rows: dict[tuple[str, str], dict[str, object]]) -> object:
            drop = ("first_seen", "updated")  # the times of each run
            return {k: {f: v for f, v in row.items() if f not in drop} for k, row in rows.items()}

        assert comparable(await stored(there)) == comparable(await stored(here))
        assert_mirrors(await stored(there), fake)
        again = await sync_results(client, there, writer="process")
        assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
        assert again.unchanged == fake.account.total_candidates

        schedule = fake.account.schedules[2].access_key
        changed = fake.mutate.emails(schedule, status="Completed")[0]
        fake.mutate.change_marks(schedule, changed)
        gone = fake.mutate.emails(schedule)[-1]
        fake.mutate.delete(schedule, gone)
        summary = await sync_results(client, there, writer="process")
    assert (summary.updated, summary.deleted) == (1, 1)
    assert_mirrors(await stored(there), fake)
    assert [r[1] for r in await runs(there)] == [1, 1, 1]


async def test_a_failed_schedule_changes_nothing_of_it(
    server: FakeMettlServer,
    database_url: str,  # noqa: F811
) -> None:
    fake = server.fake
    url = database_url
    schedule = fake.account.schedules[1]
    async with server.client() as client:
        await sync_results(client, url, writer="process")
        before = await stored(url)
        email = fake.mutate.emails(schedule.access_key, status="Completed")[0]
        fake.mutate.change_marks(schedule.access_key, email)
        fake.add_fault("http500", times=1000, path=f"/schedules/{schedule.access_key}/candidates")
        with pytest.raises(ServerError):
            await sync_results(client, url, writer="process")
    after = await stored(url)
    assert after[schedule.access_key, email] == before[schedule.access_key, email]
    last = (await runs(url))[-1]
    assert last[1] == 0
    assert last[7] is not None  # finished, incomplete
    assert "ServerError" in last[8]


async def test_a_cancelled_sync_is_recorded_and_a_rerun_ends_equal(
    server: FakeMettlServer, url: str
) -> None:
    fake = server.fake
    fake.latency = 0.02
    hold_all_but_the_first(fake)
    async with server.client(max_in_flight=2) as client:
        task = asyncio.create_task(sync_results(client, url, concurrency=1, writer="process"))
        await committed_one(url, lambda: task.done() and (task.exception() or "done"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        fake.faults.clear()
        first = await runs(url)
        assert (first[0][1], first[0][8]) == (0, "interrupted")
        summary = await sync_results(client, url, writer="process")
    assert summary.inserted + summary.unchanged == fake.account.total_candidates
    assert_mirrors(await stored(url), fake)


async def test_the_writer_holds_the_lock_both_ways(server: FakeMettlServer, url: str) -> None:
    """A sync in this process refuses while a writer process holds the lock, and the
    writer process's refusal comes back as SyncLockedError."""
    writer = await WriterProcess.start(url, url, DEFAULT_TIMEOUTS)
    try:
        async with server.client() as client:
            with pytest.raises(SyncLockedError, match="another sync"):
                await sync_results(client, url)
    finally:
        await writer.close()
    holder = await open_database(url)
    try:
        await holder.lock()
        async with server.client() as client:
            with pytest.raises(SyncLockedError, match="another sync"):
                await sync_results(client, url, writer="process")
    finally:
        await holder.close()


async def test_errors_of_the_child_arrive_typed(server: FakeMettlServer, tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_bytes(b"these are not the tables you are looking for" * 100)
    async with server.client() as client:
        with pytest.raises(SyncConfigurationError, match="is not a SQLite database"):
            await sync_results(client, f"sqlite:///{not_a_database}", writer="process")
        with pytest.raises(SyncConfigurationError, match="no directory"):
            await sync_results(client, f"sqlite:///{tmp_path}/missing/m.db", writer="process")
        database = await open_database(f"sqlite:///{tmp_path / 'open.db'}")
        try:
            with pytest.raises(ValueError, match="needs the database as a URL"):
                await sync_results(client, database, writer="process")
        finally:
            await database.close()
        with pytest.raises(ValueError, match="needs the database as a URL"):
            await sync_results(client, "sqlite:///:memory:", writer="process")
        with pytest.raises(ValueError, match="writer must be"):
            await sync_results(client, "sqlite:///x.db", writer="fork")  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
async def test_a_writer_that_dies_fails_the_sync_by_name(server: FakeMettlServer, url: str) -> None:
    fake = server.fake
    fake.latency = 0.02
    hold_all_but_the_first(fake)
    async with server.client(max_in_flight=2) as client:
        task = asyncio.create_task(sync_results(client, url, concurrency=1, writer="process"))
        await committed_one(url, lambda: task.done() and (task.exception() or "done"))
        (child,) = writer_pids(os.getpid())
        os.kill(child, signal.SIGKILL)
        with pytest.raises(DatabaseLostError, match=r"writer process .* ended unexpectedly"):
            await task
    fake.faults.clear()
    async with server.client() as client:  # the lock went with the child
        assert (await sync_results(client, url, writer="process")).complete
    assert_mirrors(await stored(url), fake)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_the_writer_dies_with_a_killed_sync(server: FakeMettlServer, url: str) -> None:
    """``mettl-async sync`` killed (SIGKILL): its writer process goes too, and the lock
    with it: the next sync runs, and the database ends as an uninterrupted run leaves it."""
    fake = server.fake
    fake.latency = 0.02
    hold_all_but_the_first(fake)
    env = {
        **os.environ,
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
        "METTL_BASE_URL": server.base_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mettl_async", "sync", "--database", url, "--concurrency", "1",
        "--quiet", "--writer", "process", env=env,
    )  # fmt: skip
    try:
        await committed_one(url, lambda: process.returncode is not None)
        children = writer_pids(process.pid)
        assert children, "no writer process"
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    async with asyncio.timeout(60):  # the kernel kills the child with its parent
        # another process's end gives no event here: polled
        while any(os.path.exists(f"/proc/{pid}") for pid in children):  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.02)
    fake.faults.clear()
    async with server.client() as client:
        assert (await sync_results(client, url, writer="process")).complete
    assert_mirrors(await stored(url), fake)


async def test_a_row_the_listener_stores_meanwhile_is_not_overwritten(
    server: FakeMettlServer,
    database_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The listener stores a regraded result after the schedule's first page was fetched
    and before the writer process reads it: the listing, older, does not overwrite it."""
    fake = server.fake
    key = fake.account.schedules[0].access_key
    regraded, other = fake.mutate.emails(key, status="Completed")[:2]
    async with server.client() as client:
        await sync_results(client, database_url, writer="process")
        listener_db = await open_database(database_url, reconnect=True)
        try:
            updater = ResultUpdater(client, listener_db)
            fake.mutate.change_marks(key, regraded)  # what the sync will list
            fake.mutate.change_marks(key, other)  # a change no webhook brings
            real = WriterProcess.page
            paused: list[str] = []

            async def pausing(self: WriterProcess, schedule: str, records: Any) -> None:
                if schedule == key and not paused:
                    paused.append(schedule)  # the page is fetched; the child has not seen it
                    fake.mutate.change_marks(key, regraded)  # regraded again: the newest
                    event = parse_event(graded_payload(key, regraded))
                    assert await updater(event) == "updated"
                await real(self, schedule, records)

            monkeypatch.setattr(WriterProcess, "page", pausing)
            summary = await sync_results(client, database_url, writer="process")
            newest = await client.get_candidate_result_raw(key, regraded)
        finally:
            await listener_db.close()
    assert paused == [key]
    found = await stored(database_url)
    assert found[key, regraded]["raw"] == orjson.loads(orjson.dumps(newest))  # the listener's
    for k, record in truth(fake).items():
        if k != (key, regraded):
            assert found[k]["raw"] == record
    assert (summary.inserted, summary.updated, summary.deleted) == (0, 1, 0)
