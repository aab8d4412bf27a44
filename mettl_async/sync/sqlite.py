"""The SQLite backend: the standard library's ``sqlite3``, in a thread of its own.

Every call to the database runs in one dedicated thread (a SQLite connection
belongs to the thread that made it), so the event loop keeps fetching pages
while a schedule is written; SQLite's own work runs without the GIL. The
database is in WAL mode (readers never wait for the sync) with
``synchronous=NORMAL`` (a power cut may lose the last commits, never corrupt
the file: a rerun puts them back). Two syncs into one file are kept apart by
an exclusive ``flock`` on ``PATH-synclock`` beside it, which the kernel
releases even when the process is killed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence, Set
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import orjson

from mettl_async.sync.base import (
    Counts,
    Database,
    ScheduleCommit,
    Snapshot,
    StoreOutcome,
    SyncConfigurationError,
    SyncError,
    SyncLockedError,
    deletions,
    plan_rows,
    rows_by_email,
)
from mettl_async.sync.migrations import migrations, split_statements, unapplied
from mettl_async.sync.rows import Row, sections_of

__all__ = ["SQLiteDatabase"]

T = TypeVar("T")

#: Seconds a write waits for another writer (a webhook listener) before failing.
BUSY_TIMEOUT: Final = 30.0

_INSERT: Final = (
    "INSERT INTO candidate_results (access_key, email, status, total_marks, max_marks, "
    "percentile, start_time, end_time, raw, content_hash, first_seen_at, updated_at, "
    "deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
)
_UPDATE: Final = (
    "UPDATE candidate_results SET status = ?, total_marks = ?, max_marks = ?, percentile = ?, "
    "start_time = ?, end_time = ?, raw = ?, content_hash = ?, updated_at = ?, deleted_at = NULL "
    "WHERE access_key = ? AND email = ?"
)
_INSERT_SECTION: Final = (
    "INSERT OR REPLACE INTO section_marks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE_SECTIONS: Final = "DELETE FROM section_marks WHERE access_key = ? AND email = ?"
_MARK_DELETED: Final = (
    "UPDATE candidate_results SET deleted_at = ? "
    "WHERE access_key = ? AND email = ? AND content_hash = ? AND deleted_at IS NULL"
)
_SNAPSHOT: Final = (
    "SELECT email, content_hash, deleted_at FROM candidate_results WHERE access_key = ?"
)
_UPSERT_SCHEDULE: Final = (
    "INSERT INTO schedules (access_key, name, assessment_id, raw, synced_at, deleted_at) "
    "VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (access_key) DO UPDATE SET name = excluded.name, "
    "assessment_id = excluded.assessment_id, raw = excluded.raw, "
    "synced_at = excluded.synced_at, deleted_at = NULL"
)
_ADD_COUNTS: Final = (
    "UPDATE sync_runs SET inserted = inserted + ?, updated = updated + ?, "
    "unchanged = unchanged + ?, deleted = deleted + ?, schedules = schedules + 1 WHERE id = ?"
)


def _enter_wal(conn: sqlite3.Connection, timeout: float = BUSY_TIMEOUT) -> None:
    """Put the database in WAL mode, waiting up to ``timeout`` for other connections.

    SQLite does not call its busy handler for a change of journal mode: while
    another connection opens or reads a new file, ``PRAGMA journal_mode = WAL``
    fails at once with ``SQLITE_BUSY`` ("database is locked"). Retried here, as a
    write would be; any other error is raised at once.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _time(when: datetime) -> str:
    """The sync's own times: UTC text with microseconds."""
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteDatabase(Database):
    """A SQLite file (or ``:memory:``) as a sync target."""

    def __init__(self, path: str, url: str) -> None:
        self.path = path
        self.url = url
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mettl-sqlite"
        )
        self._conn: sqlite3.Connection | None = None
        self._lock_file: IO[bytes] | None = None

    @classmethod
    async def open(cls, path: str, url: str) -> SQLiteDatabase:
        database = cls(path, url)
        try:
            await database._run(database._connect)
            await database._run(database._migrate)
        except BaseException:
            await database.close()
            raise
        return database

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(function, *args))
        except sqlite3.Error as exc:
            raise SyncError(f"SQLite database {self.path}: {exc}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SyncError(f"SQLite database {self.path} is closed")
        return self._conn

    # -- connection and schema (in the database thread) ---------------------------------

    def _connect(self) -> None:
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise SyncConfigurationError(
                    f"cannot create the SQLite database {self.path}: no directory {parent}"
                )
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except sqlite3.Error as exc:
            raise SyncConfigurationError(
                f"cannot open the SQLite database {self.path}: {exc}"
            ) from exc
        try:
            _enter_wal(conn)
        except BaseException:
            conn.close()
            raise
        conn.execute("PRAGMA synchronous = NORMAL")
        # 16 MiB of page cache (2 MiB by default): the primary key's pages stay in memory.
        conn.execute("PRAGMA cache_size = -16384")
        self._conn = conn

    def _migrate(self) -> None:
        conn = self.conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS mettl_schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        known = migrations("sqlite")
        select = "SELECT version FROM mettl_schema_migrations"
        if not unapplied(known, {v for (v,) in conn.execute(select)}, self.path):
            return  # up to date: opening takes no write lock (a reader never holds up the sync)
        conn.execute("BEGIN IMMEDIATE")
        try:
            applied = {v for (v,) in conn.execute(select)}
            for migration in unapplied(known, applied, self.path):
                for statement in split_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO mettl_schema_migrations VALUES (?, ?, datetime('now'))",
                    (migration.version, migration.name),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _schema_version(self) -> int:
        row = self.conn.execute("SELECT max(version) FROM mettl_schema_migrations").fetchone()
        return int(row[0] or 0)

    async def schema_version(self) -> int:
        return await self._run(self._schema_version)

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        with contextlib.suppress(SyncError):
            await self._run(close)
        await self.unlock()
        self._executor.shutdown(wait=False)

    # -- the sync lock ------------------------------------------------------------------------

    async def lock(self) -> None:
        if self.path == ":memory:" or self._lock_file is not None:
            return
        await self._run(self._take_lock)

    def _take_lock(self) -> None:
        lock_path = self.path + "-synclock"
        try:
            handle = Path(lock_path).open("ab")  # noqa: SIM115 (held until unlock)
        except OSError as exc:
            raise SyncConfigurationError(
                f"cannot create the sync lock file {lock_path}: {exc.strerror or exc}"
            ) from exc
        if not _try_lock(handle):
            handle.close()
            raise SyncLockedError(
                f"another sync is writing into {self.path} (it holds {lock_path}); "
                "wait for it to finish"
            )
        self._lock_file = handle

    async def unlock(self) -> None:
        handle, self._lock_file = self._lock_file, None
        if handle is not None:
            _unlock(handle)
            handle.close()

    # -- runs ---------------------------------------------------------------------------------

    async def begin_run(self, now: datetime, scope: Sequence[str] | None) -> int:
        scope_text = None if scope is None else orjson.dumps(list(scope)).decode()

        def begin() -> int:
            cursor = self.conn.execute(
                "INSERT INTO sync_runs (started_at, scope) VALUES (?, ?)", (_time(now), scope_text)
            )
            return int(cursor.lastrowid or 0)

        return await self._run(begin)

    async def end_run(
        self, run_id: int, now: datetime, *, complete: bool, schedules: int, error: str | None
    ) -> None:
        def end() -> None:
            self.conn.execute(
                "UPDATE sync_runs SET finished_at = ?, complete = ?, error = ? WHERE id = ?",
                (_time(now), int(complete), error, run_id),
            )

        await self._run(end)

    # -- schedules ------------------------------------------------------------------------------

    def _snapshot(self, access_key: str) -> Snapshot:
        return rows_by_email(self.conn.execute(_SNAPSHOT, (access_key,)))

    async def snapshot(self, access_key: str) -> Snapshot:
        return await self._run(self._snapshot, access_key)

    def _write(
        self, access_key: str, inserts: Sequence[Row], updates: Sequence[Row], now: str
    ) -> None:
        conn = self.conn
        if inserts:
            conn.executemany(_INSERT, [(access_key, *row[:9], now, now) for row in inserts])
        if updates:
            conn.executemany(_UPDATE, [(*row[1:9], now, access_key, row[0]) for row in updates])
            conn.executemany(_DELETE_SECTIONS, [(access_key, row[0]) for row in updates])
        sections = sections_of((*inserts, *updates), access_key)
        if sections:
            conn.executemany(_INSERT_SECTION, sections)

    def _commit_schedule(self, commit: ScheduleCommit) -> Counts:
        conn = self.conn
        now = _time(commit.now)
        counts = Counts()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if commit.needs_current():
                current = self._snapshot(commit.access_key)
                for chunk in commit.spool.chunks():
                    plan = plan_rows(chunk, commit.before, current)
                    self._write(commit.access_key, plan.inserts, plan.updates, now)
                    counts.inserted += len(plan.inserts)
                    counts.updated += len(plan.updates)
                gone = deletions(commit.before, current, commit.seen)
                if gone:
                    cursor = conn.executemany(
                        _MARK_DELETED, [(now, commit.access_key, e, h) for e, h in gone]
                    )
                    counts.deleted = cursor.rowcount
            counts.unchanged = commit.listed - counts.inserted - counts.updated
            conn.execute(
                _UPSERT_SCHEDULE,
                (commit.access_key, commit.name, commit.assessment_id, commit.raw, now),
            )
            conn.execute(
                _ADD_COUNTS,
                (counts.inserted, counts.updated, counts.unchanged, counts.deleted, commit.run_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return counts

    async def commit_schedule(self, commit: ScheduleCommit) -> Counts:
        return await self._run(self._commit_schedule, commit)

    async def mark_schedules_deleted(self, listed: Set[str], now: datetime) -> int:
        def mark() -> int:
            conn = self.conn
            stored = [
                k
                for (k,) in conn.execute(
                    "SELECT access_key FROM schedules WHERE deleted_at IS NULL"
                )
            ]
            gone = [(_time(now), key) for key in stored if key not in listed]
            if not gone:
                return 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "UPDATE schedules SET deleted_at = ? "
                    "WHERE access_key = ? AND deleted_at IS NULL",
                    gone,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return len(gone)

        return await self._run(mark)

    async def store_result(self, access_key: str, row: Row, now: datetime) -> StoreOutcome:
        def store() -> StoreOutcome:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = conn.execute(
                    "SELECT content_hash, deleted_at FROM candidate_results "
                    "WHERE access_key = ? AND email = ?",
                    (access_key, row[0]),
                ).fetchone()
                outcome: StoreOutcome
                if found is None:
                    self._write(access_key, [row], [], _time(now))
                    outcome = "inserted"
                elif found[0] == row[8] and found[1] is None:
                    outcome = "unchanged"
                else:
                    self._write(access_key, [], [row], _time(now))
                    outcome = "updated"
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return outcome

        return await self._run(store)

    async def fetch_all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._run(lambda: [tuple(r) for r in self.conn.execute(sql, args)])


if sys.platform == "win32":  # pragma: no cover
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
