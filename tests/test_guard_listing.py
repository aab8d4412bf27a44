"""The listing mechanisms mutation testing found unguarded (see docs/mutation.md).

Most walk a :class:`~tests.shelf.Shelf` (an in-memory listing read by the real walk, every
change and every answer order scripted), for each kind of listing a walk meets: results
with totals, results without, schedules (no paging block). The requests a walk makes are
part of what is checked: a repair read in the wrong place costs requests before it costs
records.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace
from typing import Any

import pytest

from mettl_async import (
    ConfigurationError,
    IncompleteListingError,
    PaginationError,
    RepeatedPageLinkError,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from mettl_async._coverage import Coverage, Verdict
from mettl_async._paging import Page, RawRecord
from mettl_async._walk import REPORT_EVERY, ScheduleWalk, WalkProgress, schedule_key
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

from .shelf import KINDS, URL, Shelf, check
from .test_walk_changes import when

L = 10


def shelf(kind: str, size: int, hook: Any = None) -> Shelf:
    return Shelf(size, hook=hook, **KINDS[kind])


def step_of(kind: str, page_size: int = L) -> int:
    """How far apart pages start before any change: tiled with totals, else overlapping."""
    return page_size if kind == "results with totals" else page_size - 1


# -- a page that fails for good ----------------------------------------------------------


class Failing(Shelf):
    """A shelf whose page at ``offset`` fails after ``attempts`` attempts."""

    def __init__(self, size: int, *, offset: int, attempts: int, **kinds: Any) -> None:
        super().__init__(size, **kinds)
        self.failing, self.attempts = offset, attempts

    async def fetch(self, request: Any, decode: Any) -> dict[str, Any]:
        if int(request.params["offset"]) == self.failing:
            raise ServerError("Service unavailable", code="E503", attempts=self.attempts)
        return await super().fetch(request, decode)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("attempts", "said"), [(1, "after 1 attempt ("), (3, "after 3 attempts (")]
)
async def test_a_page_failing_for_good_names_the_listing_the_page_and_its_attempts(
    kind: str, attempts: int, said: str
) -> None:
    """The error says which listing, which page and how often it was tried; its cause is
    the request's own error (what the command line reports as the reason)."""
    offset = 2 * step_of(kind)
    listing = Failing(6 * L, offset=offset, attempts=attempts, **KINDS[kind])
    seen: list[str] = []
    with pytest.raises(IncompleteListingError) as caught:
        async for record in listing.listing(L, window=1):
            seen.append(record.key)  # type: ignore[arg-type]
    error = caught.value
    assert error.listing == "the shelf"
    assert error.offset == offset
    assert str(error).startswith(f"the shelf: the page at offset {offset} failed {said}")
    assert isinstance(error.__cause__, ServerError)
    assert error.__cause__.attempts == attempts
    # What the pages before it held, nothing after (overlapping pages reach one further).
    assert seen == listing.records[: offset + L - step_of(kind)]


# -- listings that change faster than the walk can follow ---------------------------------


async def test_a_listing_running_away_names_where_the_walk_had_proven_it_to() -> None:
    """Twenty arrivals before every read: the repair pages never catch up. The error names
    the listing and the offset just past the last record the walk could prove (the first
    page's ten), and tells the user what to do."""

    async def flood(shelf: Shelf, number: int, offset: int) -> None:
        if number:
            shelf.arrive(2 * L)

    listing = Shelf(6 * L, hook=flood, totals=False)
    with pytest.raises(IncompleteListingError) as caught:
        await asyncio.wait_for(listing.walk(L, window=1), 60)
    error = caught.value
    assert (error.listing, error.offset) == ("the shelf", L)
    assert str(error) == (
        "the shelf: the listing changed faster than the walk could follow "
        "(19 repair pages for 1 pages of the walk); it cannot vouch for what it missed. "
        "Walk it again."
    )
    # Each repair page is read one page back from the last (the chain's end is before it),
    # or from the listing's start: never a request past what the walk had proven.
    assert listing.requests[:4] == [0, L - 1, L - 3, 0]


