"""Streaming every schedule and every result: concurrent, exactly once, never quietly short."""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mettl_async import (
    IncompleteListingError,
    MettlClient,
    PaginationError,
    RepeatedPageLinkError,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

MIXED_SIZES = [0, 1, 99, 100, 101, 250] * 4  # 24 schedules, the edges of a 100-record page
REALISTIC_FAULTS = {
    "E509": 0.03,
    "http429": 0.02,
    "E503": 0.02,
    "http500": 0.01,
    "drop": 0.02,
    "truncate": 0.02,
}


async def serve(fake: FakeMettl) -> FakeMettlServer:
    server = FakeMettlServer(fake)
    await server.start()
    return server


@pytest.fixture
async def mixed() -> AsyncIterator[FakeMettlServer]:
    """An account of 24 schedules of mixed sizes."""
    async with FakeMettlServer(FakeMettl(account=FakeAccount(MIXED_SIZES, seed=7))) as server:
        yield server


def truth(fake: FakeMettl) -> dict[str, list[str]]:
    """The server's ground truth: every schedule's candidate emails in listing order."""
    return {
        s.access_key: [c["email"] for c in fake.account.candidates(s)]
        for s in fake.account.schedules
    }


def tasks_left() -> set[asyncio.Task[Any]]:
    """Client-side tasks still pending (the fake server's own handlers aside)."""
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and not t.done()
        and not getattr(t.get_coro(), "__qualname__", "").startswith("RequestHandler.")
    }


async def settle() -> None:
    """Let cancellations run to their end (a closed generator is finalized by the loop).

    Gives up only after 60 s, so that a loaded machine is waited for, not failed.
    """
    deadline = asyncio.get_running_loop().time() + 60
    for _ in range(1_000_000):
        if not tasks_left() or asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.005)


