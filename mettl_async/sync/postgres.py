"""The PostgreSQL backend: asyncpg (``pip install 'mettl-async[postgres]'``).

New rows reach the tables by ``COPY`` (asyncpg's binary copy), changed ones by
pipelined ``UPDATE``\\ s, inside one transaction per schedule. A session-level
advisory lock (:data:`SYNC_LOCK`) keeps a second sync out; it is released when
the connection ends, a killed process included. Each schedule's commit, and
each webhook's upsert, also takes a transaction-level advisory lock on the
schedule's access key, so the two never interleave within one schedule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence, Set
from datetime import UTC, datetime
from typing import Any, Final

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
from mettl_async.sync.migrations import migrations, unapplied
from mettl_async.sync.rows import Row, sections_of

__all__ = ["MIGRATION_LOCK", "SYNC_LOCK", "PostgresDatabase"]

#: The advisory lock a sync holds for its whole run ("mettlsyn" in ASCII).
SYNC_LOCK: Final = 0x6D6574746C73796E
#: Taken while migrations are applied.
MIGRATION_LOCK: Final = SYNC_LOCK + 1
#: First half of a schedule's transaction-level lock (the second is hashtext(access_key)).
SCHEDULE_LOCK_SPACE: Final = 0x6D65746C

_COLUMNS: Final = (
    "access_key", "email", "status", "total_marks", "max_marks", "percentile", "start_time",
    "end_time", "raw", "content_hash", "first_seen_at", "updated_at", "deleted_at",
)  # fmt: skip
_SECTION_COLUMNS: Final = (
    "access_key", "email", "position", "section_name", "total_marks", "max_marks", "time_taken",
    "total_question", "total_correct_answers", "total_unanswered",
)  # fmt: skip
_UPDATE: Final = (
    "UPDATE candidate_results SET status = $1, total_marks = $2, max_marks = $3, "
    "percentile = $4, start_time = $5, end_time = $6, raw = $7::jsonb, content_hash = $8, "
    "updated_at = $9, deleted_at = NULL WHERE access_key = $10 AND email = $11"
)
_DELETE_SECTIONS: Final = "DELETE FROM section_marks WHERE access_key = $1 AND email = $2"
_SNAPSHOT: Final = (
    "SELECT email, content_hash, deleted_at FROM candidate_results WHERE access_key = $1"
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


def _row_record(access_key: str, row: Sequence[Any], now: datetime) -> tuple[Any, ...]:
    return (
        access_key, row[0], row[1], row[2], row[3], row[4], _when(row[5]), _when(row[6]),
        row[7], row[8], now, now, None,
    )  # fmt: skip


class PostgresDatabase(Database):
    """A PostgreSQL database as a sync target (one connection; calls take turns)."""

    def __init__(self, conn: Any, url: str) -> None:
        self._conn = conn
        self.url = url
        self._turn = asyncio.Lock()  # one asyncpg connection runs one thing at a time
        self._locked = False

    @classmethod
    async def open(cls, dsn: str, url: str) -> PostgresDatabase:
        try:
            import asyncpg  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            raise SyncConfigurationError(
                "a PostgreSQL database needs asyncpg: pip install 'mettl-async[postgres]'"
            ) from None
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SyncError(f"cannot connect to {url}: {exc}") from exc
        database = cls(conn, url)
        try:
            await database._migrate()
        except BaseException:
            await database.close()
            raise
        return database

    async def _migrate(self) -> None:
        conn = self._conn
        known = migrations("postgresql")
        async with self._turn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS mettl_schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {
                r[0] for r in await conn.fetch("SELECT version FROM mettl_schema_migrations")
            }
            for migration in unapplied(known, applied, self.url):
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO mettl_schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )

    async def schema_version(self) -> int:
        async with self._turn:
            value = await self._conn.fetchval("SELECT max(version) FROM mettl_schema_migrations")
        return int(value or 0)

    async def close(self) -> None:
        self._locked = False
        if not self._conn.is_closed():
            try:
                await asyncio.wait_for(self._conn.close(), timeout=10)
            except (OSError, TimeoutError):
                self._conn.terminate()

    async def lock(self) -> None:
        if self._locked:
            return
        async with self._turn:
            taken = await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", SYNC_LOCK)
        if not taken:
            raise SyncLockedError(
                f"another sync is writing into {self.url} (it holds advisory lock {SYNC_LOCK}); "
                "wait for it to finish"
            )
        self._locked = True

    async def unlock(self) -> None:
        if self._locked and not self._conn.is_closed():
            async with self._turn:
                await self._conn.execute("SELECT pg_advisory_unlock($1)", SYNC_LOCK)
        self._locked = False

    async def begin_run(self, now: datetime, scope: Sequence[str] | None) -> int:
        scope_text = None if scope is None else orjson.dumps(list(scope)).decode()
        async with self._turn:
            value = await self._conn.fetchval(
                "INSERT INTO sync_runs (started_at, scope) VALUES ($1, $2::jsonb) RETURNING id",
                now,
                scope_text,
            )
        return int(value)

    async def end_run(
        self, run_id: int, now: datetime, *, complete: bool, schedules: int, error: str | None
    ) -> None:
        async with self._turn:
            await self._conn.execute(
                "UPDATE sync_runs SET finished_at = $1, complete = $2, error = $3 WHERE id = $4",
                now,
                complete,
                error,
                run_id,
            )

    async def _snapshot(self, access_key: str) -> Snapshot:
        return rows_by_email(await self._conn.fetch(_SNAPSHOT, access_key))

    async def snapshot(self, access_key: str) -> Snapshot:
        async with self._turn:
            return await self._snapshot(access_key)

    async def _write(
        self, access_key: str, inserts: Sequence[Row], updates: Sequence[Row], now: datetime
    ) -> None:
        conn = self._conn
        if inserts:
            await conn.copy_records_to_table(
                "candidate_results",
                records=[_row_record(access_key, row, now) for row in inserts],
                columns=_COLUMNS,
            )
        if updates:
            await conn.executemany(
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
                    )
                    for row in updates
                ],
            )
            await conn.executemany(_DELETE_SECTIONS, [(access_key, row[0]) for row in updates])
        sections = sections_of((*inserts, *updates), access_key)
        if sections:
            await conn.copy_records_to_table(
                "section_marks", records=sections, columns=_SECTION_COLUMNS
            )

    async def commit_schedule(self, commit: ScheduleCommit) -> Counts:
        conn = self._conn
        counts = Counts()
        now = commit.now
        async with self._turn, conn.transaction():
            await conn.execute(_LOCK_SCHEDULE, SCHEDULE_LOCK_SPACE, commit.access_key)
            if commit.needs_current():
                current = await self._snapshot(commit.access_key)
                for chunk in commit.spool.chunks():
                    plan = plan_rows(chunk, commit.before, current)
                    await self._write(commit.access_key, plan.inserts, plan.updates, now)
                    counts.inserted += len(plan.inserts)
                    counts.updated += len(plan.updates)
                gone = deletions(commit.before, current, commit.seen)
                if gone:
                    # executemany reports no counts: one statement over arrays does
                    status = await conn.execute(
                        "UPDATE candidate_results SET deleted_at = $1 FROM unnest($3::text[], "
                        "$4::text[]) AS gone(email, content_hash) WHERE access_key = $2 AND "
                        "candidate_results.email = gone.email AND candidate_results.content_hash "
                        "= gone.content_hash AND deleted_at IS NULL",
                        now,
                        commit.access_key,
                        [email for email, _ in gone],
                        [digest for _, digest in gone],
                    )
                    counts.deleted = int(status.split()[-1])
            counts.unchanged = commit.listed - counts.inserted - counts.updated
            await conn.execute(
                _UPSERT_SCHEDULE,
                commit.access_key,
                commit.name,
                commit.assessment_id,
                commit.raw,
                now,
            )
            await conn.execute(
                _ADD_COUNTS,
                counts.inserted,
                counts.updated,
                counts.unchanged,
                counts.deleted,
                commit.run_id,
            )
        return counts

    async def mark_schedules_deleted(self, listed: Set[str], now: datetime) -> int:
        conn = self._conn
        async with self._turn, conn.transaction():
            stored = await conn.fetch("SELECT access_key FROM schedules WHERE deleted_at IS NULL")
            gone = [r[0] for r in stored if r[0] not in listed]
            if gone:
                await conn.execute(
                    "UPDATE schedules SET deleted_at = $1 WHERE access_key = ANY($2::text[]) "
                    "AND deleted_at IS NULL",
                    now,
                    gone,
                )
        return len(gone)

    async def store_result(self, access_key: str, row: Row, now: datetime) -> StoreOutcome:
        conn = self._conn
        async with self._turn, conn.transaction():
            await conn.execute(_LOCK_SCHEDULE, SCHEDULE_LOCK_SPACE, access_key)
            found = await conn.fetchrow(
                "SELECT content_hash, deleted_at FROM candidate_results "
                "WHERE access_key = $1 AND email = $2",
                access_key,
                row[0],
            )
            if found is None:
                await self._write(access_key, [row], [], now)
                return "inserted"
            if found[0] == row[8] and found[1] is None:
                return "unchanged"
            await self._write(access_key, [], [row], now)
            return "updated"

    async def fetch_all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self._turn:
            return [tuple(record) for record in await self._conn.fetch(sql, *args)]