async def test_pages_that_keep_proving_nothing_new_end_the_walk() -> None:
    """Nine arrivals before every read of tiled pages of ten: each page holds one new record
    at most, then none; after 2 x window + 2 x 8 pages in a row that proved nothing, the
    walk gives up instead of reading forever."""

    async def nine_more(shelf: Shelf, number: int, offset: int) -> None:
        if number:
            shelf.arrive(L - 1)

    listing = Shelf(6 * L, hook=nine_more)
    with pytest.raises(IncompleteListingError) as caught:
        await asyncio.wait_for(listing.walk(L, window=1), 60)
    error = caught.value
    assert "(19 pages in a row proved nothing new)" in str(error)
    assert error.listing == "the shelf"
    assert error.offset == len(listing.requests) * (L - 1) + 2  # where its end was last seen


@pytest.mark.parametrize("kind", KINDS)
async def test_repair_pages_that_never_find_the_walks_place_end_it_after_eight(kind: str) -> None:
    """Ten records deleted at the front before every read, once the walk is 120 records in:
    each repair page, one page further back, finds the walk's place gone further back
    still. After eight in a row the walk says so (a walk of its own, not a wait forever)."""

    async def sinking(shelf: Shelf, number: int, offset: int) -> None:
        if number >= 12:
            shelf.delete_at(*range(L))

    listing = shelf(kind, 400, sinking)
    with pytest.raises(IncompleteListingError) as caught:
        await asyncio.wait_for(listing.walk(L, window=1), 60)
    error = caught.value
    assert "(8 pages read in a row did not hold where it had got to)" in str(error)
    step = step_of(kind)
    # Just past the last record of the twelve pages read before the deletions began.
    assert (error.listing, error.offset) == ("the shelf", 11 * step + L)
    assert listing.requests[:13] == [n * step for n in range(13)]
    # The first repair page is placed where the walk's place now is, a record of margin
    # before it (with totals: the page at 120 showed ten fewer records, so ten further
    # back); each next one ends where the one before began (a page back, less one).
    first = 108 if kind == "results with totals" else 106
    assert listing.requests[13:] == [first - (L - 1) * n for n in range(8)]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_repair_page_failing_for_good_names_its_own_offset(kind: str) -> None:
    """Two deletions before the third page is read: the repair page read in their wake fails
    after its retries. The error names that page, not the one that broke the chain."""
    second, third = 2 * step_of(kind), 3 * step_of(kind)
    repair = third - 4 if kind == "results with totals" else third - 2
    listing = Failing(
        6 * L,
        offset=repair,
        attempts=2,
        hook=when(third, second, lambda s: s.delete_at(3, 4)),
        **KINDS[kind],
    )
    with pytest.raises(IncompleteListingError) as caught:
        await listing.walk(L, window=1)
    assert caught.value.offset == repair
    assert listing.requests == [0, step_of(kind), second, third]  # the repair never answered


# -- where repair pages are read, at every page size ----------------------------------------