async def until_quiet(state: Any, turns: int = 100_000) -> None:
    """Run the loop until ``state()`` (requests made, requests in flight) stays the same,
    nothing in flight, over several rounds of turns: fetching has stopped. Counted in
    event-loop turns, not seconds (a loaded machine only makes it take longer)."""
    last, steady = None, 0
    for _ in range(turns // 50):
        for _ in range(50):
            await asyncio.sleep(0)
        now = state()
        steady = steady + 1 if now == last and not any(now[1:]) else 0
        if steady >= 5:
            return
        last = now
    raise AssertionError(f"still fetching after {turns} turns of the loop: {state()}")


async def test_every_result_of_the_account_exactly_once_despite_faults(
    mixed: FakeMettlServer,
) -> None:
    """With every fault switched on, each candidate comes once, as the server has them."""
    fake = mixed.fake
    fake.set_fault_rates(REALISTIC_FAULTS)
    async with mixed.client(
        retry=RetryPolicy(attempts=10, instant=True, learn_rate=False)
    ) as mettl:
        got: dict[str, list[str]] = collections.defaultdict(list)
        async for schedule, result in mettl.iter_all_results(page_size=20).raw():
            got[schedule["accessKey"]].append(result["email"])
        retries = mettl.stats.retries
    expected = truth(fake)
    assert {k: v for k, v in expected.items() if v} == dict(got)
    assert sum(map(len, got.values())) == sum(MIXED_SIZES)
    assert fake.faults_injected > 5
    assert retries >= fake.faults_injected - 1
    assert fake.bad_signatures == 0


async def test_the_account_walk_keeps_the_in_flight_bound(mixed: FakeMettlServer) -> None:
    """Never more than the bound in flight (how close a busy machine gets to it is not tested)."""
    mixed.fake.latency = 0.01
    async with mixed.client(max_in_flight=4) as mettl:
        count = 0
        async for _ in mettl.iter_all_results(concurrency=8).raw():
            count += 1
        assert 1 <= mettl.stats.peak_in_flight <= 4
    assert count == sum(MIXED_SIZES)
    assert 1 <= mixed.fake.peak_in_flight <= 4


@pytest.mark.parametrize(
    "link_style", ["absolute-stale", "relative-stale", "absolute", "relative", "none"]
)
@pytest.mark.parametrize("window", [1, 8])
@pytest.mark.parametrize("total_records", [True, False])
async def test_link_variants_all_work_with_fresh_signatures(
    link_style: Any, window: int, total_records: bool
) -> None:
    """Absolute, relative and pre-signed links (stale ak/ts/asgn) are followed and re-signed."""
    fake = FakeMettl(
        account=FakeAccount([250, 100, 37], seed=1),
        link_style=link_style,
        total_records=total_records,
    )
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        for schedule in fake.account.schedules:
            emails = [
                r["email"]
                async for r in mettl.iter_candidate_results(
                    schedule.access_key, page_size=30, window=window, include_essay_responses=True
                ).raw()
            ]
            assert emails == truth(fake)[schedule.access_key]
    assert fake.bad_signatures == 0
    following = [r for r in fake.log if r.path.endswith("/candidates")]
    assert all(r.params.get("qr") == "true" for r in following)  # the link's parameters are kept


@pytest.mark.parametrize("window", [1, 4, 16])
@pytest.mark.parametrize("arrival_every", [1, 2, 5])
async def test_arrivals_mid_walk_neither_duplicate_nor_lose_anyone(
    window: int, arrival_every: int
) -> None:
    """New candidates shift offsets under the walk: nobody twice, nobody there at the start lost."""
    fake = FakeMettl(
        account=FakeAccount([700], seed=window * 10 + arrival_every), arrival_every=arrival_every
    )
    schedule = fake.account.schedules[0]
    at_start = set(truth(fake)[schedule.access_key])
    emails = await walked(fake, page_size=50, window=window)
    assert len(emails) == len(set(emails))
    assert at_start <= set(emails)
    assert len(schedule.arrivals) > 0


async def walked(fake: FakeMettl, *, page_size: int, window: int) -> list[str]:
    """The emails a raw walk of the fake's first schedule yields, served over loopback."""
    key = fake.account.schedules[0].access_key
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        listing = mettl.iter_candidate_results(key, page_size=page_size, window=window)
        return [r["email"] async for r in listing.raw()]


BUSY = {
    "arrivals": {"arrival_every": 2},
    "deletions": {"deletion_every": 3},
    "both": {"arrival_every": 3, "deletion_every": 4},
}


@pytest.mark.parametrize("window", [1, 8])
@pytest.mark.parametrize("total_records", [True, False], ids=["totals", "no totals"])
@pytest.mark.parametrize("busy", list(BUSY))
async def test_a_busy_schedule_walked_has_everyone_who_stayed_exactly_once(
    busy: str, total_records: bool, window: int
) -> None:
    """Candidates arriving and deleted while the walk goes, a third of the pages answered
    late (read after the wait): every candidate there throughout, once; nobody invented."""
    fake = FakeMettl(
        account=FakeAccount([430], seed=window),
        total_records=total_records,
        late_share=0.3,
        late_delay=0.02,
        seed=window,
        **BUSY[busy],  # type: ignore[arg-type]
    )
    schedule = fake.account.schedules[0]
    at_start = set(truth(fake)[schedule.access_key])
    emails = await walked(fake, page_size=40, window=window)
    gone = {fake.account.email(schedule, j) for j in schedule.deleted}
    ever = at_start | {fake.account.email(schedule, j) for j in schedule.arrivals}
    assert len(emails) == len(set(emails))
    assert at_start - gone <= set(emails)
    assert set(emails) <= ever
    assert fake.arrivals + fake.deletions > 0


@pytest.mark.parametrize("total_records", [True, False], ids=["totals", "no totals"])
async def test_a_busy_schedule_listing_has_every_schedule_that_stayed(total_records: bool) -> None:
    """Article 11 (no paging block) with schedules created and archived under the walk."""
    fake = FakeMettl(
        account=FakeAccount(230, 0, seed=5),
        total_records=total_records,
        arrival_every=2,
        deletion_every=3,
        late_share=0.3,
        late_delay=0.02,
    )
    at_start = {s.access_key for s in fake.account.schedules}
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        keys = [s["accessKey"] async for s in mettl.iter_schedules(page_size=20).raw()]
    remaining = {s.access_key for s in fake.account.schedules}
    assert len(keys) == len(set(keys))
    assert at_start & remaining <= set(keys)
    assert fake.deletions > 0


@pytest.mark.parametrize(
    ("sort", "sort_order"), [(None, None), ("name", "asc"), ("testStartTime", "asc")]
)
async def test_concurrent_pages_come_in_the_order_of_following_links(
    mixed: FakeMettlServer, sort: str | None, sort_order: str | None
) -> None:
    biggest = max(mixed.fake.account.schedules, key=lambda s: s.base_candidates)
    async with mixed.client() as mettl:

        def emails(window: int) -> Any:
            return mettl.iter_candidate_results(
                biggest.access_key, sort=sort, sort_order=sort_order, page_size=20, window=window
            ).raw()

        sequential = [r["email"] async for r in emails(1)]
        concurrent = [r["email"] async for r in emails(8)]
    assert concurrent == sequential
    assert len(sequential) == biggest.base_candidates
    account = mixed.fake.account
    server_order = account.candidate_order(biggest, sort, sort_order)
    assert sequential == [account.email(biggest, j) for j in server_order]


async def test_a_server_that_clamps_the_limit_is_walked_by_what_it_gives() -> None:
    fake = FakeMettl(account=FakeAccount([230], seed=2), clamp_limit=40)
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        emails = [
            r["email"]
            async for r in mettl.iter_candidate_results(fake.account.schedules[0].access_key).raw()
        ]
    assert emails == truth(fake)[fake.account.schedules[0].access_key]


async def test_a_page_that_keeps_failing_raises_naming_schedule_and_offset(
    mixed: FakeMettlServer,
) -> None:
    """A walk never ends quietly short: a page failing after its retries is an error."""
    schedule = next(s for s in mixed.fake.account.schedules if s.base_candidates == 250)
    mixed.fake.add_fault(
        "E503",
        times=100,
        path=f"/schedules/{schedule.access_key}/candidates",
        params={"offset": "200"},
    )
    async with mixed.client(retry=RetryPolicy(attempts=3, instant=True, learn_rate=False)) as mettl:
        seen = []
        with pytest.raises(IncompleteListingError) as caught:
            async for result in mettl.iter_candidate_results(schedule.access_key).raw():
                seen.append(result)
    error = caught.value
    assert error.offset == 200
    assert schedule.access_key in str(error)
    assert "offset 200" in str(error)
    assert isinstance(error.__cause__, ServerError)
    assert error.__cause__.attempts == 3
    assert len(seen) == 200


async def test_the_account_walk_fails_loudly_when_one_schedule_fails(
    mixed: FakeMettlServer,
) -> None:
    schedule = next(s for s in mixed.fake.account.schedules if s.base_candidates == 101)
    mixed.fake.add_fault(
        "E503",
        times=100,
        path=f"/schedules/{schedule.access_key}/candidates",
        params={"offset": "100"},
    )
    async with mixed.client(retry=RetryPolicy(attempts=2, instant=True, learn_rate=False)) as mettl:
        with pytest.raises(IncompleteListingError, match=schedule.access_key):
            async for _ in mettl.iter_all_results().raw():
                pass
        await settle()
        assert tasks_left() == set()


@pytest.mark.parametrize("window", [1, 8])
@pytest.mark.parametrize("total_records", [True, False])
async def test_records_deleted_mid_walk_cost_no_one_and_fail_nothing(
    window: int, total_records: bool
) -> None:
    """Candidates deleted mid-walk (before the walk's place) move the rest to earlier offsets:
    the walk goes on, and every candidate that was there throughout comes once."""
    fake = FakeMettl(account=FakeAccount([250], seed=7), total_records=total_records)
    schedule = fake.account.schedules[0]
    at_start = truth(fake)[schedule.access_key]
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        emails = []
        async for result in mettl.iter_candidate_results(
            schedule.access_key, page_size=50, window=window
        ).raw():
            if result["email"] == at_start[60]:
                for email in at_start[:5]:  # the first five vanish
                    fake.mutate.delete(schedule.access_key, email)
            emails.append(result["email"])
    assert len(emails) == len(set(emails))
    assert set(at_start[5:]) <= set(emails)


async def test_first_page_errors_are_raised_as_they_are(mixed: FakeMettlServer) -> None:
    from mettl_async import NotFoundError

    async with mixed.client() as mettl:
        with pytest.raises(NotFoundError):
            await mettl.iter_candidate_results("no-such-key").raw().collect()


async def test_the_same_link_twice_is_an_error_not_a_loop(mocked: Any) -> None:
    page = {
        "status": "SUCCESS",
        "candidates": [{"email": f"c{i}@x.com"} for i in range(2)],
        "paging": {
            "next": "https://api.mettl.com/v2/schedules/k/candidates?limit=2&offset=2",
            "previous": None,
        },
    }
    loop = {**page, "candidates": [{"email": "c2@x.com"}, {"email": "c3@x.com"}]}
    mocked.get(re.compile(r".*offset=0.*"), payload=page)
    mocked.get(re.compile(r".*offset=[1-9].*"), payload=loop, repeat=True)
    async with MettlClient("a", "b", retry=RetryPolicy.never()) as mettl:
        with pytest.raises(RepeatedPageLinkError, match="twice"):
            await mettl.iter_candidate_results("k", page_size=2, window=1).raw().collect()


async def test_a_server_ignoring_offset_is_detected(mocked: Any) -> None:
    same = {"status": "SUCCESS", "schedules": [{"accessKey": f"k{i}"} for i in range(2)]}
    mocked.get(re.compile(r".*/v2/schedules\?.*"), payload=same, repeat=True)
    async with MettlClient("a", "b") as mettl:
        with pytest.raises(PaginationError, match="ignore offset"):
            await mettl.iter_schedules(page_size=2, window=1).raw().collect()


async def test_iterators_are_lazy(mixed: FakeMettlServer) -> None:
    async with mixed.client() as mettl:
        listing = mettl.iter_candidate_results(mixed.fake.account.schedules[2].access_key)
        everything = mettl.iter_all_results()
        schedules = mettl.iter_schedules()
        await settle()
        assert mixed.fake.requests == 0
        del listing, everything, schedules


async def test_breaking_out_cancels_everything_in_flight(mixed: FakeMettlServer) -> None:
    mixed.fake.latency = 0.05
    async with mixed.client() as mettl:
        async for _ in mettl.iter_all_results().raw():
            break
        await settle()
        assert tasks_left() == set()
        assert mettl.stats.in_flight == 0


async def test_an_exception_in_the_consumer_cancels_everything(mixed: FakeMettlServer) -> None:
    mixed.fake.latency = 0.02
    async with mixed.client() as mettl:
        with pytest.raises(ZeroDivisionError):
            async for _ in mettl.iter_candidate_results(
                mixed.fake.account.schedules[5].access_key, page_size=10
            ).raw():
                1 / 0  # noqa: B018
        await settle()
        assert tasks_left() == set()


async def test_a_slow_consumer_slows_the_fetching(mixed: FakeMettlServer) -> None:
    """Memory stays bounded: while the consumer waits, only a bounded number of pages is fetched."""
    big = FakeMettl(account=FakeAccount([300] * 40, seed=4))
    async with FakeMettlServer(big) as server, server.client(max_in_flight=4) as mettl:
        walk = mettl.iter_all_results(concurrency=4, page_size=10).raw().__aiter__()
        await walk.__anext__()
        # The consumer waits: the walk fetches until its buffers are full, then stops.
        await until_quiet(lambda: (big.requests, big.in_flight, mettl.stats.in_flight))
        fetched_while_waiting = big.requests
        # page budget (2 x 4) + buffer (4) + one page per walk being handed over (4) + listing
        assert fetched_while_waiting <= 2 * 4 + 4 + 4 + 4
        await walk.aclose()
        total_pages = 40 * 30
        assert fetched_while_waiting < total_pages / 10


async def test_page_view_reports_offsets_totals_and_the_last_page(mixed: FakeMettlServer) -> None:
    schedule = next(s for s in mixed.fake.account.schedules if s.base_candidates == 250)
    async with mixed.client() as mettl:
        pages = [p async for p in mettl.iter_candidate_results(schedule.access_key).raw().pages()]
    assert [(p.offset, p.limit, len(p.items), p.total_records) for p in pages] == [
        (0, 100, 100, 250),
        (100, 100, 100, 250),
        (200, 100, 50, 250),
    ]
    assert [p.is_last for p in pages] == [False, False, True]


async def test_schedules_listing_pages_by_offset_until_a_short_page(mixed: FakeMettlServer) -> None:
    async with mixed.client() as mettl:
        keys = [s["accessKey"] async for s in mettl.iter_schedules(page_size=5).raw()]
        by_name = [
            s["name"]
            async for s in mettl.iter_schedules(sort="name", sort_order="asc", page_size=7).raw()
        ]
        fixed = [s async for s in mettl.iter_schedules(filter={"scheduleType": "Fixed"}).raw()]
    assert keys == [s.access_key for s in mixed.fake.account.schedules]
    assert by_name == sorted(by_name)
    assert fixed
    assert all(s["scheduleType"] == "Fixed" for s in fixed)
    listed = [r for r in mixed.fake.log if r.path == "/schedules"]
    assert any(r.params.get("filter") == '{"scheduleType":"Fixed"}' for r in listed)


async def test_given_schedules_limit_the_walk(mixed: FakeMettlServer) -> None:
    wanted = [s for s in mixed.fake.account.schedules if s.base_candidates == 99][:2]
    async with mixed.client() as mettl:
        raw_first = await mettl.get_schedule_raw(wanted[0].access_key)
        pairs = [
            (s["accessKey"], r["email"])
            async for s, r in mettl.iter_all_results(
                schedules=[raw_first, wanted[1].access_key]
            ).raw()
        ]
    assert len(pairs) == 198
    assert {k for k, _ in pairs} == {s.access_key for s in wanted}


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"page_size": 0}, "limit"),
        ({"sort": "score"}, "sort"),
        ({"sort_order": "up"}, "sort_order"),
    ],
)
async def test_bad_listing_arguments_are_refused_before_any_request(
    mixed: FakeMettlServer, kwargs: dict[str, Any], path: str
) -> None:
    async with mixed.client() as mettl:
        with pytest.raises(ValidationError) as caught:
            mettl.iter_candidate_results("k", **kwargs)
    assert caught.value.paths == [path]
    assert mixed.fake.requests == 0


