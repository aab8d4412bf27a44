"""Every listing the client returns is a ``MettlListing``: one protocol, three classes."""

from __future__ import annotations

from mettl_async import (
    PBT,
    AccountResults,
    AssessmentInfo,
    CandidateResult,
    Listing,
    MettlClient,
    MettlListing,
    Schedule,
    TestInstance,
    UnpagedListing,
)
from mettl_async.testing import FakeMettlServer
from mettl_async.testing.data import FakeAccount


async def _views(listing: MettlListing[object]) -> tuple[int, int, int]:
    """Records, raw records and pages of any listing, through the protocol alone."""
    records = [item async for item in listing]
    raw = [item async for item in listing.raw()]
    pages = [page async for page in listing.pages()]
    return len(records), len(raw), len(pages)


async def test_each_listing_type_satisfies_the_protocol() -> None:
    """Paged, unpaged and account-wide listings, and their raw views, are MettlListings.

    The annotated assignments are what mypy checks; isinstance what the runtime does.
    Nothing is sent: a listing is lazy until iterated.
    """
    async with (
        MettlClient("public", "private") as v2,
        MettlClient("public", "private", api_version="v3") as v3,
    ):
        schedules: MettlListing[Schedule] = v2.iter_schedules()
        results: MettlListing[CandidateResult] = v2.iter_candidate_results("key")
        assessments: MettlListing[AssessmentInfo] = v2.iter_assessments()
        pbts: MettlListing[PBT] = v2.iter_pbts()
        of_assessment: MettlListing[Schedule] = v2.iter_assessment_schedules(1)
        unpaged: MettlListing[TestInstance] = v2.iter_candidate_results_in_account("a@b.c")
        paged: MettlListing[TestInstance] = v3.iter_candidate_results_in_account("a@b.c")
        everything: MettlListing[tuple[Schedule, CandidateResult]] = v2.iter_all_results()
        listings: list[MettlListing[object]] = [
            schedules,
            results,
            assessments,
            pbts,
            of_assessment,
            unpaged,
            paged,
            everything,
        ]
        for listing in listings:
            assert isinstance(listing, MettlListing), listing
            assert isinstance(listing.raw(), MettlListing), listing
        assert v2.stats.requests == v3.stats.requests == 0
    assert all(isinstance(x, Listing) for x in (schedules, results, assessments, paged))
    assert all(isinstance(x, UnpagedListing) for x in (pbts, of_assessment, unpaged))
    assert isinstance(everything, AccountResults)


def test_other_async_iterables_are_not_listings() -> None:
    """An async generator has ``__aiter__`` but neither view: not a MettlListing."""

    async def numbers() -> object:
        yield 1

    assert not isinstance(numbers(), MettlListing)
    assert not isinstance([], MettlListing)


async def test_code_written_against_the_protocol_walks_every_kind(
    server: FakeMettlServer,
) -> None:
    """One function typed with MettlListing reads a paged, an unpaged and an account listing."""
    server.fake.account = FakeAccount([2, 0, 5], seed=1)
    async with server.client() as mettl:
        records, raw, pages = await _views(mettl.iter_schedules(page_size=1))
        assert records == raw == 3
        assert pages >= 3
        records, raw, pages = await _views(mettl.iter_pbts())
        assert records == raw > 0
        assert pages == 1
        records, raw, pages = await _views(mettl.iter_all_results())
        assert records == raw == 7
        assert pages >= 3
