"""``sync_results`` and ``mettl-async sync``: the same tests on SQLite and, when
``METTL_TEST_POSTGRES_URL`` is set (``eval "$(.ci/postgres.sh start)"``), on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mettl_async import MettlClient, ServerError
from mettl_async.cli.entry import main
from mettl_async.sync import (
    SyncConfigurationError,
    SyncError,
    SyncLockedError,
    SyncSummary,
    open_database,
    sync_results,
)
from mettl_async.sync import base as sync_base
from mettl_async.sync.base import Database, Spool, redact_url
from mettl_async.sync.rows import result_row, utc_text
from mettl_async.testing import (
    DEMO_PRIVATE_KEY,
    DEMO_PUBLIC_KEY,
    FakeAccount,
    FakeMettl,
    FakeMettlServer,
)
from mettl_async.testing.data import FakeSchedule

from .conftest import HERE
from .listener import listening, stop

POSTGRES_ENV = "METTL_TEST_POSTGRES_URL"
README = HERE.parent / "README.md"


# -- fixtures: a database of each kind, a fake account ---------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database: a SQLite file, or a fresh schema of the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mettl.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f'{POSTGRES_ENV} is not set (start one: eval "$(.ci/postgres.sh start)")')
    import asyncpg  # type: ignore[import-untyped]

    schema = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


@pytest.fixture
async def server() -> AsyncIterator[FakeMettlServer]:
    async with FakeMettlServer(FakeMettl(account=FakeAccount(6, 40, seed=5))) as running:
        yield running


def gmt(text: str | None) -> str | None:
    """The fake's GMT timestamps as UTC text, read independently of the code under test."""
    if not text:
        return None
    return datetime.strptime(text, "%a, %d %b %Y %H:%M:%S GMT").strftime("%Y-%m-%d %H:%M:%S")


def as_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return value


async def stored(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    async with await open_database(url) as db:
        rows = await db.fetch_all(
            "SELECT access_key, email, status, total_marks, max_marks, percentile, start_time, "
            "end_time, raw, content_hash, first_seen_at, updated_at, deleted_at "
            "FROM candidate_results"
        )
        sections = await db.fetch_all(
            "SELECT access_key, email, position, section_name, total_marks, max_marks, "
            "time_taken, total_question, total_correct_answers, total_unanswered "
            "FROM section_marks ORDER BY access_key, email, position"
        )
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for key, email, status, total, top, pct, start, end, raw, digest, first, upd, dele in rows:
        found[key, email] = {
            "status": status, "total": total, "max": top, "percentile": pct,
            "start": as_text(start), "end": as_text(end), "raw": orjson.loads(raw),
            "hash": digest, "first_seen": first, "updated": upd, "deleted": dele, "sections": [],
        }  # fmt: skip
    for key, email, position, *values in sections:
        found[key, email]["sections"].append((position, *values))
    return found


def truth(fake: FakeMettl) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (s.access_key, record["email"]): record
        for s in fake.account.schedules
        for record in fake.account.candidates(s)
    }


def assert_mirrors(found: dict[tuple[str, str], dict[str, Any]], fake: FakeMettl) -> None:
    """Every live row is the fake's record, column by column; no other row is live."""
    want = truth(fake)
    live = {k: v for k, v in found.items() if v["deleted"] is None}
    assert set(live) == set(want)
    for key, record in want.items():
        row = live[key]
        status = record["testStatus"]
        result = status.get("result") or {}
        assert row["raw"] == record
        assert row["status"] == status["status"]
        assert row["total"] == result.get("totalMarks")
        assert row["max"] == result.get("maxMarks")
        assert row["percentile"] == result.get("percentile")
        assert row["start"] == gmt(status.get("startTime"))
        assert row["end"] == gmt(status.get("endTime"))
        assert row["sections"] == [
            (i, s["sectionName"], s["totalMarks"], s["maxMarks"], s["timeTaken"],
             s["totalQuestion"], s["totalCorrectAnswers"], s["totalUnAnswered"])
            for i, s in enumerate(result.get("sectionMarks") or [])
        ]  # fmt: skip


async def runs(url: str) -> list[tuple[Any, ...]]:
    async with await open_database(url) as db:
        return await db.fetch_all(
            "SELECT id, complete, inserted, updated, unchanged, deleted, schedules, "
            "finished_at, error FROM sync_runs ORDER BY id"
        )


