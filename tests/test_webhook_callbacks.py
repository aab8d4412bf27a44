"""The fake Mettl calls back: schedules with webhook URLs get Mettl's POSTs as the account changes.

Each test runs a real receiver (``webhooks.create_app`` on a loopback aiohttp
server), points a schedule of the fake at it through the real client, changes
the fake's account, and waits for the deliveries (never a sleep).
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web

from mettl_async import (
    Access,
    AccessType,
    FinishTestEvent,
    GradedAssessmentEvent,
    MettlClient,
    ScheduleSettings,
    ScheduleType,
    StartAssessmentEvent,
    WebhookEventType,
    webhooks,
)
from mettl_async.cli.entry import main
from mettl_async.testing import (
    DEMO_PRIVATE_KEY,
    DEMO_PUBLIC_KEY,
    CallbackRetry,
    FakeMettl,
    FakeMettlServer,
)

from .loopback import serving

USER, PASSWORD = "mettl", "s3cret:pass"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class Receiver:
    """A webhook receiver under ``/hooks`` of a loopback server, and what reached it."""

    url: str
    events: list[webhooks.WebhookEvent] = attrs.Factory(list)
    #: The headers of every request that reached the server (answered or not).
    headers: list[dict[str, str]] = attrs.Factory(list)
    #: Answers to give instead of the receiver's, first to last (then the receiver answers).
    refusals: list[int] = attrs.Factory(list)
    #: Set on each event received.
    arrived: asyncio.Event = attrs.Factory(asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    received = Receiver(url="")

    async def on_event(event: webhooks.WebhookEvent) -> None:
        received.events.append(event)
        received.arrived.set()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        received.headers.append(dict(request.headers))
        if received.refusals:
            return web.json_response({"status": "busy"}, status=received.refusals.pop(0))
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.add_subapp("/hooks", webhooks.create_app(on_event, username=USER, password=PASSWORD))
    async with serving(app) as url:
        received.url = url + "/hooks"
        yield received


@pytest.fixture
async def server() -> AsyncIterator[FakeMettlServer]:
    """A fake Mettl whose webhook calls are retried at once."""
    async with FakeMettlServer() as running:
        running.fake.callbacks.retry = CallbackRetry(instant=True)
        yield running


def new_schedule(url: str, **options: Any) -> ScheduleSettings:
    return webhooks.with_webhooks(
        ScheduleSettings(
            name="Webhooks drive",
            source_app="HR portal",
            access=Access(type=AccessType.OPEN_FOR_ALL),
            schedule_type=ScheduleType.ALWAYS_ON,
        ),
        url,
        **options,
    )


async def created_schedule(server: FakeMettlServer, url: str, **options: Any) -> str:
    async with server.client() as mettl:
        created = await mettl.create_schedule(999000, new_schedule(url, **options))
    return created.access_key


def assert_both_auth_forms(headers: dict[str, str]) -> None:
    assert headers["Authorization"] == f"Basic {TOKEN}"
    assert headers["php-auth-user"] == USER
    assert headers["php-auth-pw"] == PASSWORD
    assert headers["Content-Type"] == "application/json"


async def test_a_candidates_whole_test_calls_each_url_authenticated(
    server: FakeMettlServer, receiver: Receiver
) -> None:
    """start -> finish -> graded -> resumed -> finish: five calls, each to its URL, each
    with both of Mettl's credential forms, each parsed by the receiver."""
    key = await created_schedule(
        server, receiver.url, username=USER, password=PASSWORD, separate_paths=True
    )
    fake = server.fake
    (email,) = fake.mutate.add(key)
    fake.mutate.finish(key, email)
    fake.mutate.grade(key, email)
    fake.mutate.resume(key, email)
    fake.mutate.finish(key, email, finish_mode="TimeExpired")
    deliveries = await fake.deliveries_settled()

    kinds = [d.event_type.value for d in deliveries]
    assert kinds == [
        "startAssessment",
        "finishTest",
        "gradedAssessment",
        "candidateTestResumed",
        "finishTest",
    ]
    paths = ["start", "finish", "graded", "resumed", "finish"]
    assert [d.url for d in deliveries] == [f"{receiver.url}/{path}" for path in paths]
    assert all(d.delivered and d.statuses == [200] and d.attempts == 1 for d in deliveries)
    # the receiver took every one (none was a duplicate of another); calls are
    # independent, so they may arrive in any order, as webhooks do
    assert Counter(type(e).__name__ for e in receiver.events) == Counter(
        type(d.event).__name__ for d in deliveries
    )
    assert len(receiver.headers) == 5
    for headers in receiver.headers:
        assert_both_auth_forms(headers)
    for event in receiver.events:
        assert (event.invitation_key, event.email, event.source_app) == (key, email, "HR portal")
    first_finish, second_finish = deliveries[1].event, deliveries[4].event
    assert isinstance(second_finish, FinishTestEvent)
    assert second_finish.finish_mode == "TimeExpired"
    assert webhooks.event_key(first_finish) != webhooks.event_key(second_finish)
    assert fake.mutate.status(key, email) == "InProcessing"