async def test_a_server_ignoring_offset_is_detected_in_concurrent_walks(mocked: Any) -> None:
    """The guard against endless listings holds with the default window too, not only window=1."""
    same = {"status": "SUCCESS", "schedules": [{"accessKey": f"k{i}"} for i in range(2)]}
    mocked.get(re.compile(r".*/v2/schedules\?.*"), payload=same, repeat=True)
    async with MettlClient("a", "b") as mettl:
        with pytest.raises(PaginationError, match="ignore offset"):
            await asyncio.wait_for(mettl.iter_schedules(page_size=2).raw().collect(), 10)
        assert mettl.stats.requests < 40


async def test_next_links_without_limit_are_walked_concurrently(mocked: Any) -> None:
    """A link that carries only the offset keeps the page size of the first request."""
    base = "https://api.mettl.com/v2/schedules/k/candidates"
    emails = [f"c{i:02d}@x.com" for i in range(25)]

    def page(offset: int) -> dict[str, Any]:
        rest = offset + 10 < len(emails)
        return {
            "status": "SUCCESS",
            "candidates": [{"email": e} for e in emails[offset : offset + 10]],
            "paging": {
                "next": f"{base}?offset={offset + 10}" if rest else None,
                "totalRecords": 25,
            },
        }

    for offset in (0, 10, 20):
        mocked.get(re.compile(rf".*[?&]offset={offset}(&.*)?$"), payload=page(offset), repeat=True)
    async with MettlClient("a", "b") as mettl:
        got = [r["email"] async for r in mettl.iter_candidate_results("k", page_size=10).raw()]
    assert got == emails
    for (_, url), _calls in mocked.requests.items():
        assert "limit=10" in str(url)


