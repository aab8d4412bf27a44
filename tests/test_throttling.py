"""Throttling against the fake Mettl over loopback: exports finish, POSTs go once, deadlines end.

No test here asserts how long anything took: the fake's limit decides which
requests are refused, the tests check what came out (every record once, every
refusal counted, the typed error at the deadline).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from pathlib import Path

import pytest
from yarl import URL

from mettl_async import (
    ConfigurationError,
    MettlClient,
    RateLimitError,
    RetryPolicy,
    ThrottledError,
)
from mettl_async._keyshare import rate_share
from mettl_async._ratelimit import PeerRate
from mettl_async.export import ExportOptions, export_results
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount
from mettl_async.testing.runner import add_fake_server_arguments, fake_from_arguments

from .test_export import expected_lines, read_lines

#: 14 requests at page size 100: the schedule list and 13 pages.
SIZES = [120, 30, 0, 101, 45, 7, 200, 64, 99, 100]

#: Learning switched on (the fake server's client does not learn unless given a policy).
LEARNING = RetryPolicy(backoff_initial=0.01, backoff_max=0.05)


@pytest.mark.slow
async def test_an_export_completes_under_5_requests_a_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At 16 in flight against 5 requests/s: every record once, every refusal counted,
    and POSTs sent meanwhile through the same client each act exactly once."""
    caplog.set_level(logging.INFO, logger="mettl_async")
    fake = FakeMettl(account=FakeAccount(SIZES, seed=7))
    fake.set_rate_limit(rate=5.0, burst=2.0)
    output = tmp_path / "results.jsonl"
    before = set(fake.assessments)
    async with FakeMettlServer(fake) as server, server.client(retry=LEARNING) as client:
        posts = [
            client.request("POST", "/assessments", {"assessments": f'{{"name":"under limit {k}"}}'})
            for k in range(3)
        ]
        summary, *created = await asyncio.gather(
            export_results(client, ExportOptions(output=output)), *posts
        )
        stats = client.stats
    lines = read_lines(output)
    assert len(lines) == sum(SIZES) == summary.records
    assert set(lines) == expected_lines(fake)
    # each POST created its assessment once, however often it was refused
    new = {k: v for k, v in fake.assessments.items() if k not in before}
    assert sorted(v["name"] for v in new.values()) == [f"under limit {k}" for k in range(3)]
    assert {c["assessmentId"] for c in created} == set(new)
    # the refused share is there to see, and agrees with the server's count
    assert fake.throttled > 0
    assert stats.throttled == fake.throttled
    assert stats.requests == fake.requests
    assert 0 < stats.throttled / stats.requests < 1
    assert stats.failures == 0
    assert stats.allowed_rate is not None
    assert stats.allowed_rate > 0
    outcomes = {r.outcome for r in fake.log}
    assert {"E509", "http429"} <= outcomes  # refused both ways
    learned = [r for r in caplog.records if "Mettl limits the request rate" in r.getMessage()]
    assert learned
    assert all(r.levelno == logging.INFO for r in learned)
    assert len(learned) < stats.throttled  # a summary, not a line per refusal


async def test_a_post_refused_more_often_than_the_attempts_is_sent_until_accepted(
    server: FakeMettlServer,
) -> None:
    """Throttling proves Mettl did not act: a POST is repeated, and the retry budget
    (2 attempts here) is not used up by it."""
    fake = server.fake
    fake.add_fault("E509", times=3, path="/assessments", method="POST")
    fake.add_fault("http429", times=2, path="/assessments", method="POST", retry_after="0")
    before = len(fake.assessments)
    async with server.client(
        retry=RetryPolicy(attempts=2, instant=True, learn_rate=False)
    ) as mettl:
        created = await mettl.request("POST", "/assessments", {"assessments": '{"name":"once"}'})
        assert mettl.stats.throttled == 5
        assert mettl.stats.retries == 5
    assert [r.outcome for r in fake.log] == ["E509"] * 3 + ["http429"] * 2 + ["SUCCESS"]
    assert len(fake.assessments) == before + 1
    assert fake.assessments[created["assessmentId"]] == {"name": "once"}