#: (kind, page size, deletions, the offsets requested). Records deleted at the front before
#: the fourth page is read (the third read already), pages read one at a time. Small pages
#: leave the repair little room: a page of two has no margin before the place it looks for
#: (it must hold that record and the one after it), pages of three to fifteen one record,
#: larger ones an eighth of a page.
REPAIRS = [
    ("results with totals", 2, 2, [0, 2, 4, 6, 3, 5, 4, 5, 7, 8]),
    ("results with totals", 2, 5, [0, 2, 4, 6, 0, 5, 4, 3, 2, 1, 5, 4, 3, 2, 5, 4, 3, 5, 4, 5]),
    ("results with totals", 3, 2, [0, 3, 6, 9, 5, 7, 11, 13]),
    ("results with totals", 3, 5, [0, 3, 6, 9, 2, 7, 5, 3, 7, 5, 7, 11]),
    ("results with totals", 4, 2, [0, 4, 8, 12, 8, 10, 15, 18]),
    ("results with totals", 4, 5, [0, 4, 8, 12, 5, 10, 7, 10, 15]),
    ("results with totals", 17, 2, [0, 17, 34, 51, 46, 67, 83]),
    ("results with totals", 17, 5, [0, 17, 34, 51, 43, 67, 83]),
    ("results without totals", 2, 2, [0, 1, 2, 3, 2, 1, 2, 4, 5, 6, 7, 8]),
    ("results without totals", 2, 5, [0, 1, 2, 3, 2, 1, 0, 2, 1, 2, 4, 5]),
    ("results without totals", 3, 2, [0, 2, 4, 6, 4, 8, 10, 12, 14]),
    ("results without totals", 3, 5, [0, 2, 4, 6, 4, 2, 0, 4, 2, 4, 8, 10]),
    ("results without totals", 4, 2, [0, 3, 6, 9, 7, 12, 15, 18]),
    ("results without totals", 4, 5, [0, 3, 6, 9, 7, 4, 7, 12, 15]),
    ("results without totals", 17, 2, [0, 16, 32, 48, 45, 64, 80, 96]),
    ("results without totals", 17, 5, [0, 16, 32, 48, 45, 29, 45, 64, 80]),
    ("schedules", 2, 2, [0, 1, 2, 3, 2, 1, 2, 4, 5, 6, 7, 8, 9]),
    ("schedules", 2, 5, [0, 1, 2, 3, 2, 1, 0, 2, 1, 2, 4, 5, 6]),
    ("schedules", 3, 2, [0, 2, 4, 6, 4, 8, 10, 12, 14]),
    ("schedules", 3, 5, [0, 2, 4, 6, 4, 2, 0, 4, 2, 4, 8, 10, 12]),
    ("schedules", 4, 2, [0, 3, 6, 9, 7, 12, 15, 18, 21]),
    ("schedules", 4, 5, [0, 3, 6, 9, 7, 4, 7, 12, 15, 18]),
    ("schedules", 17, 2, [0, 16, 32, 48, 45, 64, 80, 96]),
    ("schedules", 17, 5, [0, 16, 32, 48, 45, 29, 45, 64, 80, 96]),
]


@pytest.mark.parametrize(("kind", "size", "deleted", "requests"), REPAIRS)
async def test_repair_pages_are_read_where_the_walks_place_moved_to(
    kind: str, size: int, deleted: int, requests: list[int]
) -> None:
    """Every record that stayed, once, for exactly the requests listed: the repair reads
    where the walk's place went (back by the deletions the totals show, else a record
    back), then a page further back each time it is not there yet, and resumes from the
    page that holds it."""
    step = step_of(kind, size)
    listing = shelf(
        kind, 6 * size, when(3 * step, 2 * step, lambda s: s.delete_at(*range(deleted)))
    )
    keys = await listing.walk(size, window=1)
    check(listing, keys)
    assert listing.requests == requests


# -- a burst of arrivals, pages read one at a time -------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("burst", [L + 1, 2 * L, 3 * L])
async def test_a_burst_of_arrivals_read_one_page_at_a_time_costs_nothing(
    kind: str, burst: int
) -> None:
    """More than a page of records arrives at the front once, just before the fourth page
    is read: that page holds only records the walk has, before its place (now ``burst``
    further on). The walk goes on from there, reading no page twice, and ends with every
    record (it used to read the same page again until it gave up)."""
    step = step_of(kind)
    listing = shelf(kind, 6 * L, when(3 * step, None, lambda s: s.arrive(burst)))
    keys = await listing.walk(L, window=1)
    check(listing, keys)
    place = 3 * L - 1 if kind == "results with totals" else 3 * step  # the walk's last record
    assert listing.requests[:5] == [0, step, 2 * step, 3 * step, place + burst]
    assert len(set(listing.requests)) == len(listing.requests)


# -- a server repeating its next link ---------------------------------------------------------


class Looping(Shelf):
    """A shelf whose every page links to the same next page (``link``: its query)."""

    def __init__(self, size: int, link: str) -> None:
        super().__init__(size, totals=False)
        self.link = link

    async def fetch(self, request: Any, decode: Any) -> dict[str, Any]:
        envelope = await super().fetch(request, decode)
        envelope["paging"]["next"] = f"{URL}?{self.link}"
        return envelope