async def test_is_last_marks_only_the_final_page_even_after_a_repair_walk() -> None:
    """With offsets shifting mid-walk, no record comes after the page marked last."""
    fake = FakeMettl(account=FakeAccount([400], seed=3), arrival_every=1)
    schedule = fake.account.schedules[0]
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        pages = [
            p
            async for p in mettl.iter_candidate_results(schedule.access_key, page_size=20)
            .raw()
            .pages()
        ]
    assert [p.is_last for p in pages].count(True) == 1
    assert pages[-1].is_last


async def test_a_short_walk_never_marks_a_last_page(
    mixed: FakeMettlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk found incomplete raises before handing over its final page (exports rely on it):
    here a server whose pages hold fewer records than its totalRecords, nothing changing."""
    from mettl_async.testing import routes

    schedule = next(s for s in mixed.fake.account.schedules if s.base_candidates == 250)
    page_links = routes.page_links

    def overstated(*args: Any, total: int, **kwargs: Any) -> dict[str, Any]:
        return page_links(*args, total=total + 5, **kwargs)

    monkeypatch.setattr(routes, "page_links", overstated)
    marked = []
    async with mixed.client() as mettl:
        with pytest.raises(IncompleteListingError, match="reported 255 records but the walk"):
            async for page in (
                mettl.iter_candidate_results(schedule.access_key, page_size=50).raw().pages()
            ):
                marked.append(page.is_last)
    assert marked
    assert not any(marked)


async def test_records_inserted_mid_walk_under_another_sort_are_reported() -> None:
    """Under sort=name an arrival can hide a record in a gap: the walk says so instead."""
    fake = FakeMettl(account=FakeAccount([300], seed=8), arrival_every=1)
    schedule = fake.account.schedules[0]
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        with pytest.raises(IncompleteListingError, match="during the walk"):
            await (
                mettl.iter_candidate_results(
                    schedule.access_key, sort="name", sort_order="asc", page_size=20
                )
                .raw()
                .collect()
            )


async def test_a_schedule_that_cannot_be_typed_fails_the_walk_loudly(
    mixed: FakeMettlServer,
) -> None:
    """A malformed schedule is an error, never a schedule quietly left out of the walk."""
    from mettl_async import ValidationError

    bad = mixed.fake.account.schedules[3]
    mixed.fake.created_schedules[bad.access_key] = {"scheduleWindow": "not an object"}
    async with mixed.client() as mettl:
        with pytest.raises(ValidationError):
            async for _ in mettl.iter_all_results():
                pass
        await settle()
        assert tasks_left() == set()