async def test_a_call_throttled_forever_ends_at_its_deadline(server: FakeMettlServer) -> None:
    server.fake.add_fault("E509", times=1_000_000)
    async with server.client(throttle_deadline=0.3, retry=LEARNING) as mettl:
        with pytest.raises(ThrottledError) as caught:
            await mettl.request("GET", "/account")
        stats = mettl.stats
    error = caught.value
    assert isinstance(error, RateLimitError)
    assert error.deadline == 0.3
    assert "0.3 s throttle_deadline" in str(error)
    assert error.code == "E509"
    assert error.status == 200
    assert error.attempts == server.fake.requests == stats.requests >= 1
    assert f"{error.attempts} attempt" in str(error)
    assert stats.failures == 1
    assert stats.throttled == error.attempts


async def test_a_zero_deadline_gives_up_at_the_first_refusal(server: FakeMettlServer) -> None:
    server.fake.add_fault("http429", retry_after="7")
    async with server.client(throttle_deadline=0) as mettl:
        with pytest.raises(ThrottledError) as caught:
            await mettl.request("GET", "/account")
    assert (caught.value.attempts, caught.value.status, caught.value.retry_after) == (1, 429, 7.0)
    assert server.fake.requests == 1


@pytest.mark.parametrize("deadline", [-1.0, math.nan])
def test_a_bad_deadline_is_refused(deadline: float) -> None:
    with pytest.raises(ConfigurationError, match="throttle_deadline"):
        MettlClient("a", "b", throttle_deadline=deadline)


async def test_the_allowed_rate_is_shown_once_there_is_one(server: FakeMettlServer) -> None:
    async with server.client() as unlimited, server.client(requests_per_second=50) as capped:
        await unlimited.request("GET", "/account")
        await capped.request("GET", "/account")
        assert unlimited.stats.allowed_rate is None
        assert capped.stats.allowed_rate == 50.0
    server.fake.add_fault("E509", times=1)
    async with server.client(retry=LEARNING, requests_per_second=50) as learning:
        await learning.request("GET", "/account")
        assert learning.stats.throttled == 1
        assert learning.stats.allowed_rate is not None
        assert learning.stats.allowed_rate < 50.0


async def test_a_policy_that_does_not_learn_retries_without_slowing_down(
    server: FakeMettlServer,
) -> None:
    server.fake.add_fault("E509", times=3)
    async with server.client() as mettl:  # RetryPolicy(instant=True, learn_rate=False)
        await mettl.request("GET", "/account")
        assert mettl.stats.throttled == 3
        assert mettl.stats.allowed_rate is None


async def test_an_instant_policy_still_learns_the_rate(server: FakeMettlServer) -> None:
    """instant=True only waits zero seconds: the client still slows down to Mettl's rate."""
    server.fake.add_fault("E509", times=1)
    async with server.client(retry=RetryPolicy(instant=True)) as mettl:
        await mettl.request("GET", "/account")
        assert mettl.stats.throttled == 1
        assert mettl.stats.allowed_rate is not None


async def test_the_fake_refuses_beyond_its_rate_half_e509_half_429(
    server: FakeMettlServer,
) -> None:
    """A bucket of one that refills in 1000 s: the first request goes, the rest are refused."""
    fake = server.fake
    fake.set_rate_limit(rate=0.001, burst=1)
    async with server.client(throttle_deadline=0) as mettl:
        await mettl.request("GET", "/account")
        statuses = []
        for _ in range(4):
            with pytest.raises(ThrottledError) as caught:
                await mettl.request("GET", "/account")
            statuses.append((caught.value.status, caught.value.retry_after))
    assert statuses == [(200, None), (429, 1.0), (200, None), (429, 1.0)]
    assert [r.outcome for r in fake.log] == ["SUCCESS", "E509", "http429", "E509", "http429"]
    assert fake.throttled == 4
    fake.set_rate_limit()  # lifted
    async with server.client() as mettl:
        await mettl.request("GET", "/account")


