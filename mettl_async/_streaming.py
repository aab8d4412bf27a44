"""Walking listings: concurrent pages, exactly once, never quietly short.

A :class:`Listing` walks one offset-paginated listing (the schedules of an
account, the candidates of a schedule): the first page alone, then the
following offsets concurrently, a window at a time, yielded in offset order
(the order that following the links one by one gives). A record whose key was
already yielded is dropped, so offsets that shift under live data never
duplicate anyone; and since a shift can also open a gap between two pages
(records arriving move the others to later offsets, deletions to earlier
ones, and concurrent pages are read in any order), every page must be proven
to meet the pages before it, or a repair page is read where the walk had got
to (see :mod:`._coverage` for the proof, :mod:`._pagewalk` for the walk). A walk
that cannot vouch for what it read, or whose page fails for good, raises
:class:`IncompleteListingError`.

:class:`AccountResults` walks every schedule of an account at once, under the
client's one bound on requests in flight, with a bounded buffer between the
walks and the consumer: a slow consumer slows the fetching, memory stays flat.

Nothing here imports aiohttp: requests go through the client's ``fetch``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
)
from typing import Any, Final, Generic, TypeVar

import attrs

from ._closing import OpenIterations
from ._errors import IncompleteListingError
from ._pagewalk import Fetch as Fetch  # where the client and _unpaged import them from
from ._pagewalk import ListingSpec as ListingSpec
from ._pagewalk import PageDecoder as PageDecoder
from ._pagewalk import Walk, content_key, walk_pages
from ._paging import Page, RawRecord
from ._tracing import Scope

__all__ = ["AccountResults", "Listing", "ListingSpec", "SchedulePage", "as_raw", "iterate"]

T = TypeVar("T")
U = TypeVar("U")
Raw = RawRecord
#: The identity of a record without a key (kept here for code that imported it).
_content_key = content_key

#: Schedules listed ahead of the account walk: two pages of the schedule listing.
SCHEDULES_AHEAD: Final = 200


class Listing(Generic[T]):
    """An async iterable over every record of one listing; lazy until iterated.

    ``async for record in listing`` yields records; :meth:`pages` yields
    :class:`Page` objects (records plus offset, limit and what the server said
    of the total and the links); :meth:`raw` gives the same listing yielding
    the JSON mappings exactly as Mettl sent them, skipping typed decoding.

    ``decode`` reads each page's answer (default: ``decode_listing``, records
    as :class:`RawRecord`); ``convert`` turns each record it gives into a ``T``.
    """

    def __init__(
        self,
        fetch: Fetch,
        spec: ListingSpec,
        convert: Callable[[Any], T],
        *,
        slots: asyncio.Semaphore | None = None,
        decode: PageDecoder | None = None,
    ) -> None:
        self._fetch = fetch
        self._spec = spec
        self._convert = convert
        self._slots = slots
        self._iterations = OpenIterations()
        self._decode = decode

    @property
    def spec(self) -> ListingSpec:
        return self._spec

    def raw(self) -> Listing[Raw]:
        """This listing, yielding :class:`RawRecord` wire mappings instead of typed objects."""
        return Listing(self._fetch, self._spec, as_raw, slots=self._slots)

    def decoded(self, convert: Callable[[Any], U], decode: PageDecoder | None) -> Listing[U]:
        """The same walk, its pages read by ``decode`` and each record converted by ``convert``."""
        return Listing(self._fetch, self._spec, convert, slots=self._slots, decode=decode)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterations.track(self._items())

    async def aclose(self) -> None:
        """Close every iteration of this listing still open, cancelling its requests now.

        For ``contextlib.aclosing(listing)``; the listing can be iterated again.
        """
        await self._iterations.aclose()

    async def _items(self) -> AsyncGenerator[T, None]:
        convert = self._convert
        async with contextlib.aclosing(self._raw_pages()) as pages:
            async for page in pages:
                for item in page.items:
                    yield convert(item)

    def pages(self) -> AsyncGenerator[Page[T], None]:
        """Every page of the listing, in order, with records converted."""
        return self._iterations.track(self._pages())

    async def _pages(self) -> AsyncGenerator[Page[T], None]:
        convert = self._convert
        async with contextlib.aclosing(self._raw_pages()) as pages:
            async for page in pages:
                yield page.with_items([convert(item) for item in page.items])

    async def collect(self) -> list[T]:
        """Every record, in a list (for small listings)."""
        return [item async for item in self]

    # -- the walk ------------------------------------------------------------------

    async def _raw_pages(self) -> AsyncGenerator[Page[Raw], None]:
        """The walk's pages; the last one is marked only once the walk is known complete.

        A page that ends the listing is held until the next page comes or the
        walk ends (every round of a walk ends on one), so that ``is_last`` means
        what it says even when a walk repeats itself after a shift, and so that a
        walk found incomplete raises before its final page is handed over: an
        export must never record a short schedule as done. Other pages are
        yielded as they come.
        """
        walk = Walk(self._fetch, self._spec, self._slots, self._decode)
        self._iterations.begin()
        try:
            held: Page[Raw] | None = None
            async with contextlib.aclosing(walk_pages(walk)) as pages:
                async for page in pages:
                    if held is not None:
                        yield held
                        held = None
                    if page.is_end():
                        held = page
                    else:
                        yield page
            self._check_complete(walk)
            if held is None:  # cannot happen by construction; a consumer still needs the mark
                held = Page[Raw]([], walk.frontier, self._spec.limit)
            yield attrs.evolve(held, is_last=True)
        except BaseException as exc:
            walk.scope.fail(exc)
            raise
        finally:
            try:
                await walk.close()
            finally:
                self._iterations.end()

    def _check_complete(self, walk: Walk) -> None:
        """What the chain cannot prove: totals that disagree with a walk that saw no change."""
        label = self._spec.label
        total = walk.first_total
        quiet = walk.coverage is None or walk.coverage.quiet
        if quiet and total is not None and walk.unique < total:
            raise IncompleteListingError(
                f"{label}: the server reported {total} records but the walk found "
                f"{walk.unique}, and the listing did not change under the walk: the server "
                "skipped some. Walk it again.",
                listing=label,
                offset=None,
            )
        if (
            not self._spec.grows_at_front
            and total is not None
            and walk.max_total is not None
            and walk.max_total != total
        ):
            raise IncompleteListingError(
                f"{label}: the listing went from {total} to {walk.max_total} records during "
                "the walk; under this sort a record inserted mid-walk can push another past "
                "a page already fetched. Walk it again, or use the default sort (newest first).",
                listing=label,
                offset=None,
            )


def as_raw(value: Raw) -> Raw:
    """The conversion of a raw view: the record as it is."""
    return value


@attrs.frozen
class SchedulePage(Generic[T, U]):
    """A page of one schedule's results in an account-wide walk."""

    schedule: T
    page: Page[U]