@pytest.mark.parametrize(
    ("link", "offset", "said"), [("limit=10&offset=10", 10, "10"), ("limit=10", None, "?")]
)
async def test_the_same_next_link_twice_names_the_listing_and_the_offset_it_links_to(
    link: str, offset: int | None, said: str
) -> None:
    """Following links one by one, the second page links where the first did: the error
    names the offset linked to ("?" for a link without one) instead of looping."""
    listing = Looping(6 * L, link)
    with pytest.raises(RepeatedPageLinkError) as caught:
        await listing.walk(L, window=1)
    error = caught.value
    assert (error.listing, error.offset) == ("the shelf", offset)
    assert str(error) == (
        f"the shelf: the server sent the link to offset {said} twice; stopping instead of looping"
    )
    assert len(listing.requests) == 2


# -- what a walk of a listing that does not change costs ----------------------------------------

#: Requests a walk makes with a window of eight pages, by listing size. With totals, the
#: pages that can hold a record and no more. Without, it speculates: two pages ahead at
#: first, then half as many pages as it has read full (up to the window), so that pages
#: fetched past the end cost at most half the walk; a page that is not full (or a paging
#: block without a next link) ends it.
COSTS = {
    "results with totals": [(0, 1), (10, 1), (28, 3), (61, 7), (100, 10), (250, 25)],
    "results without totals": [(0, 1), (10, 1), (28, 3), (61, 7), (100, 15), (250, 30)],
    "schedules": [(0, 1), (10, 3), (28, 5), (61, 7), (100, 15), (250, 30)],
}


@pytest.mark.parametrize(
    ("kind", "size", "requests"), [(k, *c) for k, v in COSTS.items() for c in v]
)
async def test_a_listing_that_does_not_change_costs_what_it_should(
    kind: str, size: int, requests: int
) -> None:
    listing = shelf(kind, size)
    assert await listing.walk(L, window=8) == listing.records
    assert len(listing.requests) == requests


@pytest.mark.parametrize("kind", KINDS)
async def test_pages_of_one_record_are_walked_complete(kind: str) -> None:
    """A page of one record cannot overlap the one before it: the walk reads two a page."""
    listing = shelf(kind, 5)
    assert await listing.walk(1, window=4) == listing.records


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", [1, 4])
@pytest.mark.parametrize(("offset", "position"), [(5, 4), (6, 0), (7, 6)])
async def test_a_deletion_during_a_walk_of_pages_of_one_loses_nothing(
    kind: str, window: int, offset: int, position: int
) -> None:
    """Asked for pages of one record, without totals too: a record deleted before a later
    page is read costs no other record (each offset read alone lost the one after it)."""
    listing = shelf(kind, 12, when(offset, None, lambda s: s.delete_at(position)))
    check(listing, await listing.walk(1, window=window))


class IgnoringOffset(Shelf):
    """A server answering every page from the ``pages``-th one on with the first one."""

    def __init__(self, size: int, *, pages: int, **kinds: Any) -> None:
        super().__init__(size, **kinds)
        self.pages = pages
        self.asked: list[int] = []  # the offsets asked for

    async def fetch(self, request: Any, decode: Any) -> dict[str, Any]:
        self.asked.append(int(request.params["offset"]))
        if len(self.requests) >= self.pages:
            request.params["offset"] = "0"
        return await super().fetch(request, decode)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pages", [1, 2])
async def test_a_server_ignoring_offset_is_named_after_three_pages_repeating_the_first(
    kind: str, pages: int
) -> None:
    """The first page again at three offsets in a row (from the second page on, or after
    a page that held new records): the walk stops there, naming the listing and the third
    of them, rather than reading the first page forever."""
    listing = IgnoringOffset(6 * L, pages=pages, **KINDS[kind])
    with pytest.raises(PaginationError) as caught:
        await listing.walk(L, window=2)
    error = caught.value
    third = listing.asked[pages + 2]  # the third page answered with the first one
    assert type(error) is PaginationError
    assert (error.listing, error.offset) == ("the shelf", third)
    assert str(error) == (
        f"the shelf: 3 pages in a row up to offset {third} held only records already seen; "
        "the server seems to ignore offset"
    )