# -- a first sync, a re-sync, changes ------------------------------------------------------------


async def test_first_sync_equals_the_fakes_ground_truth(
    server: FakeMettlServer, database_url: str
) -> None:
    """Every result, its columns and section marks, as the fake serves them."""
    async with server.client() as client:
        summary = await sync_results(client, database_url)
    total = server.fake.account.total_candidates
    assert summary.complete
    assert (summary.inserted, summary.updated, summary.unchanged, summary.deleted) == (
        total, 0, 0, 0,
    )  # fmt: skip
    assert summary.schedules == 6
    assert "***" in summary.database or database_url.startswith("sqlite")
    assert_mirrors(await stored(database_url), server.fake)
    assert [r[1:7] for r in await runs(database_url)] == [(True, total, 0, 0, 0, 6)]
    async with await open_database(database_url) as db:
        schedules = await db.fetch_all(
            "SELECT access_key, name, assessment_id, deleted_at FROM schedules"
        )
        assert await db.schema_version() == 2
    assert {(k, n, a, d) for k, n, a, d in schedules} == {
        (s.access_key, s.name, s.assessment_id, None) for s in server.fake.account.schedules
    }


async def test_an_unchanged_account_rewrites_no_row(
    server: FakeMettlServer, database_url: str
) -> None:
    """A second sync of the same account counts everything unchanged and writes no result."""
    async with server.client() as client:
        await sync_results(client, database_url)
        first = await stored(database_url)
        again = await sync_results(client, database_url)
    total = server.fake.account.total_candidates
    assert (again.inserted, again.updated, again.unchanged, again.deleted) == (0, 0, total, 0)
    assert await stored(database_url) == first  # updated_at included: nothing rewritten
    assert [r[2:7] for r in await runs(database_url)][-1] == (0, 0, total, 0, 6)


def mutate(fake: FakeMettl) -> dict[str, set[tuple[str, str]]]:
    """5 regraded, 5 graded, 4 deleted and 6 added results, spread over the schedules."""
    keys = [s.access_key for s in fake.account.schedules]
    done: dict[str, set[tuple[str, str]]] = {n: set() for n in ("changed", "graded", "deleted")}
    for n in range(5):
        key = keys[n % len(keys)]
        completed = fake.mutate.emails(key, status="Completed")
        fake.mutate.change_marks(key, completed[0])
        done["changed"].add((key, completed[0]))
        progressing = [
            e for e in fake.mutate.emails(key) if fake.mutate.status(key, e) != "Completed"
        ]
        fake.mutate.grade(key, progressing[0])
        done["graded"].add((key, progressing[0]))
    for n in range(4):
        key = keys[(n + 2) % len(keys)]
        email = fake.mutate.emails(key, status="Completed")[-1]
        fake.mutate.delete(key, email)
        done["deleted"].add((key, email))
    done["added"] = {(keys[n % 3], e) for n in range(3) for e in fake.mutate.add(keys[n % 3], 2)}
    return done


async def test_changes_are_reflected_exactly(server: FakeMettlServer, database_url: str) -> None:
    """Regraded, graded, deleted and added results change exactly their rows, counted so."""
    async with server.client() as client:
        await sync_results(client, database_url)
        before = await stored(database_url)
        changes = mutate(server.fake)
        summary = await sync_results(client, database_url)
    after = await stored(database_url)
    total = server.fake.account.total_candidates
    assert (summary.inserted, summary.updated, summary.deleted) == (6, 10, 4)
    assert summary.unchanged == total - 16
    assert [r[2:6] for r in await runs(database_url)][-1] == (6, 10, total - 16, 4)
    assert_mirrors(after, server.fake)
    touched = changes["changed"] | changes["graded"]
    for key, row in after.items():
        if key in changes["added"]:
            assert key not in before
        elif key in touched:
            assert row["updated"] != before[key]["updated"]
            assert row["first_seen"] == before[key]["first_seen"]
        elif key in changes["deleted"]:
            assert row["deleted"] is not None
            assert {k: v for k, v in row.items() if k != "deleted"} == {
                k: v for k, v in before[key].items() if k != "deleted"
            }
        else:
            assert row == before[key]
    graded = {after[k]["status"] for k in changes["graded"]}
    assert graded == {"Completed"}


