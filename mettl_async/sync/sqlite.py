"""The SQLite backend: the standard library's ``sqlite3``, in a thread of its own.

Every call to the database runs in one dedicated thread (a SQLite connection
belongs to the thread that made it; see :mod:`~mettl_async.sync.worker`), so
the event loop keeps fetching pages while a schedule is written; SQLite's own
work runs without the GIL. Each call has a deadline (:class:`DatabaseTimeouts`):
past it the statement is interrupted and the call fails with
:class:`DatabaseTimeoutError`; a write waiting for another writer's lock (a
webhook listener, another application) waits that long and no longer. The
database is in WAL mode (readers never wait for the sync) with
``synchronous=NORMAL`` (a power cut may lose the last commits, never corrupt
the file: a rerun puts them back). Two syncs into one file are kept apart by
an exclusive ``flock`` on ``REALPATH-synclock`` beside it (the file's real path:
a symlink to it leads to the same lock), which the kernel releases even when
the process is killed.

Opening reads before it writes: a file of another application (its own
``schedules`` table, no ``mettl_schema_migrations``) or of a newer mettl-async
is refused untouched, its journal mode unchanged. With ``reconnect`` (the
webhook listener) a connection that failed, or whose file was moved, replaced
or deleted, is reopened at the next call (never creating a new file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence, Set
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, TypeVar
from urllib.parse import quote

import orjson

from mettl_async.sync.base import (
    CLEANUP_SECONDS,
    DEFAULT_TIMEOUTS,
    Counts,
    Database,
    DatabaseFullError,
    DatabaseLostError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
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
from mettl_async.sync.migrations import (
    MIGRATIONS_TABLE,
    check_tables,
    migrations,
    split_statements,
    unapplied,
)
from mettl_async.sync.rows import Row, sections_of
from mettl_async.sync.worker import Job, JobExpired, Worker

__all__ = ["SQLiteDatabase"]

T = TypeVar("T")

#: Seconds a write waits for another writer by default (the statement timeout's default).
BUSY_TIMEOUT: Final = DEFAULT_TIMEOUTS.statement
#: Seconds SQLite's own busy handler waits before the wait is retried (and the
#: job's deadline and cancellation are looked at).
_BUSY_STEP: Final = 0.1

#: Pages of the write-ahead log a sync's connection lets grow before they are copied into the
#: database file (SQLite's default: 1,000; pages of 4 KiB).
CHECKPOINT_PAGES: Final = 16384

#: SQLite's primary result codes after which the connection is not trusted again.
_BROKEN: Final = frozenset(
    {
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
    }
)

_INSERT: Final = (
    "INSERT INTO candidate_results (access_key, email, status, total_marks, max_marks, "
    "percentile, start_time, end_time, raw, content_hash, first_seen_at, updated_at, "
    "deleted_at, row_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"
)
_UPDATE: Final = (
    "UPDATE candidate_results SET status = ?, total_marks = ?, max_marks = ?, percentile = ?, "
    "start_time = ?, end_time = ?, raw = ?, content_hash = ?, updated_at = ?, deleted_at = NULL, "
    "row_version = ? WHERE access_key = ? AND email = ?"
)
_INSERT_SECTION: Final = (
    "INSERT OR REPLACE INTO section_marks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE_SECTIONS: Final = "DELETE FROM section_marks WHERE access_key = ? AND email = ?"
_MARK_DELETED: Final = (
    "UPDATE candidate_results SET deleted_at = ?, row_version = ? "
    "WHERE access_key = ? AND email = ? AND content_hash = ? AND deleted_at IS NULL"
)
_SNAPSHOT: Final = (
    "SELECT email, content_hash, deleted_at, row_version FROM candidate_results "
    "WHERE access_key = ?"
)
#: The next row version, for the rows of one transaction (writers take turns: one at a time).
_NEXT_VERSION: Final = "UPDATE last_row_version SET value = value + 1 RETURNING value"
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


def _primary(error: sqlite3.Error) -> int | None:
    """SQLite's primary result code of ``error`` (``None`` when it carries none)."""
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _retry_busy(
    run: Callable[[], object], deadline: float, stopping: Callable[[], bool] = lambda: False
) -> None:
    """``run()``, again while SQLite answers ``SQLITE_BUSY``, until ``deadline`` (monotonic)
    or ``stopping()``; any other error is raised at once."""
    pause = 0.001
    while True:
        try:
            run()
            return
        except sqlite3.OperationalError as exc:
            if _primary(exc) != sqlite3.SQLITE_BUSY or stopping():
                raise
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _enter_wal(conn: sqlite3.Connection, timeout: float = BUSY_TIMEOUT) -> None:
    """Put the database in WAL mode, waiting up to ``timeout`` for other connections.

    SQLite does not call its busy handler for a change of journal mode: while
    another connection opens or reads a new file, ``PRAGMA journal_mode = WAL``
    fails at once with ``SQLITE_BUSY`` ("database is locked"). Retried here, as a
    write would be; any other error is raised at once.
    """
    _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"), time.monotonic() + timeout)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back the transaction, if SQLite has not already (it does on some errors, a
    full disk among them): the error that ended the transaction is the one to tell."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _time(when: datetime) -> str:
    """The sync's stamps on rows: UTC text with microseconds (two syncs within a second
    still tell their changes apart)."""
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def _run_time(when: datetime) -> str:
    """A run's start and end in ``sync_runs``: UTC text, ``YYYY-MM-DD HH:MM:SS``."""
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _free_space(path: str) -> str:
    """``"12.3 MB free in DIR"``, or ``""`` when it cannot be told."""
    directory = os.path.dirname(path) or "."
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return ""
    return f"; {free / 1e6:.1f} MB free in {directory}"


