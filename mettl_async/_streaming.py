"""Walking listings: concurrent pages, exactly once, never quietly short.

A :class:`Listing` walks one offset-paginated listing (the schedules of an
account, the candidates of a schedule). It fetches the first page alone, then
the following offsets concurrently, a window at a time, and yields pages in
offset order, the order that following the links one by one gives. A record
whose key was already yielded is dropped, so offsets that shift under live data
never duplicate anyone; and because such a shift can also open a gap between
pages fetched out of order, a walk that saw the evidence of one (a page
repeating records of the page before it) walks again from there. A walk that
ends with fewer records than the server reported, or whose page fails for good,
raises :class:`IncompleteListingError`.

:class:`AccountResults` walks every schedule of an account at once, under the
client's one bound on requests in flight, with a bounded buffer between the
walks and the consumer: a slow consumer slows the fetching, memory stays flat.

Nothing here imports aiohttp: requests go through the client's ``fetch``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Sequence,
)
from typing import Any, Final, Generic, TypeVar

import attrs

from ._closing import OpenIterations
from ._errors import (
    DecodeError,
    IncompleteListingError,
    PaginationError,
    RepeatedPageLinkError,
    RequestError,
)
from ._paging import (
    Page,
    RawRecord,
    WireRecord,
    decode_listing,
    link_identity,
    link_request,
    page_from_envelope,
    record_of,
)
from ._protocol import Request
from ._tracing import Scope, listing_scope

__all__ = ["AccountResults", "Listing", "ListingSpec", "SchedulePage", "as_raw", "iterate"]

T = TypeVar("T")
U = TypeVar("U")
Raw = RawRecord
#: ``Transport.call_with``: send a request, read the answer with a decoder.
Fetch = Callable[[Request, Any], Awaitable[Any]]
#: Reads a listing page's answer (``_paging.decode_listing`` and its keyword arguments).
PageDecoder = Callable[..., dict[str, Any]]

#: Walks of the same listing again after seeing offsets shift, before going sequential.
MAX_REPAIR_ROUNDS: Final = 3
#: Pages in a row with no new record before a walk is declared stuck (unknown total).
MAX_STALE_PAGES: Final = 3
#: Schedules listed ahead of the account walk: two pages of the schedule listing.
SCHEDULES_AHEAD: Final = 200


@attrs.frozen
class ListingSpec:
    """What to walk: the first request, where the records are, what identifies one."""

    label: str  # for messages: "schedule 0x0x0x0x0x", "schedules of the account"
    request: Request  # the first page; its params carry limit and offset
    items_key: str  # "candidates", "schedules"
    key_field: str | None  # "email", "accessKey"; None: no de-duplication
    window: int  # pages fetched ahead; 1 follows the links one by one
    #: New records appear at the start of this listing (its default sort: newest
    #: first). Shifts then only move records to later offsets, which the walk repairs;
    #: under another sort, a listing that grew during the walk is reported incomplete.
    grows_at_front: bool = True

    @property
    def limit(self) -> int:
        return int(self.request.params["limit"])

    @property
    def offset(self) -> int:
        return int(self.request.params.get("offset", "0"))


class _Walk:
    """The state of one walk over one listing: one page at a time, in order."""

    def __init__(
        self,
        fetch: Fetch,
        spec: ListingSpec,
        slots: asyncio.Semaphore | None,
        decode: PageDecoder | None = None,
    ) -> None:
        self.fetch = fetch
        self.spec = spec
        self.slots = slots
        self.seen: set[Hashable] = set()
        self.unique = 0
        self.first_total: int | None = None
        self.max_total: int | None = None
        self.frontier = 0  # the furthest offset any page of this walk reached
        self.stale = 0  # pages in a row past the frontier with nothing new
        self.pending: collections.deque[tuple[int, asyncio.Task[Page[Raw]]]] = collections.deque()
        self.held = 0  # page slots held by this walk
        self.scope = listing_scope(spec.request, spec.items_key)  # its span, when traced
        # Pages are never parsed into dicts. A raw walk scans each page (each
        # record stays the bytes Mettl sent); a typed walk decodes it in one pass
        # into wire-named structs the garbage collector does not track. Pages
        # waiting in the prefetch window then hold a few bytes objects or
        # untracked structs instead of thousands of dicts, which would slow every
        # allocation (and the garbage collector) of the whole walk.
        self.decode = functools.partial(
            decode or decode_listing, items_key=spec.items_key, key_field=spec.key_field
        )

    # -- fetching one page ---------------------------------------------------------

    async def fetch_page(self, url: str, params: dict[str, str], offset: int) -> Page[Raw]:
        request = Request("GET", url, params)
        with self.scope.current():
            envelope = await self.fetch(request, self.decode)
        try:
            limit = int(params.get("limit", self.spec.limit))
            page = page_from_envelope(envelope, self.spec.items_key, offset=offset, limit=limit)
        except (KeyError, TypeError) as exc:
            raise DecodeError(
                f"{self.spec.label}: the page at offset {offset} has no list of "
                f"{self.spec.items_key!r} ({exc})",
                method="GET",
                path=request.path,
            ) from None

        items: Sequence[Any] = page.items
        if items and not isinstance(items[0], RawRecord | WireRecord):
            # A page the fast scan could not read, parsed in full instead.
            field = self.spec.key_field
            items = [record_of(item, field) for item in items]
        return page.with_items(items)

    def offset_request(
        self, template: tuple[str, dict[str, str]], offset: int
    ) -> tuple[str, dict[str, str]]:
        url, params = template
        return url, {**params, "offset": str(offset)}

    # -- de-duplication ------------------------------------------------------------

    def keys_of(self, page: Page[Raw]) -> list[Hashable]:
        """Each record's identity: its key, or for a record without one, a digest of its
        bytes (so that a record without an email, pushed to the next page by an
        arrival, is recognised there too)."""
        if self.spec.key_field is None:
            return []
        return [_content_key(item) if item.key is None else item.key for item in page.items]

    def fresh(self, page: Page[Raw], keys: list[Hashable]) -> Page[Raw]:
        """The page with only records not yielded before (by key, else by content)."""
        self.frontier = max(self.frontier, page.offset + page.received)
        if page.total_records is not None:
            self.max_total = max(self.max_total or 0, page.total_records)
        if self.spec.key_field is None:
            self.unique += len(page.items)
            return page
        seen = self.seen
        items = []
        for item, key in zip(page.items, keys, strict=True):
            if key is None:
                items.append(item)
            elif key not in seen:
                seen.add(key)
                items.append(item)
        self.unique += len(items)
        return page.with_items(items)

    def accept(self, page: Page[Raw], keys: list[Hashable]) -> Page[Raw]:
        """:meth:`fresh`, watching for a server that ignores ``offset``.

        Only pages past everything walked so far count: a walk repeated after a
        shift meets records it already yielded, legitimately.
        """
        beyond = page.offset >= self.frontier
        fresh = self.fresh(page, keys)
        self.stale = self.stale + 1 if beyond and page.received and not fresh.items else 0
        if self.stale >= MAX_STALE_PAGES:
            raise PaginationError(
                f"{self.spec.label}: {self.stale} pages in a row up to offset {page.offset} "
                "held only records already seen; the server seems to ignore offset",
                listing=self.spec.label,
                offset=page.offset,
            )
        return fresh

    # -- page slots (memory bound shared by the walks of one account) ----------------

    async def take_slot(self, *, wait: bool) -> bool:
        if self.slots is None:
            return True
        if not wait and self.slots.locked():
            return False
        await self.slots.acquire()
        self.held += 1
        return True

    def give_slot(self) -> None:
        if self.slots is not None and self.held:
            self.held -= 1
            self.slots.release()

    async def close(self) -> None:
        self.scope.note("mettl.records", self.unique)
        self.scope.close()
        pending = [task for _, task in self.pending]
        self.pending.clear()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        while self.held:
            self.give_slot()

    def failed(self, offset: int, error: RequestError) -> IncompleteListingError:
        failure = IncompleteListingError(
            f"{self.spec.label}: the page at offset {offset} failed after "
            f"{error.attempts} attempt{'s' if error.attempts != 1 else ''} ({error})",
            listing=self.spec.label,
            offset=offset,
        )
        failure.__cause__ = error
        return failure


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
        walk = _Walk(self._fetch, self._spec, self._slots, self._decode)
        self._iterations.begin()
        try:
            held: Page[Raw] | None = None
            async with contextlib.aclosing(self._walk_pages(walk)) as pages:
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

    async def _walk_pages(self, walk: _Walk) -> AsyncGenerator[Page[Raw], None]:
        spec = self._spec
        await walk.take_slot(wait=True)
        # The first page's errors are raised as they are: nothing was yielded yet.
        first = await walk.fetch_page(spec.request.url, dict(spec.request.params), spec.offset)
        walk.give_slot()
        walk.first_total = first.total_records
        keys = walk.keys_of(first)
        yield walk.fresh(first, keys)
        if first.is_end():
            return
        if spec.window <= 1:
            pages = self._follow(walk, spec.request.url, first)
        else:
            pages = self._concurrent(walk, first, keys)
        async with contextlib.aclosing(pages):
            async for page in pages:
                yield page

    def _check_complete(self, walk: _Walk) -> None:
        label = self._spec.label
        total = walk.first_total
        if total is not None and walk.unique < total:
            raise IncompleteListingError(
                f"{label}: the server reported {total} records but the walk found "
                f"{walk.unique}; the listing changed under the walk (records deleted?) or the "
                "server skipped some. Walk it again.",
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

    async def _follow(
        self, walk: _Walk, url: str, page: Page[Raw]
    ) -> AsyncGenerator[Page[Raw], None]:
        """One page at a time after ``page``: follow ``paging.next`` as given, else step."""
        spec = self._spec
        params = dict(spec.request.params)
        followed: set[Hashable] = set()
        while not page.is_end():
            if page.next is not None:
                url, params = link_request(page.next, url)
                identity = link_identity(url, params)
                if identity in followed:
                    raise RepeatedPageLinkError(
                        f"{spec.label}: the server sent the link to offset "
                        f"{params.get('offset', '?')} twice; stopping instead of looping",
                        listing=spec.label,
                        offset=_int_or_none(params.get("offset")),
                    )
                followed.add(identity)
                offset = _int_or_none(params.get("offset"))
                if offset is None:
                    offset = page.offset + page.received
            else:
                offset = page.offset + page.received
                params = {**params, "offset": str(offset)}
            params.setdefault("limit", str(spec.limit))
            await walk.take_slot(wait=True)
            try:
                page = await walk.fetch_page(url, params, offset)
            except RequestError as error:
                raise walk.failed(offset, error) from error
            finally:
                walk.give_slot()
            yield walk.accept(page, walk.keys_of(page))

    async def _concurrent(
        self, walk: _Walk, first: Page[Raw], first_keys: list[Hashable]
    ) -> AsyncGenerator[Page[Raw], None]:
        """Later offsets a window at a time, yielded in order; walk again after a shift."""
        spec = self._spec
        template = (spec.request.url, dict(spec.request.params))
        # A server may clamp the limit: step by what it actually gave.
        step = min(first.limit, first.received)
        start = first.offset + step
        if first.next is not None:
            # The server's own next link is the template: its parameters as it gives them.
            url, params = link_request(first.next, spec.request.url)
            link_offset = _int_or_none(params.get("offset"))
            if link_offset is not None and link_offset > first.offset:
                params.setdefault("limit", str(first.limit))
                template, start, step = (url, params), link_offset, link_offset - first.offset
        total = first.total_records
        previous_keys = first_keys
        for round_number in range(MAX_REPAIR_ROUNDS + 1):
            shifted_at: int | None = None
            window = self._window(walk, template, start, step, total, round_number > 0)
            async with contextlib.aclosing(window):
                async for page, keys in window:
                    if shifted_at is None and _overlaps(previous_keys, keys):
                        shifted_at = page.offset
                    previous_keys = keys
                    yield walk.accept(page, keys)
            if shifted_at is None:
                return
            # Records moved to later offsets while pages were fetched out of order:
            # the pages before ``shifted_at`` are contiguous, a gap can only follow.
            # Walk again from there (records already yielded are dropped).
            total = walk.max_total
            start, previous_keys = shifted_at, []
        # Still shifting after every round: one page at a time leaves no gap.
        stand_in = Page[Raw]([], start - step, step, received=step)
        async with contextlib.aclosing(self._follow(walk, template[0], stand_in)) as pages:
            async for page in pages:
                yield page

    async def _window(
        self,
        walk: _Walk,
        template: tuple[str, dict[str, str]],
        start: int,
        step: int,
        total: int | None,
        lead_alone: bool,
    ) -> AsyncGenerator[tuple[Page[Raw], list[Hashable]], None]:
        """Pages from ``start`` on, up to ``spec.window`` ahead, in offset order."""
        window_max = self._spec.window
        # Unknown total: speculate, doubling the window while pages come back full.
        window = window_max if total is not None else min(2, window_max)
        next_offset = start
        ended = False

        def launch(offset: int) -> asyncio.Task[Page[Raw]]:
            url, params = walk.offset_request(template, offset)
            task = asyncio.ensure_future(walk.fetch_page(url, params, offset))
            walk.pending.append((offset, task))
            return task

        if lead_alone:
            # A walk repeated after a shift fetches its first page before the others,
            # so that the shift this page sees is the smallest of the round.
            await walk.take_slot(wait=True)
            await asyncio.wait([launch(next_offset)])
            next_offset += step
        while True:
            while not ended and len(walk.pending) < window:
                if total is not None and next_offset >= total:
                    break
                if not await walk.take_slot(wait=not walk.pending):
                    break
                launch(next_offset)
                next_offset += step
            if not walk.pending:
                return
            offset, task = walk.pending[0]
            try:
                page = await task
            except RequestError as error:
                raise walk.failed(offset, error) from error
            walk.pending.popleft()
            if page.is_end():
                ended = True
            if page.total_records is not None and (total is None or page.total_records > total):
                total = page.total_records  # grew under the walk: keep going
                window = window_max
            elif total is None and not ended:
                window = min(window * 2, window_max)
            yield page, walk.keys_of(page)
            walk.give_slot()


def _content_key(record: Raw) -> bytes:
    """The identity of a record without a key: a digest of its JSON (never equal to a key,
    which is a string or a number)."""
    return hashlib.blake2b(record.json, digest_size=16).digest()


def _overlaps(previous: list[Hashable], current: list[Hashable]) -> bool:
    if not previous or not current:
        return False
    before = {key for key in previous if key is not None}
    return any(key in before for key in current if key is not None)


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def as_raw(value: Raw) -> Raw:
    """The conversion of a raw view: the record as it is."""
    return value


def _as_is(value: Any) -> Any:
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
                    listing = listing.decoded(_as_is, decode)
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
