"""The sync and the listener's database under faults: refused files left untouched, the
lock by the file's real path, timeouts, errors that name their cause, a full disk, a
full spool. The PostgreSQL server's own faults (frozen, restarted, killed
connections) are in test_sync_postgres_faults.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from mettl_async import testing
from mettl_async.cli.entry import exit_code_for, main
from mettl_async.sync import DatabaseTimeouts, SyncError, open_database, sync_results
from mettl_async.sync.base import (
    DatabaseFullError,
    DatabaseLostError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    Spool,
    SpoolFullError,
    SyncConfigurationError,
    SyncLockedError,
)
from mettl_async.sync.live import DatabaseHealth
from mettl_async.sync.rows import result_row

from .test_sync import database_url, runs, server  # noqa: F401 (fixtures)

QUICK = DatabaseTimeouts(connect=5, statement=0.5, commit=5)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# -- refuse before touching ------------------------------------------------------------------


async def test_another_applications_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    """Its own `schedules` table, no migrations table: refused by name, the file byte for
    byte as it was, still in its rollback journal (no WAL switch, no table created)."""
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schedules (id INTEGER PRIMARY KEY, what TEXT)")
        conn.execute("INSERT INTO schedules (what) VALUES ('dentist')")
    conn.close()
    before = digest(path)
    with pytest.raises(SyncConfigurationError, match="another application") as caught:
        await open_database(f"sqlite:///{path}")
    assert "schedules" in str(caught.value)
    assert digest(path) == before
    assert journal_mode(path) == "delete"
    assert tables(path) == {"schedules"}
    assert not (tmp_path / "theirs.db-wal").exists()


async def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    """A database of a newer mettl-async in rollback-journal mode: refused, not switched."""
    path = tmp_path / "newer.db"
    await (await open_database(f"sqlite:///{path}")).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("INSERT INTO mettl_schema_migrations VALUES (99, 'future', 'now')")
    conn.close()
    before = digest(path)
    with pytest.raises(SyncConfigurationError, match="schema version 99"):
        await open_database(f"sqlite:///{path}")
    assert digest(path) == before
    assert journal_mode(path) == "delete"


async def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database, just text " * 200)
    with pytest.raises(SyncConfigurationError, match="not a SQLite database"):
        await open_database(f"sqlite:///{path}")
    assert path.read_bytes() == b"not a database, just text " * 200


async def test_another_applications_postgres_schema_is_refused_untouched(
    database_url: str,  # noqa: F811
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("the PostgreSQL half of the test above")
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(database_url.split("?")[0])
    schema = database_url.rpartition("search_path=")[2]
    try:
        await conn.execute(f"CREATE TABLE {schema}.schedules (id int PRIMARY KEY)")
        with pytest.raises(SyncConfigurationError, match="another application"):
            await open_database(database_url)
        found = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        assert [r[0] for r in found] == ["schedules"]
    finally:
        await conn.close()


# -- the lock, the URL -------------------------------------------------------------------------


async def test_a_symlink_to_the_file_meets_the_same_lock(tmp_path: Path) -> None:
    """Two names of one file (a symlink) are one database: the second sync is refused."""
    real = tmp_path / "data" / "mettl.db"
    real.parent.mkdir()
    alias = tmp_path / "alias.db"
    alias.symlink_to(real)
    holder = await open_database(f"sqlite:///{real}")
    try:
        await holder.lock()
        async with await open_database(f"sqlite:///{alias}") as other:
            with pytest.raises(SyncLockedError, match="another sync"):
                await other.lock()
        await holder.unlock()
        async with await open_database(f"sqlite:///{alias}") as other:
            await other.lock()  # free again
            await other.unlock()
    finally:
        await holder.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://mettl:secret@db.example.com:54x2/mettl",
        "postgresql://mettl:secret@db.example.com:/mettl",
        "postgres://mettl:secret@[::1]:port/mettl",
        "postgresql://mettl:secret@a:5432,b:99999/mettl",
    ],
)
async def test_a_port_that_is_not_a_number_is_refused_by_name(url: str) -> None:
    with pytest.raises(SyncConfigurationError, match="the port of the database URL") as caught:
        await open_database(url)
    assert "secret" not in str(caught.value)
    assert "invalid literal" not in str(caught.value)


async def test_an_unreachable_postgres_names_it_and_exits_5(refused_url: str) -> None:
    """Connection refused: DatabaseUnavailableError naming the URL (password hidden)."""
    pytest.importorskip("asyncpg")
    port = refused_url.rpartition(":")[2]
    url = f"postgresql://mettl:secret@127.0.0.1:{port}/mettl"
    with pytest.raises(DatabaseUnavailableError, match="cannot connect to") as caught:
        await open_database(url)
    assert "secret" not in str(caught.value)
    assert "mettl:***@127.0.0.1" in str(caught.value)
    assert exit_code_for(caught.value) == 5


# -- timeouts and interruptions (SQLite) ---------------------------------------------------------


async def test_a_statement_past_its_timeout_is_interrupted(tmp_path: Path) -> None:
    """A call running past the statement timeout is stopped, named, and the connection is
    still usable afterwards."""
    url = f"sqlite:///{tmp_path / 'mettl.db'}"
    async with await open_database(url, timeouts=QUICK) as db:
        endless = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
        )
        with pytest.raises(DatabaseTimeoutError, match=r"did not finish within 0\.5 s") as caught:
            await db.fetch_all(endless)
        assert str(tmp_path / "mettl.db") in str(caught.value)
        assert await db.fetch_all("SELECT count(*) FROM sync_runs") == [(0,)]


async def test_a_write_waits_for_another_writer_until_its_timeout(tmp_path: Path) -> None:
    """Another connection holding the write lock: a store fails after the statement
    timeout, naming the file and the wait, instead of hanging; once free it works."""
    path = tmp_path / "mettl.db"
    async with await open_database(f"sqlite:///{path}", timeouts=QUICK) as db:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            row = result_row("a@b.c", b'{"email": "a@b.c"}')
            with pytest.raises(DatabaseTimeoutError, match=r"locked by another connection"):
                await db.store_result("k", row, _now())
            other.execute("ROLLBACK")
            assert await db.store_result("k", row, _now()) == "inserted"
        finally:
            other.close()


async def test_a_cancelled_call_stops_waiting_for_the_lock(tmp_path: Path) -> None:
    """Ctrl+C while a write waits for another writer's lock: the call ends at once (the
    lock still held), and the next call runs."""
    path = tmp_path / "mettl.db"
    patient = DatabaseTimeouts(connect=5, statement=120, commit=5)
    async with await open_database(f"sqlite:///{path}", timeouts=patient) as db:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            row = result_row("a@b.c", b'{"email": "a@b.c"}')
            task = asyncio.create_task(db.store_result("k", row, _now()))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)  # not the 120 s of the timeout
            # the worker is free again while the lock is still held elsewhere
            assert await asyncio.wait_for(db.fetch_all("SELECT 1"), 30) == [(1,)]
            other.execute("ROLLBACK")
        finally:
            other.close()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# -- a full disk, a full spool -------------------------------------------------------------------


async def test_a_full_sqlite_database_is_named_and_the_run_closed(tmp_path: Path) -> None:
    """SQLITE_FULL (the file at its page limit, as on a full disk): the error is SQLite's
    "database or disk is full" with the path, never "cannot rollback"; the run's row is
    closed with it; the command's exit code is 7."""
    path = tmp_path / "mettl.db"
    async with testing.FakeMettlServer() as fake_server:
        db = await open_database(f"sqlite:///{path}")
        try:
            pages = (await db.fetch_all("PRAGMA page_count"))[0][0]
            await db.fetch_all(f"PRAGMA max_page_count = {pages + 2}")
            async with fake_server.client() as client:
                with pytest.raises(DatabaseFullError) as caught:
                    await sync_results(client, db)
        finally:
            await db.close()
    text = str(caught.value)
    assert "database or disk is full" in text
    assert str(path) in text
    assert "rollback" not in text
    assert exit_code_for(caught.value) == 7
    last = (await runs(f"sqlite:///{path}"))[-1]
    assert last[7] is not None  # finished
    assert "database or disk is full" in last[8]


