"""The session layer against the fake Mettl over loopback: signing, retries, limits, errors."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mettl_async import (
    AuthenticationError,
    ClientClosedError,
    DecodeError,
    MettlClient,
    MettlConnectionError,
    MettlTimeoutError,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
    TimestampError,
)
from mettl_async.testing import FakeMettl, FakeMettlServer


def stepping_clock(start: float | None = None) -> Callable[[], float]:
    """A clock that moves one second per reading, so every attempt gets a new ts."""
    counter = itertools.count(int(start if start is not None else time.time()))
    return lambda: float(next(counter))


async def test_get_and_post_are_accepted(client: MettlClient, fake: FakeMettl) -> None:
    account = await client.request("GET", "/account")
    assert account["accountInfo"]["name"] == "Demo Account"
    created = await client.request("POST", "/assessments", {"assessments": '{"name":"A & B"}'})
    assert created["assessmentId"] in fake.assessments
    assert fake.assessments[created["assessmentId"]] == {"name": "A & B"}
    assert [r.outcome for r in fake.log] == ["SUCCESS", "SUCCESS"]
    assert fake.bad_signatures == 0


async def test_post_with_query_placement_is_accepted(client: MettlClient, fake: FakeMettl) -> None:
    created = await client.request(
        "POST", "/assessments", {"assessments": '{"name":"Q"}'}, placement="query"
    )
    assert fake.assessments[created["assessmentId"]] == {"name": "Q"}


async def test_every_retry_is_signed_afresh(server: FakeMettlServer) -> None:
    """A retried request carries a new ts and a new asgn, and both attempts verify."""
    server.fake.add_fault("E509")
    async with server.client(clock=stepping_clock()) as mettl:
        await mettl.request("GET", "/account")
    first, second = server.fake.log
    assert (first.outcome, second.outcome) == ("E509", "SUCCESS")
    assert first.params["ts"] != second.params["ts"]
    assert first.params["asgn"] != second.params["asgn"]
    assert server.fake.bad_signatures == 0


async def test_rate_limit_in_http_200_body_is_retried(client: MettlClient, fake: FakeMettl) -> None:
    fake.add_fault("E509", times=2)
    await client.request("GET", "/account")
    assert [r.outcome for r in fake.log] == ["E509", "E509", "SUCCESS"]
    assert client.stats.retries == 2
    assert client.stats.throttled == 2


async def test_http_429_retry_after_is_honoured(server: FakeMettlServer) -> None:
    server.fake.add_fault("http429", retry_after="2")
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async with server.client(retry=RetryPolicy(backoff_initial=0.001)) as mettl:
        mettl._transport._sleep = record
        await mettl.request("GET", "/account")
    assert waits == [2.0]
    assert [r.outcome for r in server.fake.log] == ["http429", "SUCCESS"]


async def test_signature_mismatch_is_raised_at_once(server: FakeMettlServer) -> None:
    async with MettlClient(
        server.public_key, "not-the-private-key", base_url=server.base_url
    ) as mettl:
        with pytest.raises(AuthenticationError) as caught:
            await mettl.request("GET", "/account")
    assert caught.value.code == "E401"
    assert caught.value.attempts == 1
    assert server.fake.requests == 1


async def test_unknown_public_key_is_permission_denied(server: FakeMettlServer) -> None:
    async with MettlClient("nobody", "x", base_url=server.base_url) as mettl:
        with pytest.raises(PermissionDeniedError):
            await mettl.request("GET", "/account")


async def test_stale_timestamp_is_not_retried_blindly(server: FakeMettlServer) -> None:
    behind = lambda: time.time() - 3 * 86400  # noqa: E731
    async with server.client(clock=behind, correct_clock_skew=False) as mettl:
        with pytest.raises(TimestampError, match="clock") as caught:
            await mettl.request("GET", "/account")
    assert caught.value.attempts == 1
    assert caught.value.server_skew is not None
    assert caught.value.server_skew > 2 * 86400


async def test_clock_skew_is_corrected_from_the_server_date(server: FakeMettlServer) -> None:
    behind = lambda: time.time() - 3 * 86400  # noqa: E731
    async with server.client(clock=behind) as mettl:
        await mettl.request("GET", "/account")
        await mettl.request("GET", "/account")
        assert abs(mettl._transport.clock_offset - 3 * 86400) < 5
    assert [r.outcome for r in server.fake.log] == ["E504", "SUCCESS", "SUCCESS"]


async def test_connection_dropped_mid_response_is_retried(
    client: MettlClient, fake: FakeMettl
) -> None:
    fake.add_fault("drop")
    await client.request("GET", "/account")
    assert [r.outcome for r in fake.log][-1] == "SUCCESS"
    assert client.stats.retries == 1


async def test_truncated_body_is_retried_then_reported(server: FakeMettlServer) -> None:
    server.fake.add_fault("truncate", times=5)
    async with server.client(
        retry=RetryPolicy(attempts=2, instant=True, learn_rate=False)
    ) as mettl:
        with pytest.raises(DecodeError) as caught:
            await mettl.request("GET", "/account")
    assert caught.value.attempts == 2
    assert caught.value.status == 200
    assert caught.value.excerpt.startswith('{"status":"SUCCESS"')


async def test_slow_server_is_a_timeout(server: FakeMettlServer) -> None:
    server.fake.add_fault("slow", delay=5.0, times=2)
    async with server.client(
        timeout=0.2, retry=RetryPolicy(attempts=2, instant=True, learn_rate=False)
    ) as mettl:
        with pytest.raises(MettlTimeoutError) as caught:
            await mettl.request("GET", "/account")
    assert caught.value.attempts == 2


async def test_per_call_timeout_overrides_the_client_timeout(server: FakeMettlServer) -> None:
    server.fake.add_fault("slow", delay=5.0)
    async with server.client(timeout=30, retry=RetryPolicy.never()) as mettl:
        with pytest.raises(MettlTimeoutError):
            await mettl.request("GET", "/account", timeout=0.2)


async def test_post_is_not_repeated_after_a_server_error(
    client: MettlClient, fake: FakeMettl
) -> None:
    """The server may have acted on a POST that failed with a 5xx: it is not sent twice."""
    fake.add_fault("http500", path="/assessments")
    with pytest.raises(ServerError):
        await client.request("POST", "/assessments", {"assessments": '{"name":"once"}'})
    assert fake.requests == 1


async def test_post_is_not_repeated_after_a_dropped_connection(
    client: MettlClient, fake: FakeMettl
) -> None:
    fake.add_fault("drop", path="/assessments")
    with pytest.raises(MettlConnectionError):
        await client.request("POST", "/assessments", {"assessments": '{"name":"once"}'})
    assert fake.requests == 1


async def test_post_is_repeated_after_a_rate_limit_answer(
    client: MettlClient, fake: FakeMettl
) -> None:
    fake.add_fault("http429", path="/assessments", retry_after="0")
    before = len(fake.assessments)
    created = await client.request("POST", "/assessments", {"assessments": '{"name":"twice"}'})
    assert fake.assessments[created["assessmentId"]] == {"name": "twice"}
    assert len(fake.assessments) == before + 1


async def test_post_is_repeated_when_the_connection_was_refused(refused_url: str) -> None:
    async with MettlClient(
        "a",
        "b",
        base_url=refused_url,
        retry=RetryPolicy(attempts=3, instant=True, learn_rate=False),
    ) as mettl:
        with pytest.raises(MettlConnectionError) as caught:
            await mettl.request("POST", "/assessments", {"assessments": "{}"})
    assert caught.value.attempts == 3
    assert caught.value.request_sent is False


async def test_in_flight_bound_is_never_exceeded(server: FakeMettlServer) -> None:
    server.fake.latency = 0.05
    async with server.client(max_in_flight=3) as mettl:
        await asyncio.gather(*(mettl.request("GET", "/account") for _ in range(20)))
        assert 1 <= mettl.stats.peak_in_flight <= 3
    assert 1 <= server.fake.peak_in_flight <= 3
    assert server.fake.requests == 20


async def test_requests_per_second_spaces_request_starts(server: FakeMettlServer) -> None:
    """Five calls at once at 50 requests a second: the k-th starts k intervals after the first.

    The pacer runs on the test's clock, which moves only when the pacer sleeps through
    its injected sleep: the starts show the waits the rate asked for, and no wall time
    is measured (a busy machine changes nothing).
    """
    rate = 50
    # Read before the client makes its rate, so that the test's clock is never ahead of it.
    clock = [time.monotonic()]
    naps: list[float] = []

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        clock[0] += seconds
        await asyncio.sleep(0)

    starts: list[float] = []
    async with server.client(
        requests_per_second=rate, on_request=lambda _: starts.append(clock[0])
    ) as mettl:
        pacer = mettl._transport._pacer
        pacer.clock = lambda: clock[0]
        pacer._sleep = sleep
        await asyncio.gather(*(mettl.request("GET", "/account") for _ in range(5)))
    assert server.fake.requests == len(starts) == 5
    assert naps  # the requests after the first waited for their turn
    for k, at in enumerate(starts):
        assert at - starts[0] >= k / rate - 1e-9


async def test_borrowed_session_is_left_open(server: FakeMettlServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with server.client(session=session) as mettl:
            await mettl.request("GET", "/account")
        assert not session.closed


async def test_closed_client_refuses_requests(server: FakeMettlServer) -> None:
    mettl = server.client()
    await mettl.request("GET", "/account")
    await mettl.close()
    await mettl.close()  # idempotent
    with pytest.raises(ClientClosedError, match="closed"):
        await mettl.request("GET", "/account")


async def test_private_key_appears_nowhere(
    server: FakeMettlServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing call with DEBUG logging on leaks the key into no log, error or repr."""
    secret = server.private_key
    caplog.set_level(logging.DEBUG)
    server.fake.add_fault("E503", times=10)
    async with server.client(
        retry=RetryPolicy(attempts=3, instant=True, learn_rate=False)
    ) as mettl:
        with pytest.raises(ServerError) as caught:
            await mettl.request("GET", "/account", {"note": "hello"})
        client_repr = repr(mettl)
    async with MettlClient(server.public_key, "wrong-" + secret, base_url=server.base_url) as bad:
        with pytest.raises(AuthenticationError) as caught_auth:
            await bad.request("GET", "/account")
        assert secret not in repr(bad)
    texts = [client_repr, str(caught.value), repr(caught.value), caught.value.url]
    texts += [str(caught_auth.value), repr(caught_auth.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("attempt 3" in record.getMessage() for record in caplog.records)
    for text in texts:
        assert secret not in text
    # asgn is redacted wherever a URL is shown
    assert "asgn=REDACTED" in caught.value.url
    assert all("asgn=" not in t or "asgn=REDACTED" in t for t in texts)


async def test_one_debug_line_per_attempt(
    client: MettlClient, fake: FakeMettl, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mettl_async")
    fake.add_fault("E509")
    await client.request("GET", "/account")
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.DEBUG and r.name == "mettl_async.http"
    ]
    assert len(lines) == 2
    assert lines[0].startswith("GET /v2/account -> HTTP 200 E509 (attempt 1,")
    assert lines[1].startswith("GET /v2/account -> HTTP 200 SUCCESS (attempt 2,")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.dictionaries(
        st.sampled_from(["a", "b", "filter", "sc", "limit", "x_y", "Zeta"]),
        st.one_of(
            st.text(max_size=30),
            st.text(alphabet="&=+/%? \n\t#;,{}[]\"'", max_size=30),
            st.builds(
                lambda d: __import__("json").dumps(d),
                st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4),
            ),
        ),
        max_size=5,
    ),
    how=st.sampled_from(["GET", "POST-form", "POST-query"]),
)
async def test_any_values_are_signed_and_accepted(
    client: MettlClient, fake: FakeMettl, values: dict[str, str], how: str
) -> None:
    """Arbitrary unicode and JSON full of & = + / % ? survive the trip and verify."""
    method, _, where = how.partition("-")
    path = "/account" if method == "GET" else "/assessments"
    params = dict(values)
    if method == "POST":
        params["assessments"] = '{"name":"n & = + / % ?"}'
    await client.request(method, path, params, placement="query" if where == "query" else None)
    assert fake.bad_signatures == 0
    seen = dict(fake.log[-1].params)
    for name in ("ak", "ts", "asgn"):
        seen.pop(name)
    assert seen == params


async def test_a_closed_client_raises_its_own_error_from_concurrent_calls(
    server: FakeMettlServer,
) -> None:
    """register_candidates on a closed client raises ClientClosedError, not an exception group."""
    mettl = server.client()
    await mettl.close()
    candidates = [{"Email Address": f"c{i}@x.com", "First Name": "C"} for i in range(45)]
    with pytest.raises(ClientClosedError):
        await mettl.register_candidates(server.fake.account.schedules[0].access_key, candidates)
