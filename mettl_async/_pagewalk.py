"""One walk over one offset-paginated listing: pages fetched concurrently, proven contiguous.

The first page is fetched alone; the following offsets are fetched a window at
a time and judged in offset order by the walk's :class:`~._coverage.Coverage`,
which proves that no record that existed throughout fell between two pages
(see :mod:`._coverage` for the proof). While the listing shows no sign of
change and the server gives ``totalRecords``, pages tile the listing (offsets
0, L, 2L, ...: as few requests as a walk can make); otherwise, and from the
first sign of change on, each page overlaps the one before it by one record,
the record that proves they meet. A page that does not meet the chain is held
while a repair page is read where the chain's end now is; pages already fetched
beyond it are kept, and go on the chain as soon as they meet it. After a page
the chain already covers (arrivals moved its records down), the next page is
planned where that page says the chain's end now is.

Nothing here imports aiohttp: requests go through the client's ``fetch``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Sequence
from typing import Any, Final

import attrs

from ._coverage import Coverage, Verdict
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
from ._tracing import listing_scope

__all__ = ["Fetch", "ListingSpec", "PageDecoder", "Walk", "walk_pages"]

Raw = RawRecord
#: ``Transport.call_with``: send a request, read the answer with a decoder.
Fetch = Callable[[Request, Any], Awaitable[Any]]
#: Reads a listing page's answer (``_paging.decode_listing`` and its keyword arguments).
PageDecoder = Callable[..., dict[str, Any]]

#: Pages in a row repeating the first page before the server is said to ignore offset.
MAX_STALE_PAGES: Final = 3
#: Repair pages read in a row without finding the chain's end before the walk gives up.
MAX_SEEKS: Final = 8


@attrs.frozen
class ListingSpec:
    """What to walk: the first request, where the records are, what identifies one."""

    label: str  # for messages: "schedule 0x0x0x0x0x", "schedules of the account"
    request: Request  # the first page; its params carry limit and offset
    items_key: str  # "candidates", "schedules"
    key_field: str | None  # "email", "accessKey"; None: no de-duplication
    window: int  # pages fetched ahead; 1 follows the links one by one
    #: New records appear at the start of this listing (its default sort: newest
    #: first): the walk may then prove pages meet by their totals (see ``_coverage``).
    #: Under another sort, a listing that grew during the walk is reported incomplete.
    grows_at_front: bool = True

    @property
    def limit(self) -> int:
        return int(self.request.params["limit"])

    @property
    def offset(self) -> int:
        return int(self.request.params.get("offset", "0"))


class Walk:
    """The state of one walk over one listing: what it fetched, yielded and holds."""

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
        self.stale = 0  # pages in a row that repeated the first page, elsewhere
        self.first_keys: list[Hashable] = []
        self.tasks: set[asyncio.Task[Page[Raw]]] = set()
        self.held = 0  # page slots held by this walk
        self.coverage: Coverage | None = None
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

    def launch(self, template: tuple[str, dict[str, str]], offset: int) -> asyncio.Task[Page[Raw]]:
        url, params = template
        request = self.fetch_page(url, {**params, "offset": str(offset)}, offset)
        task = asyncio.ensure_future(request)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- de-duplication ------------------------------------------------------------

    def keys_of(self, page: Page[Raw]) -> list[Hashable]:
        """Each record's identity: its key, or for a record without one, a digest of its
        bytes (so that a record without an email, pushed to the next page by an
        arrival, is recognised there too)."""
        if self.spec.key_field is None:
            return []
        return [content_key(item) if item.key is None else item.key for item in page.items]

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
            if key not in seen:
                seen.add(key)
                items.append(item)
        self.unique += len(items)
        if len(items) == len(page.items):
            return page
        return page.with_items(items)

    def accept(self, page: Page[Raw], keys: list[Hashable]) -> Page[Raw]:
        """:meth:`fresh`, watching for a server that ignores ``offset``: pages at other
        offsets that hold the first page's records again, and only them, in a row.

        Such a page is also what a listing shows whose records moved down by as much
        as the walk went on (arrivals at the front as fast as the walk reads). Where
        new records appear only at the front, a total above the first page's tells
        them apart: records arrived and stayed, so the listing's first page now holds
        them, and these are the first page's records where they moved, not the first
        page again. (Without totals nothing tells them apart.)
        """
        again = page.offset != self.spec.offset and keys == self.first_keys
        if again and self.spec.grows_at_front and self.first_total is not None:
            again = (page.total_records or 0) <= self.first_total
        fresh = self.fresh(page, keys)
        self.stale = self.stale + 1 if again and page.received and not fresh.items else 0
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
        pending = list(self.tasks)
        self.tasks.clear()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        while self.held:
            self.give_slot()

    def failed(self, offset: int, error: RequestError) -> IncompleteListingError:
        """The error of a page that failed for good (raised ``from`` the request's error)."""
        return IncompleteListingError(
            f"{self.spec.label}: the page at offset {offset} failed after "
            f"{error.attempts} attempt{'s' if error.attempts != 1 else ''} ({error})",
            listing=self.spec.label,
            offset=offset,
        )


def content_key(record: Raw) -> bytes:
    """The identity of a record without a key: a digest of its JSON (never equal to a key,
    which is a string or a number)."""
    return hashlib.blake2b(record.json, digest_size=16).digest()


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


@attrs.define
class _Planned:
    """A page of the plan: where, and its request."""

    offset: int
    task: asyncio.Task[Page[Raw]]
    judged: bool = False  # judged once already (it broke, and repairs were read)


async def walk_pages(walk: Walk) -> AsyncGenerator[Page[Raw], None]:
    """Every page of the walk, records not yielded before, until its chain is complete.

    The caller checks what remains to check at the end (``Listing._check_complete``).
    """
    spec = walk.spec
    params = dict(spec.request.params)
    if spec.key_field is not None and spec.limit < 2:
        # A page of one record cannot overlap its neighbour, so a deletion between two
        # reads would pass unseen: the walk reads two records a page (the same records).
        params["limit"] = "2"
    await walk.take_slot(wait=True)
    # The first page's errors are raised as they are: nothing was yielded yet.
    first = await walk.fetch_page(spec.request.url, params, spec.offset)
    walk.give_slot()
    walk.first_total = first.total_records
    keys = walk.first_keys = walk.keys_of(first)
    # A server may clamp the limit: step by what it actually gave.
    step = min(first.limit, first.received) or first.limit
    template = (spec.request.url, dict(params))
    if first.next is not None:
        # The server's own next link is the template: its parameters as it gives them.
        url, params = link_request(first.next, spec.request.url)
        link_offset = _int_or_none(params.get("offset"))
        if link_offset is not None and link_offset > first.offset:
            params.setdefault("limit", str(first.limit))
            template, step = (url, params), link_offset - first.offset
    # A page of one record cannot overlap its neighbour: such a walk is judged by
    # totalRecords alone, as a walk without keys is.
    keyed = spec.key_field is not None and step >= 2
    coverage = Coverage(step, front_only=spec.grows_at_front, keyed=keyed)
    coverage.start(first, keys)
    walk.coverage = coverage
    yield walk.fresh(first, keys)
    if coverage.complete:
        return
    walker = _Walker(walk, coverage, template, step, first)
    async for page in walker.pages():
        yield page


class _Walker:
    """The pages after the first: planned, fetched a window ahead, judged in order."""

    def __init__(
        self,
        walk: Walk,
        coverage: Coverage,
        template: tuple[str, dict[str, str]],
        step: int,
        first: Page[Raw],
    ) -> None:
        self.walk = walk
        self.coverage = coverage
        self.template = template
        self.step = step
        self.total = first.total_records
        window = walk.spec.window
        self.window_max = window
        # Unknown total: speculate, a window of half the pages read so far (at least 2),
        # so that the pages fetched past the end cost at most half the walk.
        self.window = window if self.total is not None else min(2, window)
        self.full_pages = 1
        # Pages tile the listing while totals can prove they meet (without keys, nothing
        # else can be done); otherwise each overlaps the one before it by a record.
        self.tiled = coverage.totals_prove or not coverage.keyed
        self.next_offset = first.offset + step if self.tiled else first.offset + step - 1
        self.replan = False  # plan from the chain's end when nothing is pending
        self.pending: collections.deque[_Planned] = collections.deque()
        self.idle = 0  # pages judged in a row that proved nothing new
        self.consumed = 1  # planned pages taken (the first one included)
        self.repairs = 0  # repair pages read
        self.links: dict[Hashable, int] = {}  # next links received -> the offset that sent it
        if first.next is not None:
            url, params = link_request(first.next, walk.spec.request.url)
            self.links[link_identity(url, params)] = first.offset

    # -- planning --------------------------------------------------------------------

    async def fill(self) -> None:
        """Launch planned pages up to the window (one at least when none is pending)."""
        walk, coverage = self.walk, self.coverage
        if self.tiled and coverage.keyed and not coverage.quiet:
            # The listing changes: from now on each page overlaps the one before it.
            self.tiled = False
            self.next_offset -= 1
        if not self.pending:
            if self.replan and coverage.keyed:
                # Nothing planned: plan from where the chain ends now (after a page
                # covered by the chain, where that page says it is: further on).
                end = coverage.place
                self.next_offset = end + 1 if self.tiled else end
            self.replan = True
            await walk.take_slot(wait=True)
            self.plan()
        while len(self.pending) < self.window:
            # With a total, plan only pages that can hold a record (past the one they
            # overlap, for a page that overlaps the one before it).
            if self.total is not None and self.next_offset + (not self.tiled) >= self.total:
                break
            if not await walk.take_slot(wait=False):
                break
            self.plan()

    def plan(self) -> None:
        offset = self.next_offset
        self.pending.append(_Planned(offset, self.walk.launch(self.template, offset)))
        self.next_offset += self.step if self.tiled else self.step - 1

    # -- the walk --------------------------------------------------------------------

    async def pages(self) -> AsyncGenerator[Page[Raw], None]:
        walk, coverage = self.walk, self.coverage
        while not coverage.complete:
            await self.fill()
            planned = self.pending[0]
            page = await self.result(planned.offset, planned.task)
            keys = walk.keys_of(page)
            if not planned.judged and self.window_max == 1:
                self.check_link(page)  # following links one by one: a loop would be endless
            planned.judged = True
            verdict = coverage.judge(page, keys)
            if verdict.kind == "break":
                # Read where the chain's end now is, then judge this page again (each
                # repair extends the chain: the page meets it, or the chain passes it).
                async for repaired in self.repair(verdict):
                    yield repaired
                continue
            self.pending.popleft()
            self.consumed += 1
            self.progress(verdict, keys)
            self.learn(page)
            yield walk.accept(page, keys)
            walk.give_slot()
        for planned in self.pending:
            planned.task.cancel()

    async def result(self, offset: int, task: asyncio.Task[Page[Raw]]) -> Page[Raw]:
        try:
            return await task
        except RequestError as error:
            raise self.walk.failed(offset, error) from error

    def learn(self, page: Page[Raw]) -> None:
        """What a page says of the listing: its total, else whether it was full.

        (A page that ends the listing needs no look: judged in order, it completes the
        walk; a page behind the walk's place is never the last.)
        """
        if page.total_records is not None:
            self.total = page.total_records
            self.window = self.window_max
        elif page.received >= self.step:
            self.full_pages += 1
            self.window = min(max(2, self.full_pages // 2), self.window_max)

    def progress(self, verdict: Verdict, keys: list[Hashable]) -> None:
        coverage = self.coverage
        # A page of a walk without keys extends the chain by its place alone: never idle.
        if verdict.kind == "extend" and (
            verdict.start < len(keys) or not coverage.keyed or coverage.complete
        ):
            self.idle = 0
            return
        self.idle += 1
        if self.idle > 2 * self.window_max + 2 * MAX_SEEKS:
            raise self.lost(f"{self.idle} pages in a row proved nothing new")

    def check_link(self, page: Page[Raw]) -> None:
        """The same next link sent for two pages: a walk that followed links would loop."""
        if page.next is None:
            return
        url, params = link_request(page.next, self.template[0])
        identity = link_identity(url, params)
        sender = self.links.setdefault(identity, page.offset)
        if sender != page.offset:
            label = self.walk.spec.label
            raise RepeatedPageLinkError(
                f"{label}: the server sent the link to offset "
                f"{params.get('offset', '?')} twice; stopping instead of looping",
                listing=label,
                offset=_int_or_none(params.get("offset")),
            )

    async def repair(self, verdict: Verdict) -> AsyncGenerator[Page[Raw], None]:
        """Read pages where the chain's end should be until one holds it (and extends it)."""
        walk, coverage, step = self.walk, self.coverage, self.step
        margin = max(0, min(max(1, step // 8), step - 2))
        offset = max(0, verdict.seek - margin)
        for _ in range(MAX_SEEKS):
            self.repairs += 1
            if self.repairs > 2 * (self.consumed + MAX_SEEKS):
                raise self.lost(
                    f"{self.repairs} repair pages for {self.consumed} pages of the walk"
                )
            page = await self.result(offset, walk.launch(self.template, offset))
            keys = walk.keys_of(page)
            verdict = coverage.judge(page, keys)
            self.progress(verdict, keys)
            yield walk.accept(page, keys)
            if verdict.kind == "extend":
                return
            if verdict.kind == "covered":  # the chain's end is further on
                offset = max(0, verdict.seek - margin)
            else:  # the chain's end is before this page: end the next one here
                offset = max(0, offset - (step - 1))
        raise self.lost(f"{MAX_SEEKS} pages read in a row did not hold where it had got to")

    def lost(self, why: str) -> IncompleteListingError:
        label = self.walk.spec.label
        return IncompleteListingError(
            f"{label}: the listing changed faster than the walk could follow ({why}); "
            "it cannot vouch for what it missed. Walk it again.",
            listing=label,
            offset=self.coverage.end_offset + 1,
        )