async def test_a_listing_growing_a_page_per_read_is_not_a_server_ignoring_offset() -> None:
    """Ten records arrive before every read of tiled pages of ten: the pages at 10, 20 and
    30 all hold the first page's records, as a server ignoring offset would answer. Their
    totals (70, 80, 90) show the records moved there (the listing's first page now holds
    the arrivals): the walk names the listing's pace, not the server."""

    async def ten_more(shelf: Shelf, number: int, offset: int) -> None:
        if number:
            shelf.arrive(L)

    listing = Shelf(6 * L, hook=ten_more)
    with pytest.raises(IncompleteListingError, match="changed faster than the walk could follow"):
        await asyncio.wait_for(listing.walk(L, window=4), 60)


# -- the typed account walk ---------------------------------------------------------------------


async def test_every_result_typed_is_every_result_raw() -> None:
    """``async for schedule, result in iter_all_results()`` (pages decoded straight into
    models) yields the candidates the raw walk yields, each once, as typed models."""
    account = FakeAccount([0, 3, 12], seed=3)
    async with FakeMettlServer(FakeMettl(account=account)) as server, server.client() as mettl:
        typed = [(s.access_key, r.email) async for s, r in mettl.iter_all_results(page_size=5)]
        raw = [
            (s["accessKey"], r["email"]) async for s, r in mettl.iter_all_results(page_size=5).raw()
        ]
    assert len(typed) == 15
    assert sorted(typed) == sorted(raw)


# -- the chain's rules, where keys do not sort as the listing does --------------------------------


def test_a_page_meets_the_chain_at_its_latest_record_not_its_greatest_key() -> None:
    """Emails do not sort in listing order: among the chain's records on a page, the one
    read last decides where the page meets the chain (here "w", not "y")."""
    chain = Coverage(4, front_only=True, keyed=True)
    first = Page(list("zyxw"), 0, 4, None, "next", received=4, paged=True)
    chain.start(first, list("zyxw"))
    page = Page(list("yxwv"), 1, 4, None, "next", received=4, paged=True)
    assert chain.judge(page, list("yxwv")) == Verdict("extend", 3)  # only "v" is new
    assert chain.end_offset == 4


def test_the_chains_end_seen_elsewhere_is_a_change_even_when_the_total_is_not() -> None:
    """Two arrivals and two deletions between reads: the total is the same, but the
    chain's last record is seen two places later. From then on totals prove nothing
    (they hide changes that cancel out): a page not meeting the chain is a break."""
    chain = Coverage(4, front_only=True, keyed=True)
    chain.start(Page(list("abcd"), 0, 4, 20, "next", received=4, paged=True), list("abcd"))
    shifted = Page(list("cdef"), 4, 4, 20, "next", received=4, paged=True)
    assert chain.judge(shifted, list("cdef")) == Verdict("extend", 2)
    assert not chain.quiet
    later = Page(list("ghij"), 8, 4, 20, "next", received=4, paged=True)
    assert chain.judge(later, list("ghij")).kind == "break"


# ============================================================================================
# The schedule walk the export and the sync share (``_walk``): which schedules it walks, what
# it says of them before their first page, and what it counts. (Mutation testing's listing
# group; kept apart from the walk's tests above.)
# ============================================================================================


@pytest.fixture
async def account_server() -> Any:
    account = FakeAccount([4, 3, 5], seed=11)
    async with FakeMettlServer(FakeMettl(account=account)) as server:
        yield server


async def walked(walk: ScheduleWalk, **options: Any) -> list[tuple[str, int]]:
    """(schedule key, records) of every page of ``walk``."""
    pages = walk.pages(**options)
    async with contextlib.aclosing(pages):
        return [(key, len(item.page.items)) async for key, item in pages]


async def test_a_walk_of_access_keys_walks_each_once_but_those_skipped(
    account_server: Any,
) -> None:
    keys = [s.access_key for s in account_server.fake.account.schedules]
    marked: list[str] = []

    async def mark(key: str) -> None:
        marked.append(key)

    async with account_server.client() as client:
        walk = ScheduleWalk(client, access_keys=[keys[2], keys[0], keys[2]], before_schedule=mark)
        pages = await walked(walk, skip={keys[0]})
    assert marked == [keys[2]]  # before its first page; the skipped one not at all
    assert pages == [(keys[2], 5)]
    assert walk.progress.schedules_total == 2  # each key once, the skipped one too


