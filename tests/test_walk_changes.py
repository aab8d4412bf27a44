"""Walks of a listing that changes under them: every record that existed throughout, once.

Each test scripts a :class:`~tests.shelf.Shelf` (an in-memory listing the real
walk reads, without HTTP): when a page is read, and what arrives or is
deleted before. Records arriving at the front move the others to later
offsets, deletions move them to earlier ones, and pages read out of order then
leave a record between two pages (a gap) unless the walk notices and reads a
repair page. Every test here fails without the part of the walk it names.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from mettl_async import IncompleteListingError, PaginationError
from mettl_async._coverage import Coverage, Verdict
from mettl_async._paging import Page

from .shelf import KINDS, Shelf, check

L = 10  # page size of these tests
SIZE = 60


def shelf(kind: str, size: int = SIZE, hook: Any = None) -> Shelf:
    return Shelf(size, hook=hook, **KINDS[kind])


def when(offset: int, after: int | None, change: Callable[[Shelf], None]) -> Any:
    """A hook: the request for ``offset`` waits until the page at ``after`` was read,
    then makes ``change``; other requests are answered at once."""

    done = False

    async def hook(shelf: Shelf, number: int, requested: int) -> None:
        nonlocal done
        if requested == offset and not done:
            done = True
            if after is not None:
                await shelf.read(after)
            change(shelf)

    return hook


def second_boundary(kind: str) -> tuple[int, int]:
    """The offsets of the second and third pages after the first (tiled or overlapping)."""
    step = L if kind == "results with totals" else L - 1
    return 2 * step, 3 * step


# -- no change: as few requests as following the links --------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [0, 1, 9, 10, 28, 60, 61, 100])
async def test_a_listing_that_does_not_change_is_walked_in_order(kind: str, size: int) -> None:
    """Nothing changes: every record in order, once; with totals, exactly the requests
    following the links needs, without them at most half as many more (pages past the end)."""
    listing = shelf(kind, size)
    keys = await listing.walk(L, window=4)
    assert keys == listing.records
    sequential = listing.sequential_requests(L)
    if listing.totals:
        assert len(listing.requests) == sequential
    else:
        assert len(listing.requests) <= sequential + max(2, sequential // 2)


# -- deletions ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_records_deleted_before_a_page_is_read_leave_no_gap(kind: str) -> None:
    """Two records deleted before the third page is read (the second read already) move
    every record after them back: the walk reads where it had got to again."""
    second, third = second_boundary(kind)
    listing = shelf(kind, hook=when(third, second, lambda s: s.delete_at(3, 4)))
    keys = await listing.walk(L, window=8)
    check(listing, keys)
    # A repair page for the page read after the deletion; with totals, one for each page
    # read after it (their totals no longer prove anything, and they do not overlap);
    # without, pages overlapping by one record take one page more than the links.
    more = 3 if listing.totals else 2
    assert len(listing.requests) == listing.sequential_requests(L) + more


@pytest.mark.parametrize("kind", KINDS)
async def test_many_records_deleted_are_looked_for_further_back(kind: str) -> None:
    """Five deletions move the walk's place back further than its repair page reaches:
    it reads further back until it finds it."""
    second, third = second_boundary(kind)
    listing = shelf(kind, hook=when(third, second, lambda s: s.delete_at(0, 1, 2, 3, 4)))
    keys = await listing.walk(L, window=8)
    check(listing, keys)
    assert len(listing.requests) <= 2 * listing.sequential_requests(L)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_last_record_read_deleted_is_no_loss(kind: str) -> None:
    """The record a page should meet the chain at is deleted (and the one before it):
    the walk meets the chain at an earlier record instead."""
    second, third = second_boundary(kind)

    def delete_the_end(s: Shelf) -> None:
        end = (third - 1) if kind == "results with totals" else third
        s.delete(s.records[end], s.records[end - 1])

    listing = shelf(kind, hook=when(third, second, delete_the_end))
    keys = await listing.walk(L, window=8)
    check(listing, keys)
    assert len(listing.requests) <= listing.sequential_requests(L) + 3


@pytest.mark.parametrize("kind", KINDS)
async def test_the_last_records_deleted_before_the_last_page_end_the_walk(kind: str) -> None:
    """The listing's last records go before the last page is read: the walk ends on a page
    whose last record it had read already."""
    step = L if kind == "results with totals" else L - 1
    size, last = 3 * L, 2 * step

    def delete_the_tail(s: Shelf) -> None:
        s.delete(*s.records[last - 1 :])

    listing = shelf(kind, size, hook=when(last, last - step, delete_the_tail))
    keys = await listing.walk(L, window=1)
    check(listing, keys)
    assert len(listing.requests) <= listing.sequential_requests(L) + 3


@pytest.mark.parametrize("kind", KINDS)
async def test_everything_read_so_far_deleted_starts_again_from_the_front(kind: str) -> None:
    """Every record the walk had read is deleted: it finds the listing's start, which
    meets the chain where both begin, and goes on from there."""

    def delete_everything_read(s: Shelf) -> None:
        s.delete(*s.records[: 2 * L])

    listing = shelf(kind, 4 * L, hook=when(2 * (L - 1), L - 1, delete_everything_read))
    keys = await listing.walk(L, window=1)
    check(listing, keys)


# -- arrivals, pages read out of order ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_page_read_late_after_arrivals_leaves_no_gap(kind: str) -> None:
    """The second page is read after the third and after two arrivals: it moved forward,
    leaving a gap before the third."""
    second, third = second_boundary(kind)
    listing = shelf(kind, hook=when(second, third, lambda s: s.arrive(2)))
    keys = await listing.walk(L, window=8)
    check(listing, keys)
    assert len(listing.requests) <= 2 * listing.sequential_requests(L)


@pytest.mark.parametrize("kind", ["results without totals", "schedules"])
async def test_arrivals_read_in_order_cost_no_repair(kind: str) -> None:
    """Arrivals seen in offset order only make pages overlap more (repeats are dropped)."""
    listing = shelf(kind, hook=when(2 * (L - 1), L - 1, lambda s: s.arrive(2)))
    keys = await listing.walk(L, window=8)
    check(listing, keys)
    assert len(listing.requests) <= listing.sequential_requests(L) + 1  # past the end


async def test_a_listing_that_runs_away_fails_naming_why() -> None:
    """Twenty records arriving before every request: the walk never catches up with its own
    place, and says so rather than walking forever or ending short."""

    async def flood(shelf: Shelf, number: int, offset: int) -> None:
        if number:
            shelf.arrive(2 * L)

    listing = Shelf(6 * L, hook=flood, totals=False)
    with pytest.raises(IncompleteListingError, match="changed faster than the walk could follow"):
        await asyncio.wait_for(listing.walk(L, window=1), 60)  # not forever


# -- what totals prove, and what they cannot --------------------------------------------


async def test_a_deletion_shows_in_the_total_of_a_tiled_page() -> None:
    """Tiled pages (no overlap) meet only if the total did not fall: two deletions before
    the third page is read cost a repair page, not two records."""
    listing = Shelf(SIZE, hook=when(2 * L, L, lambda s: s.delete_at(3, 4)))
    keys = await listing.walk(L, window=8)
    check(listing, keys)
    assert listing.requests[: SIZE // L] == list(range(0, SIZE, L))  # tiled: no overlap


async def test_a_forward_shift_is_counted_against_the_totals_of_later_pages() -> None:
    """The second page, read last, repeats two records of the first (two arrivals): the
    third page, read before them, must then show two more records than the first did."""
    listing = Shelf(SIZE, hook=when(L, 2 * L, lambda s: s.arrive(2)))
    keys = await listing.walk(L, window=8)
    check(listing, keys)


async def test_a_deletion_far_behind_is_sought_forward() -> None:
    """Nine records deleted after the walk's place lower the total by nine: the repair page
    placed by the total lies behind the place, and the next one goes forward."""
    listing = Shelf(SIZE, hook=when(3 * L, 2 * L, lambda s: s.delete_at(*range(40, 49))))
    keys = await listing.walk(L, window=8)
    check(listing, keys)


async def test_a_server_that_skips_records_is_reported() -> None:
    """Nothing changed, yet the pages hold fewer records than the total: an error."""

    class Skipping(Shelf):
        async def fetch(self, request: Any, decode: Any) -> dict[str, Any]:
            envelope = await super().fetch(request, decode)
            envelope["paging"]["totalRecords"] += 5
            return envelope

    listing = Skipping(SIZE)
    pages = []
    with pytest.raises(IncompleteListingError, match="reported 65 records but the walk found 60"):
        async for page in listing.listing(L, 8).pages():
            pages.append(page.is_last)
    assert pages
    assert not any(pages)


async def test_a_server_ignoring_offset_is_still_detected() -> None:
    class Stuck(Shelf):
        async def fetch(self, request: Any, decode: Any) -> dict[str, Any]:
            request.params["offset"] = "0"
            return await super().fetch(request, decode)

    with pytest.raises(PaginationError, match="ignore offset"):
        await Stuck(SIZE, paged=False).walk(L, window=2)
    with pytest.raises(PaginationError, match="link to offset 10 twice"):
        await Stuck(SIZE, totals=False).walk(L, window=1)


# -- the rules of the proof, one by one ------------------------------------------------------


def page(keys: str, offset: int, total: int | None, *, end: bool = False) -> Page[Any]:
    """A page of one-letter records, of 4 (the last of the listing if ``end``)."""
    link = None if end else "next"
    return Page(list(keys), offset, 4, total, link, received=len(keys), paged=True)


def coverage(first: str = "abcd", total: int | None = 20) -> Coverage:
    chain = Coverage(4, front_only=True, keyed=True)
    chain.start(page(first, 0, total), list(first))
    return chain


def judge(chain: Coverage, keys: str, offset: int, total: int | None, **end: bool) -> Any:
    return chain.judge(page(keys, offset, total, **end), list(keys))


def test_a_page_meets_the_chain_at_any_of_its_records() -> None:
    """Not only at its last record (which may have been deleted): at the latest one there."""
    chain = coverage(total=None)
    assert judge(chain, "bcef", 1, None) == Verdict("extend", 2)  # "d" deleted
    assert chain.end_offset == 4


def test_a_page_behind_the_chain_is_covered_and_points_ahead() -> None:
    chain = coverage(total=None)
    verdict = judge(chain, "zabc", 3, None)
    assert verdict == Verdict("covered", seek=3 + 3 + 1)  # "d", one after "c"


def test_a_page_ending_with_the_chain_at_the_end_of_the_listing_completes_it() -> None:
    chain = coverage(total=None)
    assert judge(chain, "bc", 1, None, end=True).kind == "extend"  # "d" deleted, nothing after
    assert chain.complete


def test_without_totals_only_an_overlap_proves_a_page() -> None:
    chain = coverage(total=None)
    assert not chain.totals_prove
    assert judge(chain, "efgh", 4, None).kind == "break"
    assert judge(chain, "defg", 3, None).kind == "extend"


def test_a_total_that_fell_proves_nothing() -> None:
    """Two deletions anywhere: the next page may start two records late."""
    assert judge(coverage(), "efgh", 4, 20).kind == "extend"
    assert judge(coverage(), "efgh", 4, 19) == Verdict("break", seek=4 - 1 - 1)


def test_a_page_that_does_not_start_where_the_chain_ends_is_not_proven_by_totals() -> None:
    assert judge(coverage(), "fghi", 5, 20).kind == "break"


def test_totals_prove_nothing_after_the_first_sign_of_change() -> None:
    """A page repeating records (two arrived), then a page whose total shows them: the
    totals no longer prove anything (arrivals and deletions may cancel out in them)."""
    chain = coverage()
    assert judge(chain, "cdef", 4, 22).kind == "extend"  # met the chain at "d"
    assert not chain.quiet
    assert judge(chain, "ghij", 8, 22).kind == "break"


def test_the_first_page_of_the_listing_always_meets_the_chain() -> None:
    chain = coverage(total=None)
    assert judge(chain, "wxyz", 0, None).kind == "extend"  # everything read was deleted
    assert chain.end_offset == 3


def test_a_listing_sorted_otherwise_is_not_proven_by_totals() -> None:
    chain = Coverage(4, front_only=False, keyed=True)
    chain.start(page("abcd", 0, 20), list("abcd"))
    assert judge(chain, "efgh", 4, 20).kind == "break"


def test_records_without_identity_are_taken_as_they_come() -> None:
    chain = Coverage(4, front_only=True, keyed=False)
    chain.start(page("abcd", 0, 20), [])
    assert chain.judge(page("zzzz", 9, 3), []).kind == "extend"


# -- at random: never short --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(12))
async def test_random_changes_and_answer_orders_never_leave_a_walk_short(
    kind: str, seed: int
) -> None:
    """Arrivals and deletions at random (about one a request at most), pages answered in a
    random order: every walk ends with every record that stayed, once, or raises."""
    rng = random.Random(seed)
    page_size, window = rng.choice([3, 5, 10]), rng.choice([1, 2, 4, 8])
    arrive, delete, shuffle = rng.choice([0, 0.3, 0.6]), rng.choice([0, 0.3, 0.6]), rng.randrange(8)

    async def hook(shelf: Shelf, number: int, offset: int) -> None:
        for _ in range(rng.randrange(shuffle + 1)):  # later requests may be read first
            await asyncio.sleep(0)
        if number and rng.random() < arrive:
            shelf.arrive()
        if number and rng.random() < delete and shelf.records:
            shelf.delete_at(rng.randrange(len(shelf.records)))

    listing = shelf(kind, rng.choice([0, 7, 30, 100]), hook=hook)
    try:
        keys = await asyncio.wait_for(listing.walk(page_size, window), 60)
    except IncompleteListingError as exc:
        why = str(exc)
    else:
        check(listing, keys)
        return
    assert "changed faster than the walk could follow" in why


async def test_pages_planned_after_a_change_overlap() -> None:
    """Once a deletion showed, pages planned afterwards overlap the one before by a record:
    later deletions then cost nothing where tiled pages would each need a repair."""

    async def deleting(shelf: Shelf, number: int, offset: int) -> None:
        if number >= 2:
            shelf.delete(shelf.records[-1])  # one at the end before each read: no gap anywhere

    listing = Shelf(SIZE, hook=deleting)
    keys = await listing.walk(L, window=1)
    check(listing, keys)
    # The page read after the first deletion is proven by a repair page (17), and from then
    # on each page overlaps the one before it: no further repair.
    assert listing.requests == [0, 10, 20, 17, 29, 38, 47]
