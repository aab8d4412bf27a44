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
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TypeVar

import attrs

from mettl_async._client import MettlClient
from mettl_async._tracing import traced_run
from mettl_async._walk import ScheduleWalk, WalkProgress
from mettl_async.sync.base import (
    CLEANUP_SECONDS,
    DEFAULT_TIMEOUTS,
    Counts,
    Database,
    DatabaseTimeouts,
    SyncConfigurationError,
    redact_url,
)
from mettl_async.sync.database import DEFAULT_DATABASE_URL, open_database, sqlite_path
from mettl_async.sync.rows import schedule_columns
from mettl_async.sync.sink import Committed, ResultSink, ScheduleColumns
from mettl_async.sync.worker import retrieve
from mettl_async.sync.writer import AVAILABLE as writer_available
from mettl_async.sync.writer import WriterProcess

__all__ = ["SyncSummary", "sync_results"]

logger = logging.getLogger("mettl_async.sync")

T = TypeVar("T")

#: Schedules whose commit may wait at once while the walk goes on (their rows in memory
#: or in their spool files meanwhile).
PENDING_COMMITS: Final = 4


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


def _now() -> datetime:
    return datetime.now(UTC)


class _Writer(Protocol):
    """Where the pages go: a :class:`ResultSink` here, or one in a writer process."""

    async def begin(self, now: datetime, scope: Sequence[str] | None) -> int: ...
    async def mark(self, key: str) -> None: ...
    async def page(self, key: str, records: list[tuple[object, bytes]]) -> None: ...
    async def commit(
        self, key: str, columns: ScheduleColumns, now: datetime, done: Callable[[Committed], None]
    ) -> None: ...
    async def finish(self, now: datetime, *, delete_schedules: bool) -> int: ...
    async def abort(self, now: datetime, error: str) -> None: ...


class _InProcess:
    """A :class:`ResultSink` in this process, its database calls in a thread of their own.

    A schedule's commit runs while the walk goes on (the database's thread writes, the
    event loop reads the next pages); at most :data:`PENDING_COMMITS` wait at once, and
    a commit's failure is raised by the next call.
    """

    def __init__(self, db: Database) -> None:
        self._sink = sink = ResultSink(db)
        self.begin, self.mark = sink.begin, sink.mark
        self._commits: set[asyncio.Task[Committed]] = set()
        self._failure: BaseException | None = None

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def page(self, key: str, records: list[tuple[object, bytes]]) -> None:
        self._check()
        await self._sink.page(key, records)

    async def commit(
        self, key: str, columns: ScheduleColumns, now: datetime, done: Callable[[Committed], None]
    ) -> None:
        self._check()
        task = asyncio.ensure_future(self._sink.commit(key, columns, now))

        def committed(task: asyncio.Task[Committed]) -> None:
            self._commits.discard(task)
            if task.cancelled():
                return
            error = task.exception()
            if error is None:
                done(task.result())
            elif self._failure is None:
                self._failure = error

        task.add_done_callback(committed)
        self._commits.add(task)
        if len(self._commits) >= PENDING_COMMITS:
            await asyncio.wait(self._commits, return_when=asyncio.FIRST_COMPLETED)

    async def finish(self, now: datetime, *, delete_schedules: bool) -> int:
        if self._commits:
            await asyncio.wait(self._commits)
        self._check()
        return await self._sink.finish(now, delete_schedules=delete_schedules)

    async def abort(self, now: datetime, error: str) -> None:
        """End the run: a commit still waiting is cancelled (its schedule is not written)."""
        for task in self._commits:
            task.cancel()
        if self._commits:
            await asyncio.wait(self._commits)
        await self._sink.abort(now, error)