_DONE: Final = object()


class AccountResults(Generic[T, U]):
    """Every candidate result of many schedules, as ``(schedule, result)`` pairs.

    Up to ``concurrency`` schedules are walked at once; all their requests
    share the client's bound on requests in flight. Pages wait in a bounded
    buffer for the consumer, and a walk may hold at most a fixed number of
    pages not yet consumed, so memory does not grow with the account. Results
    of one schedule come in order; schedules interleave as their pages arrive.
    Breaking out of the loop, or an exception in the consumer, cancels every
    request in flight.

    ``decode_result``, when given, reads the result pages that ``async for``
    walks (records then go to ``convert_result`` as that decoder gives them);
    :meth:`pages` always yields :class:`RawRecord` pages.
    """

    def __init__(
        self,
        schedules: Callable[[], AsyncGenerator[Raw, None]],
        listing_for: Callable[[Raw, asyncio.Semaphore], Listing[Raw]],
        convert_schedule: Callable[[Raw], T],
        convert_result: Callable[[Any], U],
        *,
        concurrency: int,
        page_budget: int,
        decode_result: PageDecoder | None = None,
    ) -> None:
        self._schedules = schedules
        self._listing_for = listing_for
        self._convert_schedule = convert_schedule
        self._convert_result = convert_result
        self._concurrency = concurrency
        self._page_budget = page_budget
        self._iterations = OpenIterations()
        self._decode_result = decode_result

    def raw(self) -> AccountResults[Raw, Raw]:
        """The same walk, yielding Mettl's JSON as :class:`RawRecord` mappings (no decoding)."""
        return AccountResults(
            self._schedules,
            self._listing_for,
            as_raw,
            as_raw,
            concurrency=self._concurrency,
            page_budget=self._page_budget,
        )

    def __aiter__(self) -> AsyncIterator[tuple[T, U]]:
        return self._iterations.track(self._pairs())

    async def aclose(self) -> None:
        """Close every iteration of this walk still open, cancelling its requests now.

        For ``contextlib.aclosing(mettl.iter_all_results())``; it can be iterated again.
        """
        await self._iterations.aclose()

    async def _pairs(self) -> AsyncGenerator[tuple[T, U], None]:
        convert = self._convert_result
        # Records are converted as they are yielded, not when their page arrives:
        # pages waiting for the consumer hold no model objects.
        async with contextlib.aclosing(self._pages(self._decode_result)) as pages:
            async for item in pages:
                schedule = item.schedule
                for result in item.page.items:
                    yield schedule, convert(result)

    def pages(self) -> AsyncGenerator[SchedulePage[T, Raw], None]:
        """Pages as they arrive, each with its schedule; ``page.is_last`` ends a schedule."""
        return self._iterations.track(self._pages(None))

    async def _pages(
        self, decode: PageDecoder | None
    ) -> AsyncGenerator[SchedulePage[T, Any], None]:
        """The walk; result pages read by ``decode`` (default: scanned into RawRecords)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(2, self._concurrency))
        slots = asyncio.Semaphore(self._page_budget)
        running: set[asyncio.Task[None]] = set()
        convert_schedule = self._convert_schedule

        async def walk_one(raw_schedule: Raw) -> None:
            try:
                schedule = convert_schedule(raw_schedule)
                listing: Listing[Any] = self._listing_for(raw_schedule, slots)
                if decode is not None:
                    listing = listing.decoded(as_raw, decode)
                async with contextlib.aclosing(listing.pages()) as pages:
                    async for page in pages:
                        await queue.put(SchedulePage(schedule, page))
            except Exception as exc:  # handed to the consumer, which raises it
                await queue.put(_Failure(exc))

        gate = asyncio.Semaphore(self._concurrency)

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            gate.release()

        # The schedules are listed ahead of the walks (a bounded buffer), so that
        # the next page of the listing is on its way before the walks need it.
        listed: asyncio.Queue[Any] = asyncio.Queue(maxsize=SCHEDULES_AHEAD)

        async def list_schedules() -> None:
            try:
                async with contextlib.aclosing(self._schedules()) as schedules:
                    async for raw_schedule in schedules:
                        await listed.put(raw_schedule)
            except Exception as exc:
                await listed.put(_Failure(exc))
                return
            await listed.put(_DONE)

        async def feed() -> None:
            try:
                while (raw_schedule := await listed.get()) is not _DONE:
                    if isinstance(raw_schedule, _Failure):
                        raise raw_schedule.error
                    await gate.acquire()
                    task = asyncio.ensure_future(walk_one(raw_schedule))
                    running.add(task)
                    task.add_done_callback(finished)
                while running:
                    await asyncio.gather(*list(running))
            except Exception as exc:
                await queue.put(_Failure(exc))
                return
            await queue.put(_DONE)

        self._iterations.begin()
        scope = Scope("mettl.account_results")  # the parent of the walks' spans, when traced
        with scope.current():
            lister = asyncio.ensure_future(list_schedules())
            feeder = asyncio.ensure_future(feed())
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            tasks = [lister, feeder, *running]
            for task in tasks:
                task.cancel()
            try:
                await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                scope.close()
                self._iterations.end()


@attrs.frozen
class _Failure:
    error: Exception


async def iterate(source: Iterable[T] | AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """An async iterator over a sync or async iterable."""
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item