async def test_a_deleted_result_that_comes_back_is_live_again(
    server: FakeMettlServer, database_url: str
) -> None:
    """deleted_at is cleared when the listing shows the result again."""
    fake = server.fake
    key = fake.account.schedules[0].access_key
    email = fake.mutate.emails(key, status="Completed")[0]
    schedule = fake.account.schedule(key)
    assert schedule is not None
    async with server.client() as client:
        await sync_results(client, database_url)
        j = fake.account.index_of(schedule, email)
        fake.mutate.delete(key, email)
        assert (await sync_results(client, database_url)).deleted == 1
        assert (await stored(database_url))[key, email]["deleted"] is not None
        assert j is not None
        schedule.deleted.discard(j)  # back, as it was
        summary = await sync_results(client, database_url)
    assert summary.updated == 1
    assert_mirrors(await stored(database_url), fake)


async def test_a_schedule_gone_from_the_account_is_marked(
    server: FakeMettlServer, database_url: str
) -> None:
    """A complete sync marks a schedule the account no longer lists; rows stay."""
    fake = server.fake
    async with server.client() as client:
        await sync_results(client, database_url)
        gone = fake.account.schedules.pop(0)
        summary = await sync_results(client, database_url)
    assert summary.schedules_deleted == 1
    async with await open_database(database_url) as db:
        marked = await db.fetch_all("SELECT access_key FROM schedules WHERE deleted_at IS NOT NULL")
    assert marked == [(gone.access_key,)]


async def test_only_the_schedules_asked_for(server: FakeMettlServer, database_url: str) -> None:
    """access_keys limits the sync; other schedules are neither written nor marked."""
    key = server.fake.account.schedules[2].access_key
    async with server.client() as client:
        summary = await sync_results(client, database_url, access_keys=[key, key])
    assert summary.schedules == 1
    assert {k for k, _ in await stored(database_url)} == {key}


# -- failures, interruptions, the lock -----------------------------------------------------------


async def test_a_failed_schedule_changes_nothing_of_it(
    server: FakeMettlServer, database_url: str
) -> None:
    """A schedule whose walk fails keeps its rows; the run is recorded incomplete, with why."""
    fake = server.fake
    schedule = fake.account.schedules[1]
    async with server.client() as client:
        await sync_results(client, database_url)
        before = await stored(database_url)
        email = fake.mutate.emails(schedule.access_key, status="Completed")[0]
        fake.mutate.change_marks(schedule.access_key, email)
        fake.add_fault("http500", times=1000, path=f"/schedules/{schedule.access_key}/candidates")
        with pytest.raises(ServerError):
            await sync_results(client, database_url, access_keys=[schedule.access_key])
    after = await stored(database_url)
    assert after[schedule.access_key, email] == before[schedule.access_key, email]
    last = (await runs(database_url))[-1]
    assert last[1] in (False, 0)
    assert last[7] is not None  # finished, incomplete
    assert "ServerError" in last[8]


async def test_a_cancelled_sync_rerun_ends_equal(
    server: FakeMettlServer, database_url: str
) -> None:
    """Cancelled after a schedule is committed, then run again: the same database."""
    fake = server.fake
    fake.latency = 0.02
    hold_all_but_the_first(fake)
    async with server.client(max_in_flight=2) as client:
        task = asyncio.create_task(sync_results(client, database_url, concurrency=1))
        await committed_one(database_url, lambda: task.done() and (task.exception() or "done"))
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        fake.faults.clear()
        first = await runs(database_url)
        assert first[0][1] in (False, 0)
        assert first[0][8] == "interrupted"
        summary = await sync_results(client, database_url)
    assert summary.complete
    assert summary.inserted + summary.unchanged == fake.account.total_candidates
    assert_mirrors(await stored(database_url), fake)