async def test_a_walk_of_the_account_says_each_schedule_before_its_pages_and_counts(
    account_server: Any,
) -> None:
    keys = [s.access_key for s in account_server.fake.account.schedules]
    marked: list[str] = []

    async def mark(key: str) -> None:
        assert key not in {k for k, _ in seen}  # before any page of its own
        marked.append(key)

    seen: list[tuple[str, int]] = []
    async with account_server.client() as client:
        walk = ScheduleWalk(client, before_schedule=mark)
        assert walk.progress.records == 0  # a progress of its own when given none
        async with contextlib.aclosing(walk.pages(skip={keys[1]})) as pages:
            async for key, item in pages:
                seen.append((key, len(item.page.items)))
        quiet = ScheduleWalk(client, learn_totals=False)
        await walked(quiet)
    assert marked == [keys[0], keys[2]]
    assert sorted(seen) == sorted([(keys[0], 4), (keys[2], 5)])
    progress = walk.progress
    assert progress.schedules_total == 3  # listed, the skipped one too
    assert (progress.schedules_begun, progress.records_reported) == (2, 9)
    assert quiet.progress.schedules_begun == 0
    assert quiet.progress.schedules_total == 3


def test_a_walked_schedules_key_is_its_listing_key_else_its_access_key() -> None:
    assert schedule_key(RawRecord(data={"accessKey": "from-data"}, key="listed")) == "listed"
    assert schedule_key(RawRecord(data={"accessKey": "from-data"})) == "from-data"


async def test_progress_goes_to_on_progress_at_most_every_report_every_seconds(
    account_server: Any,
) -> None:
    reports: list[int] = []
    async with account_server.client() as client:
        walk = ScheduleWalk(client, on_progress=lambda p: reports.append(p.records))
        start = time.monotonic()
        walk.report(start + REPORT_EVERY)  # REPORT_EVERY since the walk was made: a report
        walk.report(start + REPORT_EVERY + 0.01)  # too soon after it
        walk.report(start + 2 * REPORT_EVERY + 0.01)
    assert reports == [0, 0]


def test_an_eta_at_the_runs_average_or_a_rate_given() -> None:
    progress = WalkProgress(started=time.monotonic() - 0.5)
    progress.schedules_total, progress.schedules_begun, progress.records_reported = 1, 1, 100
    progress.records = 50
    eta = progress.eta()
    assert eta is not None
    assert 0 < eta <= 0.5 + 1  # 50 left at 100 a second, more or less (the clock moved)
    assert progress.eta(rate=0.5) == 100.0  # 50 left at half a record a second
    progress.started = time.monotonic() + 100  # no time has passed: no rate yet
    assert progress.eta() is None


async def test_an_account_walk_whose_schedule_listing_fails_raises_its_error(
    account_server: Any,
) -> None:
    """The schedules cannot be listed (503s past the retries): the walk raises that error,
    not a failure of its own, and yields nothing."""
    account_server.fake.add_fault("E503", times=100, path="/schedules", params={"offset": "0"})
    retry = RetryPolicy(attempts=2, instant=True, learn_rate=False)
    async with account_server.client(retry=retry) as client:
        seen = []
        with pytest.raises(ServerError):
            async for pair in client.iter_all_results().raw():
                seen.append(pair)
    assert seen == []


async def test_a_schedule_that_fails_in_an_account_walk_is_named_with_its_name() -> None:
    """Its second page failing for good: the walk's error names the schedule by its access
    key and its name."""
    fake = FakeMettl(account=FakeAccount([4, 101], seed=11))
    schedule = fake.account.schedules[1]
    path = f"/schedules/{schedule.access_key}/candidates"
    fake.add_fault("E503", times=100, path=path, params={"offset": "100"})
    retry = RetryPolicy(attempts=2, instant=True, learn_rate=False)
    async with FakeMettlServer(fake) as server, server.client(retry=retry) as client:
        with pytest.raises(IncompleteListingError) as caught:
            async for _ in client.iter_all_results().raw():
                pass
    assert caught.value.listing == f"schedule {schedule.access_key} ({schedule.name})"


