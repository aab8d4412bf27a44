"""Listings are closable: ``aclose()`` and ``contextlib.aclosing`` cancel a walk at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from mettl_async import AccountResults, Listing, MettlListing, UnpagedListing
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount


def client_tasks() -> set[asyncio.Task[Any]]:
    """Client-side tasks still pending (the fake server's own handlers aside)."""
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and not t.done()
        and not getattr(t.get_coro(), "__qualname__", "").startswith("RequestHandler.")
    }


@pytest.fixture
async def big() -> Any:
    fake = FakeMettl(account=FakeAccount([300] * 12, seed=5))
    fake.latency = 0.01
    async with FakeMettlServer(fake) as server:
        yield server


async def test_aclosing_the_account_walk_cancels_everything_at_once(big: FakeMettlServer) -> None:
    async with big.client(max_in_flight=8) as mettl:
        walk = mettl.iter_all_results(page_size=10)
        async with contextlib.aclosing(walk) as results:
            async for _schedule, _result in results:
                break
        # No waiting for the garbage collector: closed means closed.
        assert client_tasks() == set()
        assert mettl.stats.in_flight == 0
        # The walk is an iterable: a new loop starts a new walk.
        async with contextlib.aclosing(walk.raw()) as raw:
            first = await anext(aiter(raw))
        assert first[1]["email"]
        assert client_tasks() == set()


async def test_aclosing_a_listing_and_its_pages(big: FakeMettlServer) -> None:
    key = big.fake.account.schedules[0].access_key
    async with big.client(max_in_flight=8) as mettl:
        listing = mettl.iter_candidate_results(key, page_size=10)
        async with contextlib.aclosing(listing) as results:
            async for _ in results:
                break
        assert client_tasks() == set()
        assert mettl.stats.in_flight == 0
        pages = listing.pages()
        await anext(pages)
        await listing.aclose()  # closes the page view's walk as well
        assert client_tasks() == set()
        with pytest.raises(StopAsyncIteration):
            await anext(pages)
        assert len(await listing.collect()) == 300  # still usable


async def test_aclosing_an_unpaged_listing(server: FakeMettlServer) -> None:
    async with server.client() as mettl:
        listing = mettl.iter_pbts()
        assert isinstance(listing, UnpagedListing)
        async with contextlib.aclosing(listing) as pbts:
            async for _ in pbts:
                break
        assert client_tasks() == set()
        assert len(await listing.collect()) > 1


async def test_aclose_of_a_listing_never_iterated_does_nothing(server: FakeMettlServer) -> None:
    async with server.client() as mettl:
        listings: list[MettlListing[object]] = [
            mettl.iter_schedules(),
            mettl.iter_pbts(),
            mettl.iter_all_results(),
        ]
        for listing in listings:
            await listing.aclose()
        assert isinstance(listings[0], Listing)
        assert isinstance(listings[2], AccountResults)
    assert server.fake.requests == 0


async def test_aclose_closes_every_open_iteration_even_if_one_fails(
    server: FakeMettlServer,
) -> None:
    """An iteration that raises while closing does not keep the others open."""
    async with server.client() as mettl:
        listing = mettl.iter_schedules(page_size=1)
        first, second = aiter(listing), aiter(listing)
        await anext(first)
        await anext(second)

        async def broken() -> Any:
            try:
                yield 1
            finally:
                raise RuntimeError("cannot close")

        gen = broken()
        await anext(gen)
        listing._iterations.track(gen)
        with pytest.raises(RuntimeError, match="cannot close"):
            await listing.aclose()
        for closed in (first, second, gen):
            with pytest.raises(StopAsyncIteration):
                await anext(closed)
        assert client_tasks() == set()


async def test_a_loop_left_with_break_is_waited_for_not_raced(big: FakeMettlServer) -> None:
    """``break`` drops the loop's generator, which Python starts closing on its own;
    aclose() then waits for that walk to end instead of racing it."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        async with big.client(max_in_flight=8) as mettl:
            for _ in range(5):
                walk = mettl.iter_all_results(page_size=10)
                async with contextlib.aclosing(walk.raw()) as results:
                    async for _pair in results:
                        break
                assert client_tasks() == set()
                async with (
                    contextlib.aclosing(walk) as pairs,
                    contextlib.aclosing(walk.pages()) as pages,
                ):
                    await anext(aiter(pairs))
                    await anext(pages)
                assert client_tasks() == set()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert errors == []