@pytest.mark.parametrize(
    ("sig", "code", "reason"),
    [(signal.SIGINT, 130, "interrupted (SIGINT)"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
    ids=["SIGINT", "SIGTERM"],
)
async def test_an_interrupted_sync_says_how_to_continue_and_records_why(
    server: FakeMettlServer, database_url: str, sig: int, code: int, reason: str
) -> None:
    """`mettl-async sync` stopped by a signal: the exact command to run again, and the
    signal as the run's error in sync_runs (not ``CancelledError``)."""
    hold_all_but_the_first(server.fake)
    env = {
        **os.environ,
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
        "METTL_BASE_URL": server.base_url,
    }
    argv = ["sync", "--database", database_url, "--concurrency", "1", "--quiet"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mettl_async", *argv,
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await committed_one(database_url, lambda: process.returncode is not None)
    finally:
        if process.returncode is None:
            process.send_signal(sig)
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    text = err.decode()
    assert process.returncode == code, text
    assert "run the same command again to continue" in text
    shown = shlex.join(redact_url(arg) for arg in argv)  # a PostgreSQL password hidden
    assert f"-m mettl_async {shown}" in text
    assert "@" not in database_url or database_url.split("@")[0] not in text
    assert "Traceback" not in text
    (last,) = (await runs(database_url))[-1:]
    assert last[8] == reason
    if database_url.startswith("sqlite"):  # finished_at as the README says: no microseconds
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", str(last[7])), last


async def sync_once_unlocked(client: MettlClient, url: str, seconds: float = 60) -> SyncSummary:
    """A sync, once the killed one's lock is gone: PostgreSQL frees a session's advisory
    lock when its backend notices the dead socket, which may be a moment after the kill."""
    for _ in range(int(seconds / 0.1)):
        try:
            return await sync_results(client, url)
        except SyncLockedError:
            await asyncio.sleep(0.1)
    return await sync_results(client, url)


def hold_results(fake: FakeMettl, schedules: Sequence[FakeSchedule]) -> None:
    """The results of ``schedules`` answer only after two minutes (or when the client
    hangs up): a sync cannot finish before the test interrupts it, however slowly the
    machine runs the test."""
    for schedule in schedules:
        path = f"/schedules/{schedule.access_key}/candidates"
        fake.add_fault("slow", delay=120, times=10**6, path=path)


def hold_all_but_the_first(fake: FakeMettl) -> None:
    """Every schedule's results but the first's held: an interrupted sync has committed one."""
    hold_results(fake, fake.account.schedules[1:])


async def runs_if_any(url: str) -> list[tuple[Any, ...]]:
    try:
        return await runs(url)
    except SyncError:
        return []


async def committed_one(
    url: str, ended: Callable[[], object] | None = None, seconds: float = 60
) -> None:
    """Wait until a run has committed a schedule; fail at once if the sync ``ended``
    (a callable giving a true value, e.g. the task's exception, once it has)."""
    for _ in range(int(seconds / 0.02)):
        if any(r[6] for r in await runs_if_any(url)):
            return
        if ended is not None and (why := ended()):
            pytest.fail(f"the sync ended before it committed a schedule: {why!r}")
        await asyncio.sleep(0.02)
    pytest.fail("no schedule was committed")


@pytest.mark.slow
async def test_a_killed_sync_rerun_ends_equal(server: FakeMettlServer, database_url: str) -> None:
    """SIGKILL of `mettl-async sync` midway; a rerun leaves what an uninterrupted run would."""
    fake = server.fake
    fake.latency = 0.03
    hold_all_but_the_first(fake)
    env = {
        **os.environ,
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
        "METTL_BASE_URL": server.base_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mettl_async", "sync", "--database", database_url,
        "--concurrency", "1", "--quiet", env=env,
    )  # fmt: skip
    try:
        await committed_one(database_url, lambda: process.returncode is not None)
        assert process.returncode is None, "the sync ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    fake.faults.clear()
    killed = (await runs(database_url))[0]
    assert killed[7] is None  # never finished
    async with server.client() as client:
        summary = await sync_once_unlocked(client, database_url)  # the lock died with the process
    assert summary.complete
    assert_mirrors(await stored(database_url), fake)


async def test_a_second_sync_into_the_same_database_refuses(
    server: FakeMettlServer, database_url: str
) -> None:
    """While one sync holds the database's lock, another raises SyncLockedError."""
    holder = await open_database(database_url)
    try:
        await holder.lock()
        async with server.client() as client:
            with pytest.raises(SyncLockedError, match="another sync"):
                await sync_results(client, database_url)
        await holder.unlock()
        async with server.client() as client:
            assert (await sync_results(client, database_url)).complete
    finally:
        await holder.close()


async def test_rows_spooled_to_disk_commit_the_same(
    server: FakeMettlServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schedule larger than the spool's memory is committed the same, from its temp file."""
    monkeypatch.setattr(sync_base, "SPOOL_MEMORY", 1)
    monkeypatch.setattr(Spool.__init__, "__defaults__", (1,))
    async with server.client() as client:
        await sync_results(client, database_url)
    assert_mirrors(await stored(database_url), server.fake)


def test_the_spool_gives_back_its_rows_from_memory_and_from_disk() -> None:
    for size in (10**6, 1):
        spool = Spool(size)
        pages = [[result_row(f"{p}-{i}@x.io", b'{"a": 1}') for i in range(3)] for p in range(4)]
        for page in pages:
            spool.add(page)
        spool.add([])
        got = [row for chunk in spool.chunks() for row in chunk]
        assert [list(r[:9]) for r in got] == [list(r[:9]) for page in pages for r in page]
        assert spool.rows == 12
        assert spool.spilled == (size == 1)
        spool.close()


# -- webhooks ------------------------------------------------------------------------------------


def graded_payload(key: str, email: str) -> bytes:
    payload = orjson.loads(
        (HERE / "samples" / "article13_webhook_graded_assessment.json").read_bytes()
    )
    payload.update(invitation_key=key, email=email)
    return orjson.dumps(payload)


async def test_a_graded_webhook_updates_its_row_before_the_200(
    server: FakeMettlServer, database_url: str, tmp_path: Path
) -> None:
    """`webhooks listen --database`: gradedAssessment is fetched and stored, then answered;
    a failed fetch answers 503 and stores nothing."""
    import aiohttp

    fake = server.fake
    key = fake.account.schedules[0].access_key
    email = next(e for e in fake.mutate.emails(key) if fake.mutate.status(key, e) != "Completed")
    async with server.client() as client:
        await sync_results(client, database_url)
    fake.mutate.grade(key, email)
    env = {
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
        "METTL_BASE_URL": server.base_url,
    }
    events = tmp_path / "events.jsonl"
    async with listening(events, "--database", database_url, env=env) as (
        process,
        base_url,
        banner,
    ):
        assert "storing results in" in banner
        url = base_url.rstrip("/") + "/graded"
        async with aiohttp.ClientSession() as http:
            fake.add_fault("http500", times=1000, path=f"/schedules/{key}/candidates/")
            async with http.post(url, data=graded_payload(key, email)) as answer:
                assert answer.status == 503
                assert answer.headers["Retry-After"]
            assert (await stored(database_url))[key, email]["status"] != "Completed"
            fake.faults.clear()
            async with http.post(url, data=graded_payload(key, email)) as answer:
                assert answer.status == 200
                # the row is committed before the answer: read right after it
                row = (await stored(database_url))[key, email]
                assert row["status"] == "Completed"
                assert row["raw"]["testStatus"]["result"]["totalMarks"] is not None
        assert len(events.read_bytes().splitlines()) == 1  # the 503 wrote no line
        code, err = await stop(process, signal.SIGTERM)
    assert code == 0, err
    assert "1 result stored" in err


# -- the README's queries, the command line, URLs, rows ------------------------------------------


def readme_sql() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Syncing into a database", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)


async def test_the_readmes_queries_run_on_a_synced_database(
    server: FakeMettlServer, database_url: str
) -> None:
    """Each SQL example of the README runs on both databases and finds rows."""
    queries = readme_sql()
    assert len(queries) >= 3
    async with server.client() as client:
        await sync_results(client, database_url)
    async with await open_database(database_url) as db:
        for query in queries:
            assert await db.fetch_all(query), query


async def test_the_sync_command(
    server: FakeMettlServer,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`mettl-async sync` prints its counts; a locked database exits 1."""
    monkeypatch.setenv("METTL_PUBLIC_KEY", DEMO_PUBLIC_KEY)
    monkeypatch.setenv("METTL_PRIVATE_KEY", DEMO_PRIVATE_KEY)
    monkeypatch.setenv("METTL_BASE_URL", server.base_url)
    argv = ["sync", "--database", database_url]
    code = await asyncio.to_thread(main, argv)
    assert code == 0
    total = server.fake.account.total_candidates
    assert f"{total:,} new, 0 updated, 0 unchanged, 0 deleted" in capsys.readouterr().err
    holder = await open_database(database_url)
    try:
        await holder.lock()
        assert await asyncio.to_thread(main, argv) == 1
        assert "another sync is writing" in capsys.readouterr().err
    finally:
        await holder.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://u:secret@h/db", "sqlite://mettl.db", "sqlite:///", "", "mettl.db"],
)
async def test_unusable_urls_are_refused_by_name(url: str) -> None:
    with pytest.raises(SyncConfigurationError) as caught:
        await open_database(url)
    assert "secret" not in str(caught.value)


async def test_a_sqlite_file_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SyncConfigurationError, match="no directory"):
        await open_database(f"sqlite:///{tmp_path / 'nope' / 'mettl.db'}")


async def test_a_database_newer_than_the_library_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mettl.db'}"
    db = await open_database(url)
    await db.close()
    with sqlite3.connect(tmp_path / "mettl.db") as conn:
        conn.execute("INSERT INTO mettl_schema_migrations VALUES (99, 'future', 'now')")
    with pytest.raises(SyncError, match="schema version 99"):
        await open_database(url)


async def test_many_openers_of_a_new_sqlite_file_all_get_it(tmp_path: Path) -> None:
    """A sync starting while a reader (a dashboard, a webhook listener) opens the same new
    file: every one of them opens it, in WAL mode, none fails with "database is locked"."""
    for round_ in range(25):
        url = f"sqlite:///{tmp_path / f'{round_}.db'}"

        async def read(url: str = url) -> list[tuple[Any, ...]]:
            async with await open_database(url) as db:
                return await db.fetch_all("PRAGMA journal_mode")

        assert await asyncio.gather(*(read() for _ in range(4))) == [[("wal",)]] * 4


def test_the_switch_to_wal_waits_for_a_busy_file() -> None:
    """SQLite fails a change of journal mode at once while another connection sets the file
    up (no busy handler there); the switch is retried until the busy timeout, as a write."""
    from mettl_async.sync import sqlite as sync_sqlite

    class Busy:
        def __init__(
            self,
            failures: int,
            message: str = "database is locked",
            code: int = sqlite3.SQLITE_BUSY,
        ) -> None:
            self.failures, self.message, self.code, self.calls = failures, message, code, 0

        def execute(self, sql: str) -> None:
            self.calls += 1
            if self.calls <= self.failures:
                error = sqlite3.OperationalError(self.message)
                error.sqlite_errorcode = self.code  # as sqlite3 sets it
                raise error

    busy = Busy(3)
    sync_sqlite._enter_wal(busy, timeout=5)  # type: ignore[arg-type]
    assert busy.calls == 4
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        sync_sqlite._enter_wal(Busy(10**6), timeout=0.05)  # type: ignore[arg-type]
    other = Busy(1, "disk I/O error", sqlite3.SQLITE_IOERR)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        sync_sqlite._enter_wal(other, timeout=5)  # type: ignore[arg-type]
    assert other.calls == 1


async def test_opening_an_up_to_date_database_takes_no_write_lock(tmp_path: Path) -> None:
    """A reader opening the database while another connection writes does not wait for it."""
    url = f"sqlite:///{tmp_path / 'mettl.db'}"
    await (await open_database(url)).close()
    writer = sqlite3.connect(tmp_path / "mettl.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        async with await open_database(url) as db:
            assert await db.fetch_all("SELECT count(*) FROM sync_runs") == [(0,)]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_times_become_utc_text() -> None:
    assert utc_text("Fri, 18 Feb 2022 01:09:52 GMT") == "2022-02-18 01:09:52"
    assert utc_text("Fri, 29 Oct 2021 14:55:56 IST") == "2021-10-29 09:25:56"
    assert utc_text("Fri, 29 Oct 2021 09:25:56 UTC") == "2021-10-29 09:25:56"
    assert utc_text("") is None
    assert utc_text(None) is None
    assert utc_text("yesterday") is None


def test_a_record_of_an_odd_shape_is_stored_with_nulls() -> None:
    """Numbers sent as text, a list for an object: NULL columns, the raw kept whole."""
    odd = (
        b'{"email":"a@b.c","testStatus":{"status":"Completed","result":{"totalMarks":"NA",'
        b'"maxMarks":10,"sectionMarks":[{"sectionName":"S","totalMarks":"x"}]}}}'
    )
    row = result_row("a@b.c", odd)
    assert row[:5] == ("a@b.c", "Completed", None, 10.0, None)
    assert row[7] == odd.decode()
    assert row[9] == ((0, "S", None, None, None, None, None, None),)
    assert result_row("a@b.c", b"[1, 2]")[1:7] == (None,) * 6


def test_the_database_interface_is_abstract() -> None:
    with pytest.raises(TypeError):
        Database()  # type: ignore[abstract]
