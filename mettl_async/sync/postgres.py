"""The PostgreSQL backend: asyncpg (``pip install 'mettl-async[postgres]'``).

New rows reach the tables by ``COPY`` (asyncpg's binary copy), changed ones by
pipelined ``UPDATE``\\ s, inside one transaction per schedule. A session-level
advisory lock (:data:`SYNC_LOCK`) keeps a second sync out; it is released when
the connection ends, a killed process included. Each schedule's commit, and
each webhook's upsert, also takes a transaction-level advisory lock on the
schedule's access key, so the two never interleave within one schedule.

Every call has a deadline (:class:`DatabaseTimeouts`), the wait for the
connection's turn included. A call that passes it, is cancelled (Ctrl+C) or
loses its connection leaves the connection in an unknown state: it is closed
at once (the server rolls the transaction back), and the error names the
database and the cause. A sync then fails (its lock lived with the
connection); with ``reconnect`` (the webhook listener) the next call connects
again, no more than once a second while the server is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence, Set
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import orjson

from mettl_async.sync.base import (
    CLEANUP_SECONDS,
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
    SCHEMA_TABLES,
    check_tables,
    migrations,
    unapplied,
)
from mettl_async.sync.rows import Row, sections_of

__all__ = ["MIGRATION_LOCK", "SYNC_LOCK", "PostgresDatabase"]

T = TypeVar("T")

#: Seconds between two attempts to reconnect while the server is away.
RECONNECT_INTERVAL: Final = 1.0

#: The advisory lock a sync holds for its whole run ("mettlsyn" in ASCII).
SYNC_LOCK: Final = 0x6D6574746C73796E
#: Taken while migrations are applied.
MIGRATION_LOCK: Final = SYNC_LOCK + 1
#: First half of a schedule's transaction-level lock (the second is hashtext(access_key)).
SCHEDULE_LOCK_SPACE: Final = 0x6D65746C

_COLUMNS: Final = (
    "access_key", "email", "status", "total_marks", "max_marks", "percentile", "start_time",
    "end_time", "raw", "content_hash", "first_seen_at", "updated_at", "deleted_at", "row_version",
)  # fmt: skip
_SECTION_COLUMNS: Final = (
    "access_key", "email", "position", "section_name", "total_marks", "max_marks", "time_taken",
    "total_question", "total_correct_answers", "total_unanswered",
)  # fmt: skip
_UPDATE: Final = (
    "UPDATE candidate_results SET status = $1, total_marks = $2, max_marks = $3, "
    "percentile = $4, start_time = $5, end_time = $6, raw = $7::jsonb, content_hash = $8, "
    "updated_at = $9, deleted_at = NULL, row_version = $12 WHERE access_key = $10 AND email = $11"
)
_DELETE_SECTIONS: Final = "DELETE FROM section_marks WHERE access_key = $1 AND email = $2"
_SNAPSHOT: Final = (
    "SELECT email, content_hash, deleted_at, row_version FROM candidate_results "
    "WHERE access_key = $1"
)
#: The version of the rows one transaction writes (a sequence: never handed out twice).
_NEXT_VERSION: Final = "SELECT nextval('candidate_results_row_version')"
#: The newest version handed out (by any session, committed or not), 0 before the first.
_VERSION_MARK: Final = (
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM candidate_results_row_version"
)
_UPSERT_SCHEDULE: Final = (
    "INSERT INTO schedules (access_key, name, assessment_id, raw, synced_at, deleted_at) "
    "VALUES ($1, $2, $3, $4::jsonb, $5, NULL) ON CONFLICT (access_key) DO UPDATE SET "
    "name = excluded.name, assessment_id = excluded.assessment_id, raw = excluded.raw, "
    "synced_at = excluded.synced_at, deleted_at = NULL"
)
_ADD_COUNTS: Final = (
    "UPDATE sync_runs SET inserted = inserted + $1, updated = updated + $2, "
    "unchanged = unchanged + $3, deleted = deleted + $4, schedules = schedules + 1 WHERE id = $5"
)
_LOCK_SCHEDULE: Final = "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))"


def _when(text: str | None) -> datetime | None:
    """A UTC text of :func:`~mettl_async.sync.rows.utc_text` as a timestamptz value."""
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def _row_record(
    access_key: str, row: Sequence[Any], now: datetime, version: int
) -> tuple[Any, ...]:
    return (
        access_key, row[0], row[1], row[2], row[3], row[4], _when(row[5]), _when(row[6]),
        row[7], row[8], now, now, None, version,
    )  # fmt: skip


class _Expired(Exception):
    """A call passed its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def _driver() -> Any:
    try:
        import asyncpg  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise SyncConfigurationError(
            "a PostgreSQL database needs asyncpg: pip install 'mettl-async[postgres]'"
        ) from None
    return asyncpg


