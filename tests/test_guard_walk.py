"""Guard tests of the deletion-safe walk (``_pagewalk``) and its proof (``_coverage``).

Each kills mutants that the walk's own tests let survive (see docs/mutation.md, the walk):
deterministic, in-process, on the pure chain or the in-memory shelf.
"""

from __future__ import annotations

from typing import Any

import pytest

from mettl_async import IncompleteListingError, Listing
from mettl_async._coverage import Coverage, Verdict
from mettl_async._pagewalk import Walk, content_key
from mettl_async._paging import Page, RawRecord
from mettl_async._protocol import Request
from mettl_async._streaming import ListingSpec, as_raw

from .shelf import URL, Shelf


def page(keys: str, offset: int, total: int | None = None, *, last: bool = False) -> Page[str]:
    link = None if last else "next"
    return Page(list(keys), offset, 4, total, link, received=len(keys), paged=True)


def test_a_covered_page_places_the_chain_end_counted_on_from_its_latest_chain_record() -> None:
    chain = Coverage(4, front_only=True, keyed=True)
    chain.start(page("abcd", 0), list("abcd"))
    assert chain.place == chain.end_offset == 3
    # six arrivals at the front: the listing is now n m l k j i a b c d ...
    verdict = chain.judge(page("jiab", 4), list("jiab"))
    # b (the chain's 2nd record) is at 7, so its 4th (d) is at 9: the walk goes on from there
    assert verdict == Verdict("covered", seek=9)
    assert chain.place == 9
    assert chain.end_offset == 3  # d itself was not seen again
    assert not chain.quiet


def unkeyed_listing(shelf: Shelf, page_size: int, window: int) -> Listing[RawRecord]:
    spec = ListingSpec(
        label="the shelf",
        request=Request("GET", URL, {"limit": str(page_size), "offset": "0"}),
        items_key="candidates",
        key_field=None,  # as a candidate's results by email (v3): records without identity
        window=window,
    )
    return Listing(shelf.fetch, spec, as_raw)


@pytest.mark.parametrize("totals", [True, False], ids=["totals", "no totals"])
@pytest.mark.parametrize("window", [1, 4])
async def test_a_long_listing_without_keys_is_walked_to_its_end(totals: bool, window: int) -> None:
    # Every page of a walk without keys extends its chain: none is "a page that proved
    # nothing new", however many there are (50 pages here, past the walk's idle limit).
    shelf = Shelf(100, totals=totals)
    records = [record async for record in unkeyed_listing(shelf, 2, window)]
    assert [record["email"] for record in records] == shelf.records


def test_records_without_a_key_are_told_apart_by_their_bytes() -> None:
    spec = ListingSpec(
        label="the shelf",
        request=Request("GET", URL, {"limit": "4", "offset": "0"}),
        items_key="candidates",
        key_field="email",
        window=1,
    )
    walk = Walk(Shelf(0).fetch, spec, None)
    first = [RawRecord(b'{"name":"a"}'), RawRecord(b'{"name":"b"}'), RawRecord(b'{"x":1}', "k")]
    keys = walk.keys_of(Page(first, 0, 4, None, "next", received=3, paged=True))
    assert keys[2] == "k"
    assert keys[0] != keys[1]
    assert keys[0] == content_key(RawRecord(b'{"name":"a"}'))
    assert all(isinstance(key, bytes) for key in keys[:2])
    walk.fresh(Page(first, 0, 4, None, "next", received=3, paged=True), keys)
    # "b" pushed to the next page by an arrival is recognised there: only "c" is new
    moved = [RawRecord(b'{"name":"b"}'), RawRecord(b'{"name":"c"}')]
    page = Page(moved, 2, 4, None, None, received=2, paged=True)
    fresh = walk.fresh(page, walk.keys_of(page))
    assert [record.json for record in fresh.items] == [b'{"name":"c"}']


@pytest.mark.parametrize("window", [1, 2, 4])
async def test_the_walk_gives_up_after_exactly_its_limit_of_pages_proving_nothing(
    window: int,
) -> None:
    """Nine arrivals before every read of pages of ten: the second page proves one record,
    then no page proves any. The walk gives up after 2 x window + 2 x 8 such pages and one
    more, counted from the last page that proved something."""

    async def nine_more(shelf: Shelf, number: int, offset: int) -> None:
        if number:
            shelf.arrive(9)

    listing = Shelf(60, hook=nine_more)
    with pytest.raises(IncompleteListingError) as caught:
        await listing.walk(10, window=window)
    limit = 2 * window + 2 * 8 + 1
    assert f"({limit} pages in a row proved nothing new)" in str(caught.value)
    if window == 1:
        # one page at a time: the first page, the one that proved a record, then the limit
        assert len(listing.requests) == 1 + 1 + limit


def test_a_break_on_a_page_without_a_total_seeks_one_record_back() -> None:
    """A server that stops sending totals mid-walk: the break cannot count records moved by
    the change of the total, and seeks where the chain's end was (the page before)."""
    chain = Coverage(4, front_only=True, keyed=True)
    chain.start(page("abcd", 0, 20), list("abcd"))
    verdict = chain.judge(page("wxyz", 8), list("wxyz"))
    assert verdict == Verdict("break", seek=7)
    assert not chain.quiet


async def ten_more(shelf: Shelf, number: int, offset: int) -> None:
    if number:
        shelf.arrive(10)


async def twenty_more(shelf: Shelf, number: int, offset: int) -> None:
    if number:
        shelf.arrive(20)


@pytest.mark.parametrize(
    ("hook", "totals", "why"),
    [
        (ten_more, True, "(19 pages in a row proved nothing new)"),
        (twenty_more, False, "(19 repair pages for 1 pages of the walk)"),
    ],
    ids=["covered pages", "repair pages"],
)
async def test_the_walks_limits_count_from_its_first_page(
    hook: Any, totals: bool, why: str
) -> None:
    """No page after the first proves anything (a page's worth of arrivals before every read:
    each page holds what the last one did; or two pages' worth: no repair page finds the
    chain's end). The walk gives up after the first page and exactly 19 more requests."""
    listing = Shelf(60, hook=hook, totals=totals)
    with pytest.raises(IncompleteListingError) as caught:
        await listing.walk(10, window=1)
    assert why in str(caught.value)
    assert len(listing.requests) == 1 + 19


async def test_with_a_total_the_first_window_is_fetched_at_once() -> None:
    """With the first page's total the walk fetches a whole window of pages at once: the
    second page is answered only once the fifth was asked for (as a slow page is
    answered while those after it are fetched)."""

    async def slow_second(shelf: Shelf, number: int, offset: int) -> None:
        if offset == 10:
            await shelf.read(40)

    listing = Shelf(50, hook=slow_second)
    keys = await listing.walk(10, window=4)
    assert keys == listing.records
    assert listing.requests == [0, 10, 20, 30, 40]