class SQLiteDatabase(Database):
    """A SQLite file (or ``:memory:``) as a sync target."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = self.location
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None  # (device, inode) of the file opened
        self._closed = False
        self._lock_file: IO[bytes] | None = None
        self._worker = Worker("mettl-sqlite", self._interrupt)

    async def _start(self) -> None:
        await self._run(self._open, "opening", limit=self.timeouts.connect, check=False)

    def _interrupt(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.interrupt()

    async def _run(
        self,
        function: Callable[..., T],
        what: str,
        *args: Any,
        limit: float | None = None,
        check: bool = True,
    ) -> T:
        """``function(*args)`` in the database's thread, within ``limit`` seconds (the
        statement timeout unless given); SQLite's errors become typed :class:`SyncError`."""
        seconds = self.timeouts.statement if limit is None else limit
        loop = asyncio.get_running_loop()
        job: Job[T] = Job(lambda: self._call(function, args, check), loop, what, seconds)
        try:
            return await self._worker.run(job)
        except JobExpired:
            raise DatabaseTimeoutError(
                f"SQLite database {self.path}: {job.what} did not finish within {job.limit:g} s"
            ) from None

    def _call(self, function: Callable[..., T], args: tuple[Any, ...], check: bool) -> T:
        """In the database's thread: check the file, call, translate SQLite's errors."""
        job = self._worker.current
        try:
            if check:
                self._check_file()
            return function(*args)
        except sqlite3.Error as exc:
            raise self._translate(exc, job) from exc

    def _translate(self, error: sqlite3.Error, job: Job[Any] | None) -> SyncError:
        code = _primary(error)
        doing = f" ({job.what})" if job is not None else ""
        limit = job.limit if job is not None else self.timeouts.statement
        if code == sqlite3.SQLITE_INTERRUPT and job is not None and job.expired:
            return DatabaseTimeoutError(
                f"SQLite database {self.path}: {job.what} did not finish within {limit:g} s"
            )
        if code == sqlite3.SQLITE_BUSY:
            return DatabaseTimeoutError(
                f"SQLite database {self.path} stayed locked by another connection (a webhook "
                f"listener, another application) for more than {limit:g} s{doing}"
            )
        if code == sqlite3.SQLITE_FULL:
            return DatabaseFullError(
                f"the SQLite database {self.path} is full: {error}{_free_space(self.path)}"
            )
        if code in _BROKEN or isinstance(error, sqlite3.ProgrammingError):
            self._drop()
            return DatabaseLostError(f"SQLite database {self.path}{doing}: {error}")
        return SyncError(f"SQLite database {self.path}{doing}: {error}")

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SyncError(f"SQLite database {self.path} is closed")
        return self._conn

    # -- connection and schema (in the database thread) ---------------------------------

    def _limit(self, seconds: float, what: str | None = None) -> None:
        self._worker.limit(seconds, what)

    def _deadline(self) -> float:
        job = self._worker.current
        return job.deadline if job is not None else time.monotonic() + self.timeouts.statement

    def _stopping(self) -> bool:
        job = self._worker.current
        return job is not None and job.stopping

    def _open(self, *, create: bool = True) -> None:
        """Connect, refuse a foreign or newer database untouched, then WAL and migrations."""
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise SyncConfigurationError(
                    f"cannot create the SQLite database {self.path}: no directory {parent}"
                )
        target, uri = self.path, False
        if not create and self.path != ":memory:":
            target, uri = f"file:{quote(self.path)}?mode=rw", True
        try:
            conn = sqlite3.connect(target, timeout=_BUSY_STEP, isolation_level=None, uri=uri)
        except sqlite3.Error as exc:
            raise SyncConfigurationError(
                f"cannot open the SQLite database {self.path}: {exc}"
            ) from exc
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        if self.path != ":memory:":
            stat = os.stat(self.path)
            self._file_id = (stat.st_dev, stat.st_ino)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            tables = {
                n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            applied: set[int] = set()
            if MIGRATIONS_TABLE in tables:
                applied = {v for (v,) in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
        except sqlite3.DatabaseError as exc:
            if _primary(exc) == sqlite3.SQLITE_NOTADB:
                raise SyncConfigurationError(
                    f"{self.path} is not a SQLite database ({exc}): give another file"
                ) from exc
            raise
        known = migrations("sqlite")
        check_tables(tables, self.path)  # another application's: refused untouched
        pending = unapplied(known, applied, self.path)  # a newer schema: refused untouched
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            _enter_wal(conn, max(self._deadline() - time.monotonic(), 0.0))
        conn.execute("PRAGMA synchronous = NORMAL")
        # 16 MiB of page cache (2 MiB by default): the primary key's pages stay in memory.
        conn.execute("PRAGMA cache_size = -16384")
        if not self.reconnect:
            # A sync's commits: the log is copied into the file (and synced) every 64 MiB
            # rather than every 4 MiB, a sixteenth of the waits for the disk.
            conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        if not pending:
            return  # up to date: opening takes no write lock (a reader never holds up the sync)
        with self._transaction(conn):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS mettl_schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {v for (v,) in conn.execute("SELECT version FROM mettl_schema_migrations")}
            for migration in unapplied(known, done, self.path):
                for statement in split_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO mettl_schema_migrations VALUES (?, ?, datetime('now'))",
                    (migration.version, migration.name),
                )

    def _check_file(self) -> None:
        """Before each call: the file opened is still the one at ``path`` (else the
        connection is dropped); a dropped connection is reopened with ``reconnect``."""
        if self._closed:
            raise SyncError(f"SQLite database {self.path} is closed")
        if self._conn is not None and self._file_id is not None:
            try:
                stat = os.stat(self.path)
                now: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
            except OSError:
                now = None
            if now != self._file_id:
                self._drop()
                if not self.reconnect:
                    raise DatabaseLostError(
                        f"the SQLite database {self.path} was moved, replaced or deleted "
                        "while in use"
                    )
        if self._conn is None:
            if not self.reconnect:
                raise DatabaseLostError(f"the connection to the SQLite database {self.path} failed")
            try:
                self._open(create=False)
            except (SyncError, sqlite3.Error, OSError) as exc:
                raise DatabaseUnavailableError(
                    f"cannot reopen the SQLite database {self.path}: {exc}"
                ) from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (waiting for another writer until the job's deadline), then
        ``COMMIT`` within the commit timeout; on any error a rollback that never hides it."""
        conn = conn if conn is not None else self.conn
        _retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), self._deadline(), self._stopping)
        try:
            yield conn
            self._limit(self.timeouts.commit)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _schema_version(self) -> int:
        row = self.conn.execute("SELECT max(version) FROM mettl_schema_migrations").fetchone()
        return int(row[0] or 0)

    async def schema_version(self) -> int:
        return await self._run(self._schema_version, "reading the schema version")

    async def ping(self) -> None:
        await self._run(self._schema_version, "checking the database")

    async def close(self) -> None:
        if self._closed:
            return

        def close() -> None:
            self._closed = True
            self._drop()

        with contextlib.suppress(SyncError):
            await self._run(close, "closing", limit=CLEANUP_SECONDS, check=False)
        self._closed = True
        await self.unlock()
        self._worker.stop()

    # -- the sync lock ------------------------------------------------------------------------

    async def lock(self) -> None:
        if self.path == ":memory:" or self._lock_file is not None:
            return
        await self._run(self._take_lock, "taking the sync lock")

    def _take_lock(self) -> None:
        # the real path: another name of the file (a symlink) leads to the same lock
        lock_path = os.path.realpath(self.path) + "-synclock"
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
            with self._transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO sync_runs (started_at, scope) VALUES (?, ?)",
                    (_run_time(now), scope_text),
                )
            return int(cursor.lastrowid or 0)

        return await self._run(begin, "recording the run's start")

    async def end_run(
        self, run_id: int, now: datetime, *, complete: bool, schedules: int, error: str | None
    ) -> None:
        def end() -> None:
            with self._transaction() as conn:
                conn.execute(
                    "UPDATE sync_runs SET finished_at = ?, complete = ?, error = ? WHERE id = ?",
                    (_run_time(now), int(complete), error, run_id),
                )

        # a failed run's end is quick or not at all: Ctrl+C ends the run promptly
        limit = None if error is None else CLEANUP_SECONDS
        await self._run(end, "recording the run's end", limit=limit)

    # -- schedules ------------------------------------------------------------------------------

    def _snapshot(self, access_key: str) -> Snapshot:
        return rows_by_email(self.conn.execute(_SNAPSHOT, (access_key,)))

    async def snapshot(self, access_key: str) -> Snapshot:
        return await self._run(self._snapshot, f"reading schedule {access_key}", access_key)

    async def version_mark(self) -> int:
        def read() -> int:
            return int(self.conn.execute("SELECT value FROM last_row_version").fetchone()[0])

        return await self._run(read, "reading the row version")

    def _next_version(self) -> int:
        """In a write transaction: the version of the rows it writes."""
        return int(self.conn.execute(_NEXT_VERSION).fetchone()[0])

    def _write(
        self,
        access_key: str,
        inserts: Sequence[Row],
        updates: Sequence[Row],
        now: str,
        version: int,
    ) -> None:
        conn = self.conn
        if inserts:
            conn.executemany(
                _INSERT, [(access_key, *row[:9], now, now, version) for row in inserts]
            )
        if updates:
            conn.executemany(
                _UPDATE, [(*row[1:9], now, version, access_key, row[0]) for row in updates]
            )
            conn.executemany(_DELETE_SECTIONS, [(access_key, row[0]) for row in updates])
        sections = sections_of((*inserts, *updates), access_key)
        if sections:
            conn.executemany(_INSERT_SECTION, sections)

    def _commit_schedule(self, commit: ScheduleCommit) -> Counts:
        now = _time(commit.now)
        counts = Counts()
        statement = self.timeouts.statement
        with self._transaction() as conn:
            self._limit(statement)  # the wait for the lock had its own time
            if commit.needs_current():
                version = self._next_version()
                current = self._snapshot(commit.access_key)
                for chunk in commit.spool.chunks():
                    self._limit(statement)  # each page of rows has its own time
                    plan = plan_rows(chunk, current, commit.mark)
                    self._write(commit.access_key, plan.inserts, plan.updates, now, version)
                    counts.inserted += len(plan.inserts)
                    counts.updated += len(plan.updates)
                gone = deletions(current, commit.seen, commit.mark)
                self._limit(statement)
                if gone:
                    cursor = conn.executemany(
                        _MARK_DELETED, [(now, version, commit.access_key, e, h) for e, h in gone]
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
        return counts

    async def commit_schedule(self, commit: ScheduleCommit) -> Counts:
        return await self._run(
            self._commit_schedule, f"committing schedule {commit.access_key}", commit
        )

    async def mark_schedules_deleted(self, listed: Set[str], now: datetime) -> int:
        def mark() -> int:
            stored = [
                k
                for (k,) in self.conn.execute(
                    "SELECT access_key FROM schedules WHERE deleted_at IS NULL"
                )
            ]
            gone = [(_time(now), key) for key in stored if key not in listed]
            if not gone:
                return 0
            with self._transaction() as conn:
                conn.executemany(
                    "UPDATE schedules SET deleted_at = ? "
                    "WHERE access_key = ? AND deleted_at IS NULL",
                    gone,
                )
            return len(gone)

        return await self._run(mark, "marking schedules deleted")

    async def store_result(self, access_key: str, row: Row, now: datetime) -> StoreOutcome:
        def store() -> StoreOutcome:
            with self._transaction() as conn:
                found = conn.execute(
                    "SELECT content_hash, deleted_at FROM candidate_results "
                    "WHERE access_key = ? AND email = ?",
                    (access_key, row[0]),
                ).fetchone()
                outcome: StoreOutcome
                if found is None:
                    self._write(access_key, [row], [], _time(now), self._next_version())
                    outcome = "inserted"
                elif found[0] == row[8] and found[1] is None:
                    outcome = "unchanged"
                else:
                    self._write(access_key, [], [row], _time(now), self._next_version())
                    outcome = "updated"
            return outcome

        return await self._run(store, f"storing a result of schedule {access_key}")

    async def fetch_all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._run(
            lambda: [tuple(r) for r in self.conn.execute(sql, args)], "running a query"
        )


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
