"""The sync: every schedule's results walked on the raw path, committed a schedule at a time.

:func:`sync_results` lists the schedules, walks their results concurrently
(``AccountResults.raw()``: the bytes Mettl sent, never decoded into models),
reads the few columns of each record, drops records whose hash is the one
stored, and commits each schedule in one transaction when its walk is
complete (see :mod:`mettl_async.sync.base` for what a commit writes). Before
a schedule's first page is asked for, the database's row version is read (its
mark): a row the webhook listener stores after that is never overwritten by
the schedule's listing, which may be older. A
schedule whose walk fails changes nothing; schedules committed before stay.
Run it again after an interruption: committed schedules are read but not
rewritten, and the database ends as an uninterrupted run leaves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import attrs

from mettl_async._client import MettlClient
from mettl_async._paging import RawRecord
from mettl_async._tracing import traced_run
from mettl_async._walk import ScheduleWalk, WalkProgress
from mettl_async.sync.base import Counts, Database, ScheduleCommit, Snapshot, Spool
from mettl_async.sync.database import DEFAULT_DATABASE_URL, open_database
from mettl_async.sync.rows import record_row, schedule_columns

__all__ = ["SyncSummary", "sync_results"]

logger = logging.getLogger("mettl_async.sync")


@attrs.frozen
class SyncSummary:
    """What one sync did (its ``sync_runs`` row holds the same counts)."""

    run_id: int
    database: str  # the URL, password hidden
    complete: bool
    schedules: int
    records: int  # listed results, with an email
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    schedules_deleted: int
    skipped: int  # listed records without an email (not storable; logged)
    requests: int
    retries: int
    seconds: float


@attrs.define
class _Walked:
    """A schedule being walked: what was stored before, what differs, whom the walk listed."""

    schedule: RawRecord
    before: Snapshot
    mark: int  # the newest row version before the schedule's first page was asked for
    spool: Spool = attrs.Factory(Spool)
    seen: set[str] = attrs.Factory(set)
    listed: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


@traced_run("mettl.sync")  # one span over the run's calls, when traced
async def sync_results(
    client: MettlClient,
    database: str | Database = DEFAULT_DATABASE_URL,
    *,
    access_keys: Sequence[str] | None = None,
    concurrency: int | None = None,
    progress: WalkProgress | None = None,
    on_progress: Callable[[WalkProgress], None] | None = None,
) -> SyncSummary:
    """Bring the database up to date with every result of the account (or of ``access_keys``).

    ``database`` is a URL (see :func:`~mettl_async.sync.open_database`; the
    default is ``mettl.db`` in the current directory) or a database already
    opened (left open). Raises :class:`~mettl_async.sync.SyncLockedError` when
    another sync is writing into it, and the walk's errors as they are (the
    run is then recorded as incomplete, with the error).
    """
    if access_keys is not None:
        access_keys = list(dict.fromkeys(access_keys))
        if not all(isinstance(key, str) and key.strip() for key in access_keys):
            raise ValueError("access_keys must be non-empty strings")
    owned = not isinstance(database, Database)
    db = await open_database(database) if isinstance(database, str) else database
    try:
        await db.lock()
        try:
            return await _sync(client, db, access_keys, concurrency, progress, on_progress)
        finally:
            await db.unlock()
    finally:
        if owned:
            await db.close()


async def _sync(
    client: MettlClient,
    db: Database,
    access_keys: list[str] | None,
    concurrency: int | None,
    progress: WalkProgress | None,
    on_progress: Callable[[WalkProgress], None] | None,
) -> SyncSummary:
    # Each schedule's mark is read before its first page is asked for (the run's own
    # mark stands in for a schedule the walk names differently; it is older still).
    run_mark = await db.version_mark()
    marks: dict[str, int] = {}

    async def take_mark(key: str) -> None:
        marks[key] = await db.version_mark()

    # The totals of the listing and of first pages are not read: the sync's progress
    # line counts records without a percentage or an ETA.
    walk = ScheduleWalk(
        client,
        access_keys=access_keys,
        progress=progress,
        on_progress=on_progress,
        learn_totals=False,
        before_schedule=take_mark,
    )
    progress = walk.progress
    run_id = await db.begin_run(_now(), access_keys)
    counts = Counts()
    committed: set[str] = set()
    walking: dict[str, _Walked] = {}
    skipped = 0
    schedules_deleted = 0
    pages = walk.pages(concurrency=concurrency)
    try:
        async with contextlib.aclosing(pages):
            async for key, item in pages:
                schedule = item.schedule
                state = walking.get(key)
                if state is None:
                    mark = marks.pop(key, run_mark)
                    state = walking[key] = _Walked(schedule, await db.snapshot(key), mark)
                changed = []
                before, seen = state.before, state.seen
                for record in item.page.items:
                    row = record_row(record)
                    if row is None:
                        skipped += 1
                        logger.warning(
                            "sync: a result of schedule %s has no email; not stored", key
                        )
                        continue
                    email = row[0]
                    seen.add(email)
                    state.listed += 1
                    known = before.get(email)
                    if known is None or known[0] != row[8] or known[1]:
                        changed.append(row)
                state.spool.add(changed)
                progress.records += len(item.page.items)
                if item.page.is_last:
                    del walking[key]
                    try:
                        counts.add(await db.commit_schedule(_commit(key, state, run_id)))
                    finally:
                        state.spool.close()
                    committed.add(key)
                    progress.schedules_done += 1
                walk.report()
        if access_keys is None:
            schedules_deleted = await db.mark_schedules_deleted(committed, _now())
    except BaseException as exc:
        for state in walking.values():
            state.spool.close()
        error = stop_reason(exc)
        with contextlib.suppress(Exception):
            # recorded even when cancelled (Ctrl+C): the run's row says it stopped, and why
            await asyncio.shield(
                db.end_run(run_id, _now(), complete=False, schedules=len(committed), error=error)
            )
        raise
    await db.end_run(run_id, _now(), complete=True, schedules=len(committed), error=None)
    return SyncSummary(
        run_id=run_id,
        database=db.url,
        complete=True,
        schedules=len(committed),
        records=counts.inserted + counts.updated + counts.unchanged,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        deleted=counts.deleted,
        schedules_deleted=schedules_deleted,
        skipped=skipped,
        requests=walk.requests,
        retries=walk.retries,
        seconds=progress.elapsed,
    )


def _commit(key: str, state: _Walked, run_id: int) -> ScheduleCommit:
    name, assessment_id, raw = schedule_columns(state.schedule)
    return ScheduleCommit(
        access_key=key,
        name=name,
        assessment_id=assessment_id,
        raw=raw,
        before=state.before,
        spool=state.spool,
        seen=state.seen,
        listed=state.listed,
        run_id=run_id,
        now=_now(),
        mark=state.mark,
    )


def stop_reason(exc: BaseException) -> str:
    """What ``sync_runs.error`` says of a run that ``exc`` ended.

    A cancellation says why it came when its canceller said (the command line's
    ``interrupted (SIGINT)`` or ``terminated (SIGTERM)``), else ``interrupted``;
    any other error, its class and message.
    """
    if isinstance(exc, asyncio.CancelledError):
        reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        return reason or "interrupted"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