async def test_a_schedule_walk_asks_for_recommendations_and_essays_only_when_told(
    account_server: Any,
) -> None:
    async def records(**options: bool) -> list[bytes]:
        async with account_server.client() as client:
            pages = ScheduleWalk(client).pages(concurrency=1, **options)
            async with contextlib.aclosing(pages):
                return [record.json async for _, item in pages for record in item.page.items]

    plain = await records()
    assert len(plain) == 12
    assert not any(b'"recommendation"' in r or b"Long Answer" in r for r in plain)
    assert any(b'"recommendation"' in r for r in await records(include_recommendation=True))
    assert any(b"Long Answer" in r for r in await records(include_essay_responses=True))


# ============================================================================================
# The listing group's survivors of the next round (mutation testing, docs/mutation.md): what
# a listing whose totals cannot be trusted says, word for word (the message is what a user
# reads), the walk's clock and the schedule listing's total, and the options an account walk
# is checked for and hands on.
# ============================================================================================


class Overcounting(Shelf):
    """A shelf whose every page reports ``extra`` records more than it holds."""

    def __init__(self, size: int, *, extra: int, **kinds: Any) -> None:
        super().__init__(size, **kinds)
        self.extra = extra

    async def fetch(self, request: Any, decode: Any) -> dict[str, Any]:
        envelope = await super().fetch(request, decode)
        envelope["paging"]["totalRecords"] += self.extra
        return envelope


@pytest.mark.parametrize("window", [1, 4])
async def test_a_total_the_walk_never_reached_says_the_server_skipped_some(window: int) -> None:
    """The listing did not change, yet held fewer records than its total: the error says
    both counts, names the listing and no page (no page is to blame)."""
    shelf = Overcounting(3 * L, extra=5)
    with pytest.raises(IncompleteListingError) as caught:
        async for _ in shelf.listing(L, window):
            pass
    error = caught.value
    assert str(error) == (
        "the shelf: the server reported 35 records but the walk found 30, and the listing "
        "did not change under the walk: the server skipped some. Walk it again."
    )
    assert error.listing == "the shelf"
    assert error.offset is None


async def test_a_listing_growing_under_another_sort_says_from_what_to_what() -> None:
    """Not Mettl's default sort (new records then land anywhere): two arrivals mid-walk make
    it incomplete, and the error says how it grew and what to do."""

    async def arrive(shelf: Shelf, number: int, offset: int) -> None:
        if number == 1:
            shelf.arrive(2)

    shelf = Shelf(3 * L, hook=arrive)
    with pytest.raises(IncompleteListingError) as caught:
        async for _ in shelf.listing(L, 1, front=False):
            pass
    error = caught.value
    assert str(error) == (
        "the shelf: the listing went from 30 to 32 records during the walk; under this sort "
        "a record inserted mid-walk can push another past a page already fetched. Walk it "
        "again, or use the default sort (newest first)."
    )
    assert error.listing == "the shelf"
    assert error.offset is None