@traced_run("mettl.sync")  # one span over the run's calls, when traced
async def sync_results(
    client: MettlClient,
    database: str | Database = DEFAULT_DATABASE_URL,
    *,
    access_keys: Sequence[str] | None = None,
    concurrency: int | None = None,
    progress: WalkProgress | None = None,
    on_progress: Callable[[WalkProgress], None] | None = None,
    writer: Literal["thread", "process"] = "thread",
    timeouts: DatabaseTimeouts = DEFAULT_TIMEOUTS,
) -> SyncSummary:
    """Bring the database up to date with every result of the account (or of ``access_keys``).

    ``database`` is a URL (see :func:`~mettl_async.sync.open_database`; the
    default is ``mettl.db`` in the current directory), opened with
    ``timeouts``, or a database already opened (left open). Raises
    :class:`~mettl_async.sync.SyncLockedError` when another sync is writing
    into it, and the walk's errors as they are (the run is then recorded as
    incomplete, with the error).

    ``writer="process"`` does the database's work (each record's columns,
    its hash, the inserts) in a child process with its own GIL
    (:mod:`mettl_async.sync.writer`), beside the walk: faster on a machine
    with a core to spare; ``database`` must then be a URL of a file or a
    server (not ``:memory:``), and the system POSIX. ``"thread"`` (the
    default) does it in this process, the database's calls in a thread.
    """
    if access_keys is not None:
        access_keys = list(dict.fromkeys(access_keys))
        if not all(isinstance(key, str) and key.strip() for key in access_keys):
            raise ValueError("access_keys must be non-empty strings")
    if writer not in ("thread", "process"):
        raise ValueError(f"writer must be 'thread' or 'process', got {writer!r}")
    if writer == "process":
        if not writer_available:
            raise ValueError('writer="process" needs a POSIX system (Linux, macOS)')
        if not isinstance(database, str) or sqlite_path(database) == ":memory:":
            raise ValueError(
                'writer="process" needs the database as a URL of a file or a server '
                "(a database object and sqlite:///:memory: live in this process)"
            )
        if not isinstance(timeouts, DatabaseTimeouts):
            raise SyncConfigurationError(f"timeouts must be DatabaseTimeouts, got {timeouts!r}")
        remote = await WriterProcess.start(database, redact_url(database), timeouts)
        try:
            return await _watched(
                _sync(client, remote, remote.url, access_keys, concurrency, progress, on_progress),
                remote.gone,
            )
        finally:
            await remote.close()
    owned = not isinstance(database, Database)
    db = await open_database(database, timeouts=timeouts) if isinstance(database, str) else database
    try:
        await db.lock()
        try:
            return await _sync(
                client, _InProcess(db), db.url, access_keys, concurrency, progress, on_progress
            )
        finally:
            await db.unlock()
    finally:
        if owned:
            await db.close()


async def _watched(work: Awaitable[T], gone: asyncio.Future[BaseException]) -> T:
    """``work``, stopped as soon as the writer process is ``gone`` (its error raised then,
    not at the walk's next page, which may be long in coming)."""
    task = asyncio.ensure_future(work)
    either: list[asyncio.Future[Any]] = [task, gone]
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError as exc:  # cancelled from outside: the run says why
        task.cancel(*exc.args)
        await asyncio.wait([task])
        raise
    if not task.done():
        task.cancel()
        await asyncio.wait([task])
        raise gone.result()
    return task.result()


async def _sync(
    client: MettlClient,
    sink: _Writer,
    url: str,
    access_keys: list[str] | None,
    concurrency: int | None,
    progress: WalkProgress | None,
    on_progress: Callable[[WalkProgress], None] | None,
) -> SyncSummary:
    # Each schedule's mark is read before its first page is asked for (sink.mark).
    # The totals of the listing and of first pages are not read: the sync's progress
    # line counts records without a percentage or an ETA.
    walk = ScheduleWalk(
        client,
        access_keys=access_keys,
        progress=progress,
        on_progress=on_progress,
        learn_totals=False,
        before_schedule=sink.mark,
    )
    progress = walk.progress
    run_id = await sink.begin(_now(), access_keys)
    counts = Counts()
    committed = 0
    skipped = 0

    def done(outcome: Committed, key: str) -> None:
        nonlocal committed, skipped
        counts.add(outcome.counts)
        committed += 1
        progress.schedules_done += 1
        walk.report()  # a commit done while the walk goes on (or after its last page)
        if outcome.skipped:
            skipped += outcome.skipped
            logger.warning(
                "sync: %d result(s) of schedule %s have no email; not stored",
                outcome.skipped,
                key,
            )

    pages = walk.pages(concurrency=concurrency)
    try:
        async with contextlib.aclosing(pages):
            async for key, item in pages:
                records = item.page.items
                await sink.page(key, [(record.key, record.json) for record in records])
                progress.records += len(records)
                if item.page.is_last:
                    columns = schedule_columns(item.schedule)
                    await sink.commit(key, columns, _now(), functools.partial(done, key=key))
                walk.report()
        schedules_deleted = await sink.finish(_now(), delete_schedules=access_keys is None)
    except BaseException as exc:
        error = stop_reason(exc)
        # recorded even when cancelled (Ctrl+C): the run's row says it stopped, and why;
        # the sink bounds its own database calls, this bounds the wait for a writer process
        ending = asyncio.ensure_future(sink.abort(_now(), error))
        ending.add_done_callback(retrieve)  # its failure is not the run's error
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLEANUP_SECONDS + 2):
                await asyncio.shield(ending)
        raise
    return SyncSummary(
        run_id=run_id,
        database=url,
        complete=True,
        schedules=committed,
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