def test_the_fake_servers_limit_options() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_fake_server_arguments(parser)
    fake = fake_from_arguments(
        parser.parse_args(
            ["--schedules", "1", "--candidates", "1", "--rate", "20", "--burst", "10"]
        )
    )
    assert (fake.rate_limit.rate, fake.rate_limit.burst) == (20.0, 10.0)
    assert fake.rate_limit.window_limit is None
    fake = fake_from_arguments(
        parser.parse_args(
            ["--schedules", "1", "--window-limit", "40", "--window", "5", "--http429-share", "0"]
        )
    )
    assert (fake.rate_limit.window_limit, fake.rate_limit.window) == (40, 5.0)
    assert fake.rate_limit.http429_share == 0.0
    assert not fake_from_arguments(parser.parse_args(["--schedules", "1"])).rate_limit.active
    with pytest.raises(ValueError, match="--burst needs --rate"):
        fake_from_arguments(parser.parse_args(["--burst", "3"]))
    with pytest.raises(ValueError, match="rate must be > 0"):
        fake_from_arguments(parser.parse_args(["--rate", "0"]))


# -- clients sharing one key --------------------------------------------------------------


async def test_a_client_starts_at_the_rate_learned_on_its_key_before(
    server: FakeMettlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier process left the key's limit in the shared file: the next client starts
    at it, so the fake's limit refuses nothing at its start (no burst)."""
    fake = server.fake
    fake.set_rate_limit(rate=8.0, burst=1.0)
    origin = str(URL(server.base_url).origin())
    earlier = rate_share(origin, server.public_key)
    assert earlier is not None
    earlier.exchange(0.0, PeerRate(accepting=8.0, busy=True, limit=8.0))
    earlier.leave()
    async with server.client(retry=LEARNING) as mettl:
        await mettl.request("GET", "/account")
        assert mettl.stats.allowed_rate == pytest.approx(8.0, rel=0.1)
        await asyncio.gather(*(mettl.request("GET", "/account") for _ in range(12)))
        assert mettl.stats.throttled == fake.throttled
    assert fake.throttled <= 1
    # with sharing turned off, the same start is a burst into the limit
    monkeypatch.setenv("METTL_ASYNC_SHARE_RATE", "0")
    fake.set_rate_limit(rate=8.0, burst=1.0)
    before = fake.throttled
    async with server.client(retry=LEARNING) as mettl:
        await mettl.request("GET", "/account")
        assert mettl.stats.allowed_rate is None
        await asyncio.gather(*(mettl.request("GET", "/account") for _ in range(12)))
    assert fake.throttled - before >= 2


def shared_files() -> list[Path]:
    """The shared rate files in this test's cache directory (see conftest)."""
    return sorted(Path(os.environ["METTL_ASYNC_CACHE_DIR"]).rglob("*.json"))


async def test_an_instant_policy_shares_nothing(server: FakeMettlServer) -> None:
    async with server.client() as mettl:  # RetryPolicy(instant=True): the rate never learns
        await mettl.request("GET", "/account")
    assert shared_files() == []


@pytest.mark.slow
async def test_a_webhook_listener_fetching_results_while_an_export_runs_both_finish(
    tmp_path: Path,
) -> None:
    """One key, two clients (an export; a listener fetching each result a webhook names)
    against 10 requests/s: every record exported once, every fetch answered, no failure."""
    account = FakeAccount([150, 90, 60, 200, 120], seed=3)
    fake = FakeMettl(account=account)
    fake.set_rate_limit(rate=10.0, burst=3.0)
    output = tmp_path / "results.jsonl"
    schedule = account.schedules[1]
    emails = [account.email(schedule, j) for j in schedule.order()[:25]]
    async with (
        FakeMettlServer(fake) as server,
        server.client(retry=LEARNING) as exporter,
        server.client(retry=LEARNING) as listener,
    ):

        async def listen() -> list[dict[str, object]]:
            fetched = []
            for email in emails:  # a webhook every 0.2 s, each result fetched at once
                await asyncio.sleep(0.2)
                fetched.append(await listener.get_candidate_result_raw(schedule.access_key, email))
            return fetched

        summary, fetched = await asyncio.gather(
            export_results(exporter, ExportOptions(output=output)), listen()
        )
        assert exporter.stats.failures == listener.stats.failures == 0
    assert summary.records == len(read_lines(output)) == 620
    assert set(read_lines(output)) == expected_lines(fake)
    assert [record["email"] for record in fetched] == emails
    assert fake.throttled == exporter.stats.throttled + listener.stats.throttled
