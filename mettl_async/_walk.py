"""The walk the export and the sync share: every result page of the chosen schedules.

Both walk alike: the schedules (every one of the account, listed as the walk
goes, or the access keys given), their result pages on the raw path
(``AccountResults.raw()``: the bytes Mettl sent, never decoded into models),
each page with its schedule's access key; a :class:`WalkProgress` kept as the
pages come and handed to a callback at most every :data:`REPORT_EVERY`
seconds; and the requests and retries the walk cost. What a page becomes
(lines of a file, rows of a database) is the caller's:
:mod:`mettl_async.export` and :mod:`mettl_async.sync` use this, and this
imports neither.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterable
from typing import Final

import attrs

from mettl_async._client import MettlClient
from mettl_async._paging import RawRecord
from mettl_async._streaming import AccountResults, SchedulePage

__all__ = ["REPORT_EVERY", "ScheduleWalk", "WalkProgress", "schedule_key"]

#: Seconds between two calls of a walk's ``on_progress``, at least.
REPORT_EVERY: Final = 0.2


@attrs.define
class WalkProgress:
    """Live counters of an export or a sync, for a progress line.

    ``mettl_async.export.ExportProgress`` is this class, under its earlier name.
    """

    started: float = attrs.field(factory=time.monotonic)
    schedules_total: int | None = None  # known once every schedule is listed
    schedules_done: int = 0
    schedules_skipped: int = 0  # complete in the checkpoint being resumed
    records: int = 0
    records_skipped: int = 0  # already in the file being resumed
    records_kept: int = 0  # in the file being resumed, kept
    #: Whether the files of this export are on disk for ``mode="resume"`` to continue
    #: (false before anything was written, and once the export is complete).
    resumable: bool = False
    #: what the schedule listing's ``totalRecords`` said, before the listing ends
    schedules_reported: int | None = None
    schedules_begun: int = 0  # schedules of this run whose first page gave a total
    records_reported: int = 0  # the ``totalRecords`` of those schedules, added up

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def records_seen(self) -> int:
        """Records this run has handled: written, or found already in the file."""
        return self.records + self.records_skipped

    def records_expected(self) -> int | None:
        """Records this run will handle, by Mettl's ``totalRecords``; None until one is known.

        Exact once every schedule to walk has begun; until then the schedules
        begun stand for the others (their average size, times the schedules left).
        """
        schedules = self.schedules_total
        if schedules is None:
            schedules = self.schedules_reported
        if schedules is None or self.schedules_begun == 0:
            return None
        to_walk = max(0, schedules - self.schedules_skipped)
        expected = self.records_reported
        if self.schedules_begun < to_walk:
            expected = round(expected * to_walk / self.schedules_begun)
        return max(expected, self.records_seen)

    def eta(self, rate: float | None = None) -> float | None:
        """Seconds left at ``rate`` records per second (default: this run's average)."""
        expected = self.records_expected()
        if rate is None:
            elapsed = self.elapsed
            rate = self.records_seen / elapsed if elapsed > 0 else 0.0
        if expected is None or rate <= 0:
            return None
        return max(0.0, (expected - self.records_seen) / rate)


def schedule_key(schedule: RawRecord) -> str:
    """The access key of a walked schedule: its key in the listing, else its ``accessKey``."""
    return str(schedule.key or schedule.get("accessKey"))


class ScheduleWalk:
    """One walk over the result pages of the chosen schedules, and what it counts.

    ``access_keys`` limits the walk to those schedules (each once, in the order
    given); ``None`` walks every schedule of the account, listed as the walk
    goes. With ``learn_totals``, the listing's ``totalRecords`` and each
    schedule's first page tell ``progress`` how much there is to walk (what
    :meth:`WalkProgress.records_expected` is made of). ``before_schedule``, when
    given, is awaited with each schedule's access key before the schedule is
    handed to the walk: before its first page is asked for. The client's
    counters are read when the walk is made: :attr:`requests` and
    :attr:`retries` are what it cost since.
    """

    def __init__(
        self,
        client: MettlClient,
        *,
        access_keys: Iterable[str] | None = None,
        progress: WalkProgress | None = None,
        on_progress: Callable[[WalkProgress], None] | None = None,
        learn_totals: bool = True,
        before_schedule: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.access_keys = tuple(dict.fromkeys(access_keys)) if access_keys is not None else None
        self.progress = progress if progress is not None else WalkProgress()
        self.on_progress = on_progress
        self.learn_totals = learn_totals
        self.before_schedule = before_schedule
        self._requests0, self._retries0 = client.stats.requests, client.stats.retries
        self._last_report = time.monotonic()

    @property
    def requests(self) -> int:
        """Requests the client sent since the walk was made (every retry counts)."""
        return self.client.stats.requests - self._requests0

    @property
    def retries(self) -> int:
        """Retries the client made since the walk was made."""
        return self.client.stats.retries - self._retries0

    async def schedules(
        self, skip: Collection[str] = frozenset()
    ) -> AsyncGenerator[RawRecord | str, None]:
        """The schedules to walk but those in ``skip``; ``schedules_total`` once all are known."""
        progress = self.progress
        if self.access_keys is not None:
            progress.schedules_total = len(self.access_keys)
            for key in self.access_keys:
                if key not in skip:
                    if self.before_schedule is not None:
                        await self.before_schedule(key)
                    yield key
            return
        listed = 0
        async with contextlib.aclosing(self.client.iter_schedules().raw().pages()) as pages:
            async for page in pages:
                if self.learn_totals and progress.schedules_reported is None:
                    progress.schedules_reported = page.total_records
                for schedule in page.items:
                    listed += 1
                    if schedule.key not in skip:
                        if self.before_schedule is not None:
                            await self.before_schedule(schedule_key(schedule))
                        yield schedule
        progress.schedules_total = listed

    def pages(
        self,
        *,
        skip: Collection[str] = frozenset(),
        concurrency: int | None = None,
        include_recommendation: bool = False,
        include_essay_responses: bool = False,
    ) -> AsyncGenerator[tuple[str, SchedulePage[RawRecord, RawRecord]], None]:
        """Every result page of the schedules but those in ``skip``, with its schedule's key.

        Pages come as they arrive (``concurrency`` schedules at once); within a
        schedule, in order, the last one with ``page.is_last``. The arguments
        are checked now, before the first page is asked for. Close the
        generator (``contextlib.aclosing``) to cancel the requests in flight.
        """
        walk = self.client.iter_all_results(
            schedules=self.schedules(skip),
            concurrency=concurrency,
            include_recommendation=include_recommendation,
            include_essay_responses=include_essay_responses,
        )
        return self._pages(walk.raw())

    async def _pages(
        self, walk: AccountResults[RawRecord, RawRecord]
    ) -> AsyncGenerator[tuple[str, SchedulePage[RawRecord, RawRecord]], None]:
        progress, learn_totals = self.progress, self.learn_totals
        self._last_report = time.monotonic()
        async with contextlib.aclosing(walk.pages()) as pages:
            async for item in pages:
                page = item.page
                if learn_totals and page.offset == 0 and page.total_records is not None:
                    progress.schedules_begun += 1  # a schedule's first page: its size
                    progress.records_reported += page.total_records
                yield schedule_key(item.schedule), item

    def report(self, now: float | None = None) -> None:
        """Hand the progress to ``on_progress``, if :data:`REPORT_EVERY` seconds have passed
        since it last was (or since the walk began)."""
        if self.on_progress is None:
            return
        if now is None:
            now = time.monotonic()
        if now - self._last_report >= REPORT_EVERY:
            self.on_progress(self.progress)
            self._last_report = now