class Clock:
    """``time.monotonic`` for the walk's progress: the times a test sets, nothing else."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ShelfClient:
    """What a ScheduleWalk uses of a client: its counters, and its schedules on a shelf."""

    def __init__(self, shelf: Shelf) -> None:
        self.shelf = shelf
        self.stats = SimpleNamespace(requests=0, retries=0)

    def iter_schedules(self) -> Any:
        return self.shelf.listing(L, 1)


def schedule_shelf(size: int) -> Shelf:
    """A schedule listing whose pages give a total (article 11's fake gives none)."""
    return Shelf(size, items_key="schedules", key_field="accessKey")


def test_a_run_timed_at_zero_seconds_has_no_eta_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(50.0)
    monkeypatch.setattr(time, "monotonic", clock)
    progress = WalkProgress(started=50.0)
    progress.schedules_total, progress.schedules_begun, progress.records_reported = 1, 1, 100
    progress.records = 10
    assert progress.eta() is None  # no rate yet, rather than a division by zero
    clock.now = 52.0
    assert progress.eta() == 18.0  # 90 left at 5 a second


def test_a_report_without_a_time_reads_the_clock_and_comes_at_report_every_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(0.0)
    monkeypatch.setattr(time, "monotonic", clock)
    reports: list[float] = []
    client: Any = ShelfClient(Shelf(0))
    walk = ScheduleWalk(client, on_progress=lambda _: reports.append(clock.now))
    walk.report(REPORT_EVERY)  # REPORT_EVERY exactly since the walk was made
    assert len(reports) == 1
    clock.now = REPORT_EVERY + 0.1
    walk.report()  # the clock says too soon
    assert len(reports) == 1
    clock.now = 1.0
    walk.report()
    assert reports == [0.0, 1.0]


async def test_the_schedule_listings_total_is_what_the_walk_reports_before_it_ends() -> None:
    shelf = schedule_shelf(25)
    client: Any = ShelfClient(shelf)
    walk = ScheduleWalk(client)
    reported, keys = [], []
    async for schedule in walk.schedules():
        reported.append(walk.progress.schedules_reported)
        keys.append(schedule_key(schedule))  # type: ignore[arg-type]
    assert keys == shelf.records
    assert reported == [25] * 25  # from the first page on
    assert walk.progress.schedules_total == 25
    client = ShelfClient(schedule_shelf(25))
    quiet = ScheduleWalk(client, learn_totals=False)
    assert len([schedule async for schedule in quiet.schedules()]) == 25
    assert quiet.progress.schedules_reported is None


async def test_a_schedule_walk_hands_its_options_to_the_account_walk() -> None:
    """What ``pages`` is told (how many schedules at once, what to include) is what the
    client's account walk is asked for."""
    asked: dict[str, Any] = {}

    async def no_pages() -> Any:
        return
        yield

    class Recording(ShelfClient):
        def iter_all_results(self, **options: Any) -> Any:
            asked.update(options)
            return SimpleNamespace(raw=lambda: SimpleNamespace(pages=no_pages))

    client: Any = Recording(Shelf(0))
    pages = ScheduleWalk(client).pages(concurrency=1, include_recommendation=True)
    assert [page async for page in pages] == []
    assert asked["concurrency"] == 1
    assert (asked["include_recommendation"], asked["include_essay_responses"]) == (True, False)


async def test_a_schedule_given_without_a_name_is_named_by_its_access_key_alone() -> None:
    fake = FakeMettl(account=FakeAccount([101], seed=11))
    schedule = fake.account.schedules[0]
    path = f"/schedules/{schedule.access_key}/candidates"
    fake.add_fault("E503", times=100, path=path, params={"offset": "100"})
    retry = RetryPolicy(attempts=2, instant=True, learn_rate=False)
    async with FakeMettlServer(fake) as server, server.client(retry=retry) as client:
        walk = client.iter_all_results(schedules=[{"accessKey": schedule.access_key}])
        with pytest.raises(IncompleteListingError) as caught:
            async for _ in walk.raw():
                pass
    assert caught.value.listing == f"schedule {schedule.access_key}"


@pytest.mark.parametrize("option", ["concurrency", "window"])
async def test_an_account_walk_checks_its_concurrency_and_window_when_built(option: str) -> None:
    fake = FakeMettl(account=FakeAccount([1], seed=11))
    async with FakeMettlServer(fake) as server, server.client() as client:
        with pytest.raises(ConfigurationError) as caught:
            client.iter_all_results(**{option: 0})
    assert str(caught.value) == "window must be >= 1 page, got 0"


async def test_an_access_key_that_is_no_path_segment_is_refused_by_its_name() -> None:
    """A schedule given as a mapping whose access key would name another endpoint: the walk
    raises the ValidationError naming ``access_key``, and sends nothing for it."""
    fake = FakeMettl(account=FakeAccount([1], seed=11))
    async with FakeMettlServer(fake) as server, server.client() as client:
        with pytest.raises(ValidationError) as caught:
            async for _ in client.iter_all_results(schedules=[{"accessKey": ".."}]).raw():
                pass
    assert [problem.path for problem in caught.value.problems] == ["access_key"]
