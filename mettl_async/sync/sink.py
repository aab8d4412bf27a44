"""A sync run's side of the database: pages in, one commit per schedule, the run's row.

:class:`ResultSink` is what the sync does with the pages it walks, whichever
process does it: reads the columns of each record
(:func:`~mettl_async.sync.rows.result_row`), keeps the ones whose hash differs
from the stored one in the schedule's :class:`~mettl_async.sync.base.Spool`,
and commits the schedule in one transaction once its walk is complete (the
rules of a commit are :mod:`mettl_async.sync.base`'s). The engine
(:mod:`mettl_async.sync.engine`) feeds it in its own process (``writer="thread"``)
or through :mod:`mettl_async.sync.writer`, which runs one in a process of its
own (``writer="process"``, the ``sync`` command's): either way the same code
decides what is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeAlias

import attrs

from mettl_async.sync.base import Counts, Database, ScheduleCommit, Snapshot, Spool
from mettl_async.sync.rows import result_row
from mettl_async.sync.worker import retrieve

__all__ = ["Committed", "ResultSink", "ScheduleColumns"]

#: A schedule's ``name``, ``assessment_id`` and ``raw`` JSON text (``rows.schedule_columns``).
ScheduleColumns: TypeAlias = tuple[str | None, int | None, str]


@attrs.define
class _Walked:
    """A schedule being walked: what was stored before, what differs, whom the walk listed."""

    before: Snapshot
    mark: int  # the newest row version before the schedule's first page was asked for
    spool: Spool
    seen: set[str] = attrs.Factory(set)
    listed: int = 0
    skipped: int = 0  # listed records without an email (not storable)


@attrs.frozen
class Committed:
    """What one schedule's commit did, and how many of its records had no email."""

    counts: Counts
    skipped: int


class ResultSink:
    """One sync run's writes into ``db``: call :meth:`begin`, then per schedule
    :meth:`mark` (before its first page is asked for), :meth:`page` for each
    page and :meth:`commit` after its last; then :meth:`finish` (a complete run)
    or :meth:`abort` (a failed or interrupted one)."""

    def __init__(self, db: Database, spool_memory: int | None = None) -> None:
        self.db = db
        #: Bytes of a schedule's changed rows kept in memory before its spool uses a file.
        self.spool_memory = Spool().max_memory if spool_memory is None else spool_memory
        self.run_id = 0
        self.committed: set[str] = set()
        self._run_mark = 0
        self._marks: dict[str, int] = {}
        self._snapshots: dict[str, asyncio.Future[Snapshot]] = {}  # read since the mark
        self._walking: dict[str, _Walked] = {}

    async def begin(self, now: datetime, scope: Sequence[str] | None) -> int:
        """Start the run's ``sync_runs`` row (after reading the run's own version mark)."""
        # The run's mark stands in for a schedule the walk names differently: older still.
        self._run_mark = await self.db.version_mark()
        self.run_id = await self.db.begin_run(now, scope)
        return self.run_id

    async def mark(self, key: str) -> None:
        """Read the version mark of schedule ``key``: before its first page is asked for,
        so that a row another writer stores later is never overwritten by this listing.

        Its stored rows are then read in the background, for its first page: that page
        need not wait behind another schedule's commit (the commit reads them again).
        """
        self._marks[key] = await self.db.version_mark()
        if key not in self._snapshots and key not in self._walking:
            self._snapshots[key] = asyncio.ensure_future(self.db.snapshot(key))

    async def _snapshot(self, key: str) -> Snapshot:
        """Schedule ``key``'s stored rows: read since its mark, or now."""
        reading = self._snapshots.pop(key, None)
        if reading is None:
            return await self.db.snapshot(key)
        return await reading

    async def page(self, key: str, records: Iterable[tuple[object, bytes]]) -> None:
        """Read one page of schedule ``key``: ``(email, JSON bytes)`` of each record."""
        state = self._walking.get(key)
        if state is None:
            mark = self._marks.pop(key, self._run_mark)
            snapshot = await self._snapshot(key)
            state = self._walking[key] = _Walked(snapshot, mark, Spool(self.spool_memory))
        changed = []
        before, seen = state.before, state.seen
        for email, raw in records:
            if not isinstance(email, str):
                state.skipped += 1
                continue
            row = result_row(email, raw)
            seen.add(email)
            state.listed += 1
            known = before.get(email)
            if known is None or known[0] != row[8] or known[1]:
                changed.append(row)
        state.spool.add(changed)

    async def commit(self, key: str, columns: ScheduleColumns, now: datetime) -> Committed:
        """Commit schedule ``key``, whose walk is complete, in one transaction."""
        if key not in self._walking:  # a schedule without a page: a walk never ends so
            await self.page(key, ())
        state = self._walking.pop(key)
        name, assessment_id, raw = columns
        try:
            counts = await self.db.commit_schedule(
                ScheduleCommit(
                    access_key=key,
                    name=name,
                    assessment_id=assessment_id,
                    raw=raw,
                    before=state.before,
                    spool=state.spool,
                    seen=state.seen,
                    listed=state.listed,
                    run_id=self.run_id,
                    now=now,
                    mark=state.mark,
                )
            )
        finally:
            state.spool.close()
        self.committed.add(key)
        return Committed(counts, state.skipped)

    async def finish(self, now: datetime, *, delete_schedules: bool) -> int:
        """End a complete run; with ``delete_schedules`` (a walk of every schedule), first
        mark the stored schedules it did not list deleted. How many were marked."""
        deleted = 0
        if delete_schedules:
            deleted = await self.db.mark_schedules_deleted(self.committed, now)
        await self.db.end_run(
            self.run_id, now, complete=True, schedules=len(self.committed), error=None
        )
        return deleted

    def discard(self) -> None:
        """Drop the spools of the schedules still being walked (their rows are not written)
        and the reads of schedules not begun."""
        walking, self._walking = self._walking, {}
        for state in walking.values():
            state.spool.close()
        snapshots, self._snapshots = self._snapshots, {}
        for reading in snapshots.values():
            reading.cancel()
            reading.add_done_callback(retrieve)

    async def abort(self, now: datetime, error: str) -> None:
        """End a failed or interrupted run: nothing of the schedules still being walked is
        written, and the run's row says why it stopped."""
        self.discard()
        await self.db.end_run(
            self.run_id, now, complete=False, schedules=len(self.committed), error=error
        )