def test_a_full_spool_names_its_directory_and_tmpdir(tmp_path: Path) -> None:
    """The spool's temporary file cannot grow (a file size limit, as a full TMPDIR): the
    error names the directory and TMPDIR; the sync exits 8 with it on one line."""
    import subprocess

    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    script = f"""
import resource, signal, sys
from mettl_async.sync import base
base.SPOOL_MEMORY = 1
base.Spool.__init__.__defaults__ = (1,)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (160 * 1024, 160 * 1024))
from mettl_async.cli.entry import main
sys.exit(main(["sync", "--database", "sqlite:///{tmp_path / "mettl.db"}", "--quiet"]))
"""

    async def serve() -> subprocess.CompletedProcess[str]:
        # one schedule whose changed rows outgrow the limit; the new database stays below it
        async with testing.FakeMettlServer(
            testing.FakeMettl(account=testing.FakeAccount(1, 400, seed=3))
        ) as fake_server:
            env = {
                **os.environ,
                "METTL_PUBLIC_KEY": testing.DEMO_PUBLIC_KEY,
                "METTL_PRIVATE_KEY": testing.DEMO_PRIVATE_KEY,
                "METTL_BASE_URL": fake_server.base_url,
                "TMPDIR": str(spool_dir),
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, env=env, stderr=asyncio.subprocess.PIPE
            )
            _, err = await asyncio.wait_for(process.communicate(), 120)
            return subprocess.CompletedProcess([], process.returncode or 0, "", err.decode())

    done = asyncio.run(serve())
    assert done.returncode == 8, done.stderr
    line = done.stderr.strip()
    assert line.count("\n") == 0, line
    assert f"the spool directory {spool_dir} is full" in line
    assert f"TMPDIR={spool_dir}" in line