async def test_edit_schedule_gives_an_existing_schedule_its_urls(
    server: FakeMettlServer, receiver: Receiver
) -> None:
    """A schedule without URLs calls nobody; after edit_schedule it does. The graded
    event carries the result the API then returns."""
    fake = server.fake
    key = fake.account.schedules[0].access_key
    in_progress = fake.mutate.add(key, 2)  # two candidates start the test
    fake.mutate.grade(key, in_progress[0])
    assert fake.deliveries == []

    settings = webhooks.with_webhooks(
        ScheduleSettings(), receiver.url, username=USER, password=PASSWORD
    )
    async with server.client() as mettl:
        await mettl.edit_schedule(key, settings)
        fake.mutate.grade(key, in_progress[1])
        deliveries = await fake.deliveries_settled()
        result = await mettl.get_candidate_result(key, in_progress[1])

    assert [d.event_type for d in deliveries] == [
        WebhookEventType.FINISH_TEST,
        WebhookEventType.GRADED_ASSESSMENT,
    ]
    assert all(d.url == receiver.url for d in deliveries)  # one URL for all four
    graded = receiver.events[-1]
    assert isinstance(graded, GradedAssessmentEvent)
    assert graded.email == in_progress[1]
    assert result.test_status.result is not None
    assert graded.marks_scored == result.test_status.result.total_marks
    assert graded.max_marks == result.test_status.result.max_marks
    assert graded.schedule_title == fake.account.schedules[0].name
    assert graded.test_status is not None
    assert graded.test_status.status == "Completed"
    assert graded == deliveries[-1].event


async def test_a_refused_call_is_retried_until_it_is_taken(
    server: FakeMettlServer, receiver: Receiver
) -> None:
    """503 then 500 then 200: three attempts of the same bytes, one event received."""
    key = await created_schedule(server, receiver.url, username=USER, password=PASSWORD)
    receiver.refusals[:] = [503, 500]
    server.fake.mutate.add(key)
    (delivery,) = await server.fake.deliveries_settled()
    assert delivery.statuses == [503, 500, 200]
    assert delivery.attempts == 3
    assert delivery.delivered
    assert len(receiver.headers) == 3
    assert [type(e) for e in receiver.events] == [StartAssessmentEvent]