class PostgresDatabase(Database):
    """A PostgreSQL database as a sync target (one connection; calls take turns)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._asyncpg = _driver()
        self._conn: Any = None
        self._lost: str | None = None  # why the connection was dropped
        self._retry_at = 0.0  # no reconnection before (monotonic), after a failed one
        self._refused: SyncError | None = None  # the failed reconnection's error
        self._turn = asyncio.Lock()  # one asyncpg connection runs one thing at a time
        self._locked = False

    async def _start(self) -> None:
        self._conn = await self._connect()
        await self._migrate()

    # -- the connection, its deadlines and errors ---------------------------------------------

    async def _connect(self) -> Any:
        asyncpg, seconds = self._asyncpg, self.timeouts.connect
        try:
            async with asyncio.timeout(seconds):
                return await asyncpg.connect(self.location, timeout=seconds)
        except TimeoutError:
            raise DatabaseUnavailableError(
                f"cannot connect to {self.url}: no answer within {seconds:g} s"
            ) from None
        except (
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidCatalogNameError,
            asyncpg.ClientConfigurationError,
            ValueError,
        ) as exc:
            raise SyncConfigurationError(f"cannot connect to {self.url}: {exc}") from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailableError(f"cannot connect to {self.url}: {exc}") from exc

    async def _connection(self, what: str) -> Any:
        """The connection for a call: the one open, or (``reconnect``) a new one."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        if conn is not None:
            self._drop(conn, "the server closed the connection")
        if not self.reconnect:
            raise DatabaseLostError(
                f"lost the connection to {self.url} ({self._lost}) before {what}; "
                "run again once the database is back"
            )
        if time.monotonic() < self._retry_at and self._refused is not None:
            raise self._refused  # tried less than a second ago: not again yet
        try:
            self._conn = await self._connect()
        except SyncError as exc:
            self._refused, self._retry_at = exc, time.monotonic() + RECONNECT_INTERVAL
            raise
        self._refused, self._lost = None, None
        return self._conn

    def _drop(self, conn: Any, why: str) -> None:
        """Close the connection at once (its state is unknown): the server rolls back."""
        if self._conn is conn:
            self._conn, self._lost, self._locked = None, why, False
        if not conn.is_closed():
            conn.terminate()

    async def _use(
        self, what: str, body: Callable[[Any], Awaitable[T]], *, limit: float | None = None
    ) -> T:
        """``body(connection)`` in the connection's turn, the wait for it within the statement
        timeout (``limit`` if given); every failure a typed :class:`SyncError`."""
        seconds = self.timeouts.statement if limit is None else limit
        try:
            async with asyncio.timeout(seconds):
                await self._turn.acquire()
        except TimeoutError:
            raise DatabaseTimeoutError(
                f"{self.url} was busy with another call for more than {seconds:g} s (before {what})"
            ) from None
        try:
            conn = await self._connection(what)
            try:
                return await body(conn)
            except BaseException as exc:
                error = self._failed(conn, exc, what)
                if error is exc:
                    raise
                raise error from exc
        finally:
            self._turn.release()

    def _failed(self, conn: Any, error: BaseException, what: str) -> BaseException:
        """The error to raise for ``error`` (drops the connection when its state is unknown)."""
        asyncpg = self._asyncpg
        if isinstance(error, _Expired):
            self._drop(conn, f"it did not answer within {error.seconds:g} s")
            return DatabaseTimeoutError(
                f"{self.url} did not answer within {error.seconds:g} s ({what}); is the "
                "server overloaded or frozen? (the timeouts can be raised)"
            )
        if isinstance(error, asyncio.CancelledError):
            self._drop(conn, "the call was cancelled")
            return error
        if isinstance(error, SyncError | GeneratorExit | KeyboardInterrupt | SystemExit):
            return error
        if isinstance(error, asyncpg.DiskFullError):
            return DatabaseFullError(f"the disk of the database {self.url} is full: {error}")
        if isinstance(error, asyncpg.QueryCanceledError):
            return DatabaseTimeoutError(f"{self.url} cancelled {what}: {error}")
        if (
            isinstance(
                error,
                OSError
                | asyncpg.PostgresConnectionError
                | asyncpg.OperatorInterventionError
                | asyncpg.InterfaceError
                | asyncpg.InternalClientError,
            )
            or conn.is_closed()
        ):
            self._drop(conn, f"{type(error).__name__}: {error}")
            return DatabaseLostError(
                f"lost the connection to {self.url} ({what}): {error}; "
                "run again once the database is back"
            )
        if isinstance(error, asyncpg.PostgresError):
            return SyncError(f"the database {self.url} refused {what}: {error}")
        return error

    async def _call(self, method: Any, *args: Any, limit: float | None = None, **kw: Any) -> Any:
        """One call of the connection (``method``, bound), within the statement timeout."""
        seconds = self.timeouts.statement if limit is None else limit
        try:
            async with asyncio.timeout(seconds):
                return await method(*args, **kw)
        except TimeoutError:
            raise _Expired(seconds) from None

    async def _transaction(self, conn: Any, body: Callable[[], Awaitable[T]]) -> T:
        """``body()`` between ``BEGIN`` and ``COMMIT`` (within the commit timeout); on a
        failure, a rollback that never hides it (the connection dropped if it fails)."""
        await self._call(conn.execute, "BEGIN")
        try:
            result = await body()
            await self._call(conn.execute, "COMMIT", limit=self.timeouts.commit)
        except BaseException as exc:
            # A call that timed out or was cancelled is still running: the connection is
            # dropped (by _failed) instead, and the server rolls back.
            if not conn.is_closed() and not isinstance(exc, _Expired | asyncio.CancelledError):
                try:
                    await self._call(conn.execute, "ROLLBACK", limit=CLEANUP_SECONDS)
                except BaseException:  # the original error is the one to tell
                    self._drop(conn, "its rollback failed")
            raise
        return result

    async def _migrate(self) -> None:
        known = migrations("postgresql")

        async def migrate(conn: Any) -> None:
            async def apply() -> None:
                await self._call(conn.execute, "SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                # read before writing: another application's or a newer database is left as is
                names = {
                    r[0]
                    for r in await self._call(
                        conn.fetch,
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
                        [MIGRATIONS_TABLE, *SCHEMA_TABLES],
                    )
                }
                check_tables(names, self.url)
                applied: set[int] = set()
                if MIGRATIONS_TABLE in names:
                    rows = await self._call(conn.fetch, f"SELECT version FROM {MIGRATIONS_TABLE}")
                    applied = {r[0] for r in rows}
                pending = unapplied(known, applied, self.url)
                if not pending:
                    return
                await self._call(
                    conn.execute,
                    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version integer PRIMARY KEY, "
                    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                )
                for migration in pending:
                    await self._call(conn.execute, migration.sql)
                    await self._call(
                        conn.execute,
                        f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )

            await self._transaction(conn, apply)

        await self._use("applying the migrations", migrate, limit=self.timeouts.connect)

    async def schema_version(self) -> int:
        async def read(conn: Any) -> int:
            value = await self._call(conn.fetchval, f"SELECT max(version) FROM {MIGRATIONS_TABLE}")
            return int(value or 0)

        return await self._use("reading the schema version", read)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._locked = False
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(CLEANUP_SECONDS):
                    await conn.close()
            except (OSError, TimeoutError, self._asyncpg.InterfaceError):
                conn.terminate()
            except BaseException:
                conn.terminate()
                raise

    async def lock(self) -> None:
        if self._locked:
            return

        async def take(conn: Any) -> bool:
            return bool(
                await self._call(conn.fetchval, "SELECT pg_try_advisory_lock($1)", SYNC_LOCK)
            )

        if not await self._use("taking the sync lock", take):
            raise SyncLockedError(
                f"another sync is writing into {self.url} (it holds advisory lock {SYNC_LOCK}); "
                "wait for it to finish"
            )
        self._locked = True

    async def unlock(self) -> None:
        conn = self._conn
        if self._locked and conn is not None and not conn.is_closed():
            # quick or not at all (a lost connection's lock is gone with it)
            with contextlib.suppress(SyncError):
                await self._use(
                    "releasing the sync lock",
                    lambda c: self._call(
                        c.execute,
                        "SELECT pg_advisory_unlock($1)",
                        SYNC_LOCK,
                        limit=CLEANUP_SECONDS,
                    ),
                    limit=CLEANUP_SECONDS,
                )
        self._locked = False

    async def begin_run(self, now: datetime, scope: Sequence[str] | None) -> int:
        scope_text = None if scope is None else orjson.dumps(list(scope)).decode()

        async def begin(conn: Any) -> int:
            return int(
                await self._call(
                    conn.fetchval,
                    "INSERT INTO sync_runs (started_at, scope) VALUES ($1, $2::jsonb) RETURNING id",
                    now,
                    scope_text,
                )
            )

        return await self._use("recording the run's start", begin)

    async def end_run(
        self, run_id: int, now: datetime, *, complete: bool, schedules: int, error: str | None
    ) -> None:
        sql = "UPDATE sync_runs SET finished_at = $1, complete = $2, error = $3 WHERE id = $4"
        if error is None:
            await self._use(
                "recording the run's end",
                lambda conn: self._call(conn.execute, sql, now, complete, error, run_id),
            )
            return
        # A failed run's row is closed quickly or not at all (Ctrl+C ends the run
        # promptly), on a connection of its own if the sync's was lost.
        async with asyncio.timeout(CLEANUP_SECONDS):
            conn = self._conn
            if conn is not None and not conn.is_closed():
                await self._use(
                    "recording the run's end",
                    lambda c: self._call(c.execute, sql, now, complete, error, run_id),
                )
                return
            conn = await self._connect()
            try:
                await conn.execute(sql, now, complete, error, run_id)
            finally:
                conn.terminate()

    async def _snapshot(self, conn: Any, access_key: str) -> Snapshot:
        return rows_by_email(await self._call(conn.fetch, _SNAPSHOT, access_key))

    async def snapshot(self, access_key: str) -> Snapshot:
        return await self._use(
            f"reading schedule {access_key}", lambda conn: self._snapshot(conn, access_key)
        )

    async def version_mark(self) -> int:
        return int(
            await self._use(
                "reading the row version", lambda conn: self._call(conn.fetchval, _VERSION_MARK)
            )
        )

    async def _next_version(self, conn: Any) -> int:
        return int(await self._call(conn.fetchval, _NEXT_VERSION))

    async def _write(
        self,
        conn: Any,
        access_key: str,
        inserts: Sequence[Row],
        updates: Sequence[Row],
        now: datetime,
        version: int,
    ) -> None:
        if inserts:
            await self._call(
                conn.copy_records_to_table,
                "candidate_results",
                records=[_row_record(access_key, row, now, version) for row in inserts],
                columns=_COLUMNS,
            )
        if updates:
            await self._call(
                conn.executemany,
                _UPDATE,
                [
                    (
                        *row[1:5],
                        _when(row[5]),
                        _when(row[6]),
                        row[7],
                        row[8],
                        now,
                        access_key,
                        row[0],
                        version,
                    )
                    for row in updates
                ],
            )
            await self._call(
                conn.executemany, _DELETE_SECTIONS, [(access_key, row[0]) for row in updates]
            )
        sections = sections_of((*inserts, *updates), access_key)
        if sections:
            await self._call(
                conn.copy_records_to_table,
                "section_marks",
                records=sections,
                columns=_SECTION_COLUMNS,
            )

    async def commit_schedule(self, commit: ScheduleCommit) -> Counts:
        counts = Counts()
        now = commit.now

        async def write(conn: Any) -> None:
            await self._call(conn.execute, _LOCK_SCHEDULE, SCHEDULE_LOCK_SPACE, commit.access_key)
            if commit.needs_current():
                version = await self._next_version(conn)
                current = await self._snapshot(conn, commit.access_key)
                for chunk in commit.spool.chunks():
                    plan = plan_rows(chunk, current, commit.mark)
                    await self._write(
                        conn, commit.access_key, plan.inserts, plan.updates, now, version
                    )
                    counts.inserted += len(plan.inserts)
                    counts.updated += len(plan.updates)
                gone = deletions(current, commit.seen, commit.mark)
                if gone:
                    # executemany reports no counts: one statement over arrays does
                    status = await self._call(
                        conn.execute,
                        "UPDATE candidate_results SET deleted_at = $1, row_version = $5 FROM "
                        "unnest($3::text[], $4::text[]) AS gone(email, content_hash) WHERE "
                        "access_key = $2 AND candidate_results.email = gone.email AND "
                        "candidate_results.content_hash = gone.content_hash AND deleted_at IS NULL",
                        now,
                        commit.access_key,
                        [email for email, _ in gone],
                        [digest for _, digest in gone],
                        version,
                    )
                    counts.deleted = int(status.split()[-1])
            counts.unchanged = commit.listed - counts.inserted - counts.updated
            await self._call(
                conn.execute,
                _UPSERT_SCHEDULE,
                commit.access_key,
                commit.name,
                commit.assessment_id,
                commit.raw,
                now,
            )
            await self._call(
                conn.execute,
                _ADD_COUNTS,
                counts.inserted,
                counts.updated,
                counts.unchanged,
                counts.deleted,
                commit.run_id,
            )

        await self._use(
            f"committing schedule {commit.access_key}",
            lambda conn: self._transaction(conn, lambda: write(conn)),
        )
        return counts

    async def mark_schedules_deleted(self, listed: Set[str], now: datetime) -> int:
        async def mark(conn: Any) -> int:
            stored = await self._call(
                conn.fetch, "SELECT access_key FROM schedules WHERE deleted_at IS NULL"
            )
            gone = [r[0] for r in stored if r[0] not in listed]
            if gone:
                await self._call(
                    conn.execute,
                    "UPDATE schedules SET deleted_at = $1 WHERE access_key = ANY($2::text[]) "
                    "AND deleted_at IS NULL",
                    now,
                    gone,
                )
            return len(gone)

        return await self._use(
            "marking schedules deleted", lambda conn: self._transaction(conn, lambda: mark(conn))
        )

    async def store_result(self, access_key: str, row: Row, now: datetime) -> StoreOutcome:
        async def store(conn: Any) -> StoreOutcome:
            await self._call(conn.execute, _LOCK_SCHEDULE, SCHEDULE_LOCK_SPACE, access_key)
            found = await self._call(
                conn.fetchrow,
                "SELECT content_hash, deleted_at FROM candidate_results "
                "WHERE access_key = $1 AND email = $2",
                access_key,
                row[0],
            )
            if found is None:
                await self._write(conn, access_key, [row], [], now, await self._next_version(conn))
                return "inserted"
            if found[0] == row[8] and found[1] is None:
                return "unchanged"
            await self._write(conn, access_key, [], [row], now, await self._next_version(conn))
            return "updated"

        return await self._use(
            f"storing a result of schedule {access_key}",
            lambda conn: self._transaction(conn, lambda: store(conn)),
        )

    async def ping(self) -> None:
        await self._use("checking the database", lambda conn: self._call(conn.fetchval, "SELECT 1"))

    async def fetch_all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async def fetch(conn: Any) -> list[tuple[Any, ...]]:
            return [tuple(record) for record in await self._call(conn.fetch, sql, *args)]

        return await self._use("running a query", fetch)