def test_a_spool_write_error_that_is_not_a_full_disk_is_not_called_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno
    import tempfile

    class Broken:
        def write(self, data: bytes) -> int:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(tempfile, "TemporaryFile", Broken)
    spool = Spool(1)
    with pytest.raises(SyncError, match="Input/output error") as caught:
        spool.add([result_row("a@b.c", b"{}")])
    assert not isinstance(caught.value, SpoolFullError)


# -- the listener's database health --------------------------------------------------------------


async def test_the_health_logs_an_outage_once_and_its_end_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Many failures make one ERROR line; the first success after them one WARNING line."""
    async with await open_database(f"sqlite:///{tmp_path / 'mettl.db'}") as db:
        health = DatabaseHealth(db)
        with caplog.at_level("WARNING", logger="mettl_async"):
            for _ in range(5):
                health.failed(DatabaseLostError("gone"))
            assert not health.up
            health.succeeded()
            health.succeeded()
        assert health.up
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2, lines
        assert "is unavailable: gone" in lines[0]
        assert "is back after" in lines[1]
        assert health.outages == 1
        assert await health.check() is None


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DatabaseUnavailableError("x"), 5),
        (DatabaseLostError("x"), 6),
        (DatabaseTimeoutError("x"), 6),
        (DatabaseFullError("x"), 7),
        (SpoolFullError("x"), 8),
        (SyncConfigurationError("x"), 2),
    ],
)
def test_each_database_failure_has_its_exit_code(error: Exception, code: int) -> None:
    assert exit_code_for(error) == code


def test_the_sync_help_documents_the_database_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["sync", "--help"])
    text = capsys.readouterr().out
    for code, words in (
        (5, "unreachable"),
        (6, "lost mid-run"),
        (7, "disk is full"),
        (8, "spool directory (TMPDIR) is full"),
    ):
        assert f"\n  {code}    the " in text
        assert words in text
    assert text.index("\n  8 ") < text.index("\n  130 ")
    assert "--database-timeout SECONDS" in text


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "5", True])
def test_timeouts_are_checked(value: Any) -> None:
    with pytest.raises(SyncConfigurationError, match="statement timeout"):
        DatabaseTimeouts(statement=value)