async def test_the_receivers_own_503_is_retried(
    server: FakeMettlServer, receiver: Receiver
) -> None:
    """A callback raising RetryLater answers 503 (Retry-After capped by the retry policy)."""
    seen: list[webhooks.WebhookEvent] = []

    async def busy_once(event: webhooks.WebhookEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise webhooks.RetryLater("database warming up", retry_after=30)

    async with serving(webhooks.create_app(busy_once)) as url:
        key = await created_schedule(server, url + "/")
        server.fake.mutate.add(key, completed=True)
        deliveries = await server.fake.deliveries_settled()
    assert [d.statuses for d in deliveries] == [[503, 200], [200], [200]]
    assert Counter(type(e) for e in seen) == {
        StartAssessmentEvent: 2,
        FinishTestEvent: 1,
        GradedAssessmentEvent: 1,
    }
    # no credentials configured: none sent
    assert "Authorization" not in deliveries[0].headers


async def test_a_call_nobody_takes_is_given_up_after_its_attempts(
    server: FakeMettlServer, refused_url: str, receiver: Receiver
) -> None:
    server.fake.callbacks.retry = CallbackRetry(attempts=3, instant=True)
    key = await created_schedule(server, refused_url + "/")
    wrong = await created_schedule(server, receiver.url, username=USER, password="wrong")
    server.fake.mutate.add(key)
    server.fake.mutate.add(wrong)
    unreachable, unauthorized = await server.fake.deliveries_settled()
    assert unreachable.statuses == [None, None, None]
    assert len(unreachable.errors) == 3
    assert "ClientConnectorError" in unreachable.errors[0]
    assert not unreachable.delivered
    assert unreachable.settled
    assert unauthorized.statuses == [401, 401, 401]
    assert not unauthorized.delivered
    assert receiver.events == []


def test_the_backoff_doubles_to_its_cap_and_obeys_retry_after() -> None:
    retry = CallbackRetry()
    assert [retry.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert retry.delay(1, "3") == 3.0
    assert retry.delay(1, "120") == 8.0  # capped
    assert retry.delay(2, "soon") == 1.0  # unreadable: the backoff
    assert CallbackRetry(instant=True).delay(4, "5") == 0.0
    with pytest.raises(ValueError, match="attempts"):
        CallbackRetry(attempts=0)
    with pytest.raises(ValueError, match="max_delay"):
        CallbackRetry(max_delay=float("inf"))


async def test_two_events_of_one_candidate_in_one_second_have_different_timestamps(
    server: FakeMettlServer, receiver: Receiver
) -> None:
    """A frozen clock still gives a later event a later timestamp_GMT (the dedup key)."""
    frozen = time.time()
    server.fake.clock = lambda: frozen
    key = await created_schedule(server, receiver.url, username=USER, password=PASSWORD)
    (email,) = server.fake.mutate.add(key)
    for _ in range(2):
        server.fake.mutate.finish(key, email)
        server.fake.mutate.resume(key, email)
    await server.fake.deliveries_settled()
    finishes = [e for e in receiver.events if isinstance(e, FinishTestEvent)]
    assert len(finishes) == 2
    first, second = (finish.timestamp_gmt for finish in finishes)
    assert first is not None
    assert second is not None
    assert (second - first).total_seconds() == 1


async def test_a_change_before_the_loop_runs_is_delivered_once_it_does(
    receiver: Receiver,
) -> None:
    """Deliveries wait for an event loop: a change made without one is sent at startup."""
    fake = FakeMettl()
    fake.callbacks.retry = CallbackRetry(instant=True)
    key = fake.account.schedules[0].access_key
    fake.state.created_schedules[key] = {
        "testFinishNotificationUrl": receiver.url,
        "testNotificationBasicAuthHeader": TOKEN,
    }
    (email,) = fake.mutate.add(key)
    await asyncio.to_thread(fake.mutate.finish, key, email)  # no event loop in that thread
    assert [d.attempts for d in fake.deliveries] == [0]
    async with FakeMettlServer(fake), asyncio.timeout(60):
        await receiver.arrived.wait()  # sent as the fake started, before anyone waits
        (delivery,) = await fake.wait_for_deliveries(1)
    assert delivery.delivered
    assert [type(e) for e in receiver.events] == [FinishTestEvent]


async def test_stopping_the_fake_stops_its_calls(server: FakeMettlServer) -> None:
    """A call still waiting for its answer when the fake stops is settled, undelivered."""
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    app = web.Application()
    app.router.add_post("/", hang)
    async with serving(app, shutdown_timeout=0.1) as url:
        key = await created_schedule(server, url + "/")
        server.fake.mutate.add(key)
        await arrived.wait()
        await server.stop()
        async with asyncio.timeout(60):
            (delivery,) = await server.fake.deliveries_settled()
    assert delivery.settled
    assert not delivery.delivered
    assert delivery.statuses == []


async def test_the_activity_walks_a_candidate_through_its_test(receiver: Receiver) -> None:
    """``--webhook-every``: a schedule with URLs sees a candidate start, finish, be graded."""
    fake = FakeMettl()
    fake.callbacks.retry = CallbackRetry(instant=True)
    fake.callbacks.activity_every = 0.01
    async with FakeMettlServer(fake) as server:
        await created_schedule(server, receiver.url, username=USER, password=PASSWORD)
        async with asyncio.timeout(60):
            deliveries = await fake.wait_for_deliveries(4)
    assert [d.event_type.value for d in deliveries] == [
        "startAssessment",
        "finishTest",
        "gradedAssessment",
        "startAssessment",
    ]
    assert all(d.delivered for d in deliveries)
    assert len({d.email for d in deliveries[:3]}) == 1
    assert deliveries[3].email != deliveries[0].email


async def test_the_steps_of_a_test_refuse_a_candidate_in_the_wrong_state(
    server: FakeMettlServer,
) -> None:
    fake = server.fake
    key = fake.account.schedules[0].access_key
    completed = fake.mutate.emails(key, status="Completed")[0]
    with pytest.raises(ValueError, match="is Completed: only a test InProgress can finish"):
        fake.mutate.finish(key, completed)
    with pytest.raises(ValueError, match="only a test ToBeTaken can start"):
        fake.mutate.start(key, completed)
    waiting = fake.mutate.emails(key, status="ToBeTaken")[0]
    with pytest.raises(ValueError, match="can resume"):
        fake.mutate.resume(key, waiting)
    with pytest.raises(KeyError):
        fake.mutate.start(key, "nobody@example.com")
    # a resumed completed test is in progress again, in every answer
    fake.mutate.resume(key, completed)
    fake.mutate.start(key, waiting)
    async with server.client() as mettl:
        for email in (completed, waiting):
            result = await mettl.get_candidate_result(key, email)
            assert result.test_status.status == "InProgress"
        fake.mutate.finish(key, waiting)
        result = await mettl.get_candidate_result(key, waiting)
        assert result.test_status.status == "InProcessing"
        fake.mutate.grade(key, waiting)
        result = await mettl.get_candidate_result(key, waiting)
        assert result.test_status.status == "Completed"


async def test_fake_server_calls_back_every_so_often(receiver: Receiver) -> None:
    """``mettl-async fake-server --webhook-every``: a schedule given URLs through the API
    receives a candidate's start, finish and graded calls, authenticated."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mettl_async",
        "fake-server",
        "--schedules",
        "1",
        "--candidates",
        "3",
        "--webhook-every",
        "0.05",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(120):
            banner = (await process.stdout.readline()).decode()
            assert "a webhook step every 0.05 s" in banner, banner
            base_url = banner.split(" on ", 1)[1].split()[0]
            settings = webhooks.with_webhooks(
                ScheduleSettings(), receiver.url, username=USER, password=PASSWORD
            )
            async with MettlClient(DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY, base_url=base_url) as mettl:
                (schedule,) = await mettl.iter_schedules().collect()
                await mettl.edit_schedule(schedule.access_key, settings)
            while not {StartAssessmentEvent, FinishTestEvent, GradedAssessmentEvent} <= {
                type(event) for event in receiver.events
            }:
                await receiver.arrived.wait()
                receiver.arrived.clear()
    finally:
        process.terminate()
        await process.wait()
    graded = next(e for e in receiver.events if isinstance(e, GradedAssessmentEvent))
    # the same candidate started and finished first (calls may arrive in any order)
    steps = {type(e) for e in receiver.events if e.email == graded.email}
    assert steps == {StartAssessmentEvent, FinishTestEvent, GradedAssessmentEvent}
    assert graded.invitation_key == schedule.access_key
    for headers in receiver.headers:
        assert_both_auth_forms(headers)


def test_fake_server_refuses_a_bad_webhook_interval(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fake-server", "--port", "0", "--webhook-every", "0"]) == 2
    assert "--webhook-every expects finite seconds > 0" in capsys.readouterr().err
