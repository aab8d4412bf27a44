"""The webhook receiver: article 13's four payloads over loopback, verified, once each."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from mettl_async import (
    Access,
    CandidateTestResumedEvent,
    ConfigurationError,
    FinishMode,
    FinishTestEvent,
    GradedAssessmentEvent,
    ScheduleSettings,
    SectionalScore,
    StartAssessmentEvent,
    ValidationError,
    WebhookEventType,
    WebhookPayloadError,
)
from mettl_async._convert import to_json
from mettl_async.webhooks import (
    EVENT_PATHS,
    RECEIVER_KEY,
    Claim,
    EventCallback,
    InMemorySeenStore,
    SeenStore,
    WebhookEvent,
    WebhookReceiver,
    basic_auth_header,
    create_app,
    event_key,
    parse_event,
    webhook_urls,
    with_webhooks,
)

from .conftest import HERE, load_json

SAMPLES = {
    "startAssessment": "article13_webhook_start_assessment",
    "finishTest": "article13_webhook_finish_test",
    "gradedAssessment": "article13_webhook_graded_assessment",
    "candidateTestResumed": "article13_webhook_candidate_test_resumed",
}
USER, PASSWORD = "mettl-hook", "s3cr3t:with-colon"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
MINIMAL_SC = ScheduleSettings(
    name="Test Link Name",
    source_app="App Name",
    access=Access(type="OpenForAll"),
    schedule_type="AlwaysOn",
)


def sample(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = load_json(f"samples/{SAMPLES[kind]}.json")
    return data


def sample_bytes(kind: str) -> bytes:
    return (HERE / "samples" / f"{SAMPLES[kind]}.json").read_bytes()


def auth(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    """The three headers article 13 says Mettl sends."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}", "php-auth-user": user, "php-auth-pw": password}


class Recorder:
    """An application callback that keeps what it was given."""

    def __init__(self, delay: float = 0.0) -> None:
        self.events: list[WebhookEvent] = []
        self.delay = delay

    async def __call__(self, event: WebhookEvent) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.events.append(event)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a free loopback port (with aiohttp's access log on); yields its base URL."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Arrivals:
    """A receiver's ``key`` (``event_key``) that sets ``all_in`` once ``count`` deliveries
    were read: a test then knows they reached the receiver, without sleeping."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.all_in = asyncio.Event()

    def key(self, event: WebhookEvent) -> str | None:
        self.count -= 1
        if self.count <= 0:
            self.all_in.set()
        return event_key(event)


async def spin(turns: int = 200) -> None:
    """Let everything that can run without waiting for I/O run (event-loop turns, no clock)."""
    for _ in range(turns):
        await asyncio.sleep(0)


@asynccontextmanager
async def receiver_at(
    on_event: EventCallback, **options: Any
) -> AsyncIterator[tuple[str, aiohttp.ClientSession, WebhookReceiver]]:
    app = create_app(on_event, **options)
    async with serving(app) as url, aiohttp.ClientSession() as http:
        yield url, http, app[RECEIVER_KEY]


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], Any]:
    data = io.BytesIO(body) if isinstance(body, bytes) and len(body) > 1024 * 1024 else body
    async with http.post(url, data=data, headers=headers) as response:
        answer = await response.json(content_type=None)
        return response.status, dict(response.headers), answer


# --------------------------------------------------------------------------
# parse_event
# --------------------------------------------------------------------------

CLASSES = {
    "startAssessment": StartAssessmentEvent,
    "finishTest": FinishTestEvent,
    "gradedAssessment": GradedAssessmentEvent,
    "candidateTestResumed": CandidateTestResumedEvent,
}


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_parse_event_accepts_bytes_text_and_mappings(kind: str) -> None:
    """The same payload as bytes, text or a decoded mapping gives the same typed event."""
    blob = sample_bytes(kind)
    events = [parse_event(blob), parse_event(blob.decode()), parse_event(sample(kind))]
    events.append(parse_event(memoryview(blob)))
    assert all(type(event) is CLASSES[kind] for event in events)
    assert events[0] == events[1] == events[2] == events[3]
    assert events[0].candidate_instance_id == 99999999


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"EVENT_TYPE": "finishTest",', "body: is not JSON"),
        (b"", "body: is empty"),
        (b"  \n", "body: is empty"),
        (b'["finishTest"]', "body: is JSON list, not the object Mettl sends"),
        (b'"finishTest"', "body: is JSON str"),
        (b'{"EVENT_TYPE": "testPaused"}', "EVENT_TYPE: unknown event type 'testPaused'"),
        (b'{"invitation_key": "x"}', "EVENT_TYPE: unknown event type None"),
        (b"\xff\xfe{}", "body: is not JSON"),
        (b'{"EVENT_TYPE": "gradedAssessment", "testStatus": [1]}', "GradedAssessmentEvent"),
    ],
    ids=[
        "truncated",
        "empty",
        "blank",
        "array",
        "string",
        "unknown",
        "missing",
        "not-utf8",
        "wrong-shape",
    ],
)
def test_parse_event_rejects_what_is_not_an_event(body: bytes, reason: str) -> None:
    """Anything but one of the four event objects raises WebhookPayloadError with a reason."""
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(body)
    assert caught.value.reason.startswith(reason)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.excerpt == body.decode("utf-8", "replace")


def test_payload_error_excerpt_is_short_and_pickles() -> None:
    """A huge malformed body is reported by its first 200 characters; the error pickles."""
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event("x" * 10_000)
    error = caught.value
    assert len(error.excerpt) == 201
    assert error.excerpt.endswith("…")
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.problems, clone.excerpt) == (error.problems, error.excerpt)


def test_parse_event_accepts_a_byte_order_mark_and_unknown_fields() -> None:
    """A UTF-8 BOM or a field Mettl adds later does not make a payload invalid."""
    data = sample("finishTest")
    data["brand_new_field"] = {"nested": [1, 2]}
    blob = b"\xef\xbb\xbf" + to_bytes(data)
    event = parse_event(blob)
    assert isinstance(event, FinishTestEvent)
    assert event.raw["brand_new_field"] == {"nested": [1, 2]}


def to_bytes(data: Any) -> bytes:
    import orjson

    return orjson.dumps(data)


def test_event_key_names_type_candidate_instance_invitation_and_timestamp() -> None:
    """The dedup key is event type + candidate_instance_id + invitation_key + timestamp_GMT.

    (Changed by the dedup decision of issue 14: a later event of the same candidate,
    a second finishTest after candidateTestResumed, has a new timestamp and is new.)
    """
    start, finish = parse_event(sample("startAssessment")), parse_event(sample("finishTest"))
    stamp = "Fri, 11 Feb 2022 23%3A08%3A02 GMT"
    assert event_key(start) == f"startAssessment:99999999:0x0x0x0x0x:{stamp}"
    assert event_key(finish) == f"finishTest:99999999:0x0x0x0x0x:{stamp}"
    other = sample("finishTest")
    other["candidate_instance_id"] = 1
    assert event_key(parse_event(other)) == f"finishTest:1:0x0x0x0x0x:{stamp}"
    # a different timestamp is another event (a retried delivery is byte-identical)
    later = sample("finishTest")
    later["timestamp_GMT"] = "Sat, 12 Feb 2022 00:00:00 GMT"
    assert event_key(parse_event(later)) != event_key(finish)
    assert event_key(parse_event(sample("finishTest"))) == event_key(finish)


def test_event_key_without_ids_falls_back_to_the_payload() -> None:
    """A payload with neither id is keyed by its content, so distinct ones never collapse."""
    one = {"EVENT_TYPE": "startAssessment", "email": "a@x"}
    two = {"EVENT_TYPE": "startAssessment", "email": "b@x"}
    key = event_key(parse_event(one))
    assert key.startswith("startAssessment:sha256:")
    assert key == event_key(parse_event(dict(reversed(one.items()))))
    assert key != event_key(parse_event(two))


# --------------------------------------------------------------------------
# The receiver over loopback
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SAMPLES))
async def test_each_article13_payload_arrives_as_its_typed_event(kind: str) -> None:
    """POSTing each of article 13's four payloads hands the application its typed event."""
    recorder = Recorder()
    async with receiver_at(recorder, username=USER, password=PASSWORD) as (url, http, receiver):
        status, _, answer = await post(http, url + "/", sample_bytes(kind), auth())
    assert (status, answer) == (200, {"status": "delivered"})
    (event,) = recorder.events
    assert type(event) is CLASSES[kind]
    assert event.event_type is WebhookEventType(kind)
    assert (event.assessment_id, event.candidate_instance_id) == (999999, 99999999)
    assert event.invitation_key == "0x0x0x0x0x"
    assert event.source_app == "App Name"
    assert event.raw == sample(kind)
    assert receiver.stats.delivered == 1


async def test_the_graded_event_arrives_with_its_scores_decoded() -> None:
    """The graded payload's JSON-in-a-string sectional_scores reach the application decoded."""
    recorder = Recorder()
    async with receiver_at(recorder) as (url, http, _):
        status, _, _ = await post(http, url, sample_bytes("gradedAssessment"))
    assert status == 200
    (event,) = recorder.events
    assert isinstance(event, GradedAssessmentEvent)
    assert event.sectional_scores == [
        SectionalScore(section_name="Section #1", section_score=5.0, section_max_score=10.0)
    ]
    assert event.finish_mode is FinishMode.NORMAL_SUBMISSION
    assert (event.marks_scored, event.max_marks, event.percentile) == (5.0, 10.0, 100.0)
    assert event.registration_details == {"Email Address": "name@email.com", "First Name": "Name"}
    assert event.test_status is not None
    assert event.test_status.result is not None


async def test_the_four_separate_urls_and_a_prefix_also_work() -> None:
    """Each event can be posted to its own URL (start, finish, graded, resumed) under a prefix."""
    recorder = Recorder()
    async with receiver_at(recorder, path="/hooks/mettl") as (url, http, _):
        for kind, segment in zip(SAMPLES, EVENT_PATHS.values(), strict=True):
            status, _, _ = await post(http, f"{url}/hooks/mettl/{segment}", sample_bytes(kind))
            assert status == 200
        status, _, _ = await post(http, f"{url}/hooks/mettl/", b"{}")
        assert status == 400  # the trailing-slash spelling of the path is served too
        async with http.get(f"{url}/hooks/mettl") as response:
            assert response.status == 405
        async with http.post(f"{url}/elsewhere", data=b"{}") as response:
            assert response.status == 404
    assert [type(e) for e in recorder.events] == list(CLASSES.values())


async def test_an_event_on_another_events_url_is_accepted_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A finishTest posted to the start URL is still delivered (EVENT_TYPE decides), and logged."""
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        async with receiver_at(recorder) as (url, http, _):
            status, _, _ = await post(http, f"{url}/start", sample_bytes("finishTest"))
    assert status == 200
    assert isinstance(recorder.events[0], FinishTestEvent)
    assert "finishTest arrived on the startAssessment URL" in caplog.text


async def test_a_receiver_mounts_in_an_existing_application() -> None:
    """WebhookReceiver.add_routes and create_app as a sub-application both serve the events."""
    recorder = Recorder()
    app = web.Application()
    WebhookReceiver(recorder).add_routes(app, "/a", separate_paths=False)
    app.add_subapp("/b", create_app(recorder))
    async with serving(app) as url, aiohttp.ClientSession() as http:
        assert (await post(http, f"{url}/a", sample_bytes("startAssessment")))[0] == 200
        assert (await post(http, f"{url}/b/finish", sample_bytes("finishTest")))[0] == 200
        async with http.post(f"{url}/a/start", data=b"{}") as response:
            assert response.status == 404
    assert len(recorder.events) == 2


async def test_a_mounted_receiver_answers_the_url_with_webhooks_gives_mettl() -> None:
    """Mounted at /mettl, the receiver answers POST /mettl: the bare URL Mettl is given."""
    recorder = Recorder()
    app = web.Application()
    app.add_subapp("/mettl", create_app(recorder))
    async with serving(app) as url, aiohttp.ClientSession() as http:
        given = with_webhooks(MINIMAL_SC, f"{url}/mettl").test_finish_notification_url
        assert given == f"{url}/mettl"
        for target in (given, f"{url}/mettl/", f"{url}/mettl/finish"):
            assert (await post(http, target, sample_bytes("finishTest")))[0] == 200, target
        async with http.post(f"{url}/mettlx", data=b"{}") as response:
            assert response.status == 404
    assert len(recorder.events) == 1  # the same event three times: delivered once


# --------------------------------------------------------------------------
# Basic authentication
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        auth(),
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"basic   {TOKEN}"},
        {"php-auth-user": USER, "php-auth-pw": PASSWORD},
        {"Authorization": "Bearer something", "php-auth-user": USER, "php-auth-pw": PASSWORD},
    ],
    ids=["all-three", "authorization", "scheme-case", "php-headers", "proxy-authorization"],
)
async def test_either_form_of_the_credentials_is_accepted(headers: dict[str, str]) -> None:
    """The Authorization header or the php-auth-user/php-auth-pw pair, matching, lets a call in."""
    recorder = Recorder()
    async with receiver_at(recorder, username=USER, password=PASSWORD) as (url, http, _):
        status, _, _ = await post(http, url, sample_bytes("finishTest"), headers)
    assert status == 200
    assert len(recorder.events) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        auth(password="wrong"),
        auth(user="someone-else"),
        auth(password=PASSWORD + "x"),
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": f"Basic {base64.b64encode(USER.encode()).decode()}"},
        {"Authorization": f"Bearer {TOKEN}"},
        {"php-auth-user": USER},
        {"php-auth-user": USER, "php-auth-pw": ""},
    ],
    ids=[
        "none",
        "wrong-password",
        "wrong-user",
        "longer-password",
        "not-base64",
        "no-colon",
        "bearer",
        "user-only",
        "empty-password",
    ],
)
async def test_missing_or_wrong_credentials_get_401_and_no_delivery(
    headers: dict[str, str],
) -> None:
    """A call without the configured credentials is refused and never reaches the application."""
    recorder = Recorder()
    async with receiver_at(recorder, username=USER, password=PASSWORD) as (url, http, receiver):
        status, answer_headers, answer = await post(http, url, sample_bytes("finishTest"), headers)
    assert status == 401
    assert answer_headers["WWW-Authenticate"].startswith("Basic realm=")
    assert answer == {"status": "unauthorized", "reason": "missing or wrong credentials"}
    assert recorder.events == []
    assert receiver.stats.unauthorized == 1


async def test_credentials_are_checked_before_the_body_is_read() -> None:
    """An unauthenticated caller gets 401, not 400 or 413, whatever it sends."""
    recorder = Recorder()
    async with receiver_at(recorder, username=USER, password=PASSWORD, max_body_size=10) as (
        url,
        http,
        _,
    ):
        assert (await post(http, url, b"x" * 100))[0] == 401
        assert (await post(http, url, b"not json"))[0] == 401


async def test_without_configured_credentials_every_call_is_accepted() -> None:
    """With no username/password configured, calls with or without credentials are delivered."""
    recorder = Recorder()
    async with receiver_at(recorder, deduplicate=False) as (url, http, receiver):
        assert (await post(http, url, sample_bytes("finishTest")))[0] == 200
        assert (await post(http, url, sample_bytes("finishTest"), auth()))[0] == 200
    assert not receiver.authenticates
    assert len(recorder.events) == 2


def test_article13_sample_header_is_base64_of_username_colon_password() -> None:
    """basic_auth_header gives article 13's own example value for username:password."""
    assert basic_auth_header("username", "password") == "dXNlcm5hbWU6cGFzc3dvcmQ="


@pytest.mark.parametrize(
    ("username", "password"),
    [("", "p"), ("u", ""), ("a:b", "p"), ("u", "p\nq")],
    ids=["empty-user", "empty-password", "colon-in-user", "newline"],
)
def test_unusable_credentials_are_a_configuration_error(username: str, password: str) -> None:
    """Credentials Basic authentication cannot carry are refused when configuring, not at 3 a.m."""
    with pytest.raises(ConfigurationError):
        basic_auth_header(username, password)
    with pytest.raises(ConfigurationError):
        WebhookReceiver(Recorder(), username=username, password=password)


def test_username_without_password_is_a_configuration_error() -> None:
    """Giving only half of the credentials is refused rather than silently turning auth off."""
    with pytest.raises(ConfigurationError, match="both"):
        WebhookReceiver(Recorder(), username=USER)
    with pytest.raises(ConfigurationError, match="both"):
        create_app(Recorder(), password=PASSWORD)


# --------------------------------------------------------------------------
# Malformed bodies, size, logging
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"EVENT_TYPE": "finishTest", "invitation_key": ', "body: is not JSON"),
        (b"[1, 2]", "body: is JSON list, not the object Mettl sends"),
        (b'{"EVENT_TYPE": "testPaused"}', "EVENT_TYPE: unknown event type 'testPaused'"),
        (b'{"EVENT_TYPE": "gradedAssessment", "testStatus": "x"}', "GradedAssessmentEvent"),
    ],
    ids=["not-json", "not-object", "unknown-type", "wrong-shape"],
)
async def test_malformed_bodies_get_400_with_the_reason_and_a_logged_excerpt(
    body: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A body that is not an event is answered 400 saying why, and its start is logged."""
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        async with receiver_at(recorder) as (url, http, receiver):
            status, _, answer = await post(http, url, body)
    assert status == 400
    assert answer["status"] == "malformed"
    assert answer["reason"].startswith(reason) or reason in answer["reason"]
    assert recorder.events == []
    assert receiver.stats.malformed == 1
    (record,) = [r for r in caplog.records if r.name == "mettl_async.webhooks"]
    assert record.levelno == logging.WARNING
    assert repr(body.decode()[:200]) in record.getMessage()


async def test_an_unknown_field_in_a_payload_is_accepted() -> None:
    """Mettl adding a field to a payload does not make the receiver refuse it."""
    data = sample("startAssessment")
    data["proctoring_score"] = 0.93
    recorder = Recorder()
    async with receiver_at(recorder) as (url, http, _):
        status, _, _ = await post(http, url, to_bytes(data))
    assert status == 200
    assert recorder.events[0].raw["proctoring_score"] == 0.93


async def test_a_body_over_the_limit_gets_413_declared_or_streamed() -> None:
    """A body larger than max_body_size is refused with 413, whether or not its length is sent."""
    recorder = Recorder()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    async with receiver_at(recorder, max_body_size=1000) as (url, http, receiver):
        status, _, answer = await post(http, url, b" " * 1001)
        assert (status, answer["status"]) == (413, "too_large")
        async with http.post(url, data=chunks()) as response:  # chunked: no Content-Length
            assert response.status == 413
        padded = sample_bytes("finishTest").ljust(1000)
        assert (await post(http, url, padded))[0] == 200
    assert receiver.stats.too_large == 2
    assert len(recorder.events) == 1


async def test_the_default_limit_is_one_mebibyte() -> None:
    """Out of the box, a body over 1 MiB is refused with 413."""
    async with receiver_at(Recorder()) as (url, http, _):
        assert (await post(http, url, b" " * (1024 * 1024 + 1)))[0] == 413


async def test_credentials_appear_in_no_log_record(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever happens (accepted, refused, malformed, failing callback), no log holds a secret."""

    async def failing(event: WebhookEvent) -> None:
        raise RuntimeError("application down")

    secrets = (USER, PASSWORD, TOKEN, "wrong-password", base64.b64encode(b"x:y").decode())
    with caplog.at_level(logging.DEBUG):
        for callback in (Recorder(), failing):
            async with receiver_at(callback, username=USER, password=PASSWORD) as (url, http, _):
                await post(http, url, sample_bytes("finishTest"), auth())
                await post(http, url, sample_bytes("finishTest"), auth())
                await post(http, url, sample_bytes("gradedAssessment"), auth(password="wrong"))
                await post(
                    http, url, sample_bytes("startAssessment"), {"Authorization": "Basic eDp5"}
                )
                await post(http, url, b"{not json", auth())
        with_webhooks(MINIMAL_SC, "http://hooks.example.com/", username=USER, password=PASSWORD)
    assert len(caplog.records) >= 8
    for record in caplog.records:
        text = record.getMessage() + (caplog.handler.format(record) if record.exc_info else "")
        for secret in secrets:
            assert secret not in text, (record.name, text)


# --------------------------------------------------------------------------
# Once per event: duplicates, failures, concurrency
# --------------------------------------------------------------------------


async def test_a_redelivered_event_reaches_the_application_once() -> None:
    """Mettl delivering the same event again gets 200 'duplicate' and no second callback."""
    recorder = Recorder()
    async with receiver_at(recorder) as (url, http, receiver):
        first = await post(http, url, sample_bytes("finishTest"))
        second = await post(http, url, sample_bytes("finishTest"))
        other = await post(http, url, sample_bytes("gradedAssessment"))  # same candidate
    assert (first[0], first[2]["status"]) == (200, "delivered")
    assert (second[0], second[2]["status"]) == (200, "duplicate")
    assert other[2]["status"] == "delivered"
    assert len(recorder.events) == 2
    assert (receiver.stats.delivered, receiver.stats.duplicates) == (2, 1)


async def test_a_failing_callback_gets_500_and_the_redelivery_is_handed_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the application raises, Mettl gets 500 and its next delivery reaches the application."""
    calls: list[WebhookEvent] = []

    async def flaky(event: WebhookEvent) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("database is down")

    with caplog.at_level(logging.ERROR, logger="mettl_async"):
        async with receiver_at(flaky) as (url, http, receiver):
            failed = await post(http, url, sample_bytes("finishTest"))
            retried = await post(http, url, sample_bytes("finishTest"))
            again = await post(http, url, sample_bytes("finishTest"))
    assert (failed[0], failed[2]["status"]) == (500, "failed")
    assert (retried[0], retried[2]["status"]) == (200, "delivered")
    assert again[2]["status"] == "duplicate"
    assert len(calls) == 2
    assert receiver.stats.failed == 1
    assert "database is down" in caplog.text  # the traceback is logged


async def test_100_concurrent_deliveries_of_50_events_reach_the_application_50_times() -> None:
    """Fifty events each delivered twice, all at once, are handed over exactly once each."""
    recorder = Recorder(delay=0.02)
    payloads = []
    for i in range(50):
        data = sample(list(SAMPLES)[i % 4])
        data["candidate_instance_id"] = 1000 + i
        payloads.append(to_bytes(data))
    async with receiver_at(recorder) as (url, http, receiver):
        results = await asyncio.gather(*(post(http, url, body) for body in payloads * 2))
    assert [status for status, _, _ in results] == [200] * 100
    assert len(recorder.events) == 50
    assert len({event_key(e) for e in recorder.events}) == 50
    states = sorted(answer["status"] for _, _, answer in results)
    assert states == ["delivered"] * 50 + ["duplicate"] * 50
    assert (receiver.stats.delivered, receiver.stats.duplicates) == (50, 50)


async def test_a_duplicate_arriving_during_a_failing_delivery_handles_the_event() -> None:
    """If the first delivery's callback fails while a second waits, the second delivers it."""
    entered = asyncio.Event()
    release = asyncio.Event()
    calls: list[int] = []

    async def callback(event: WebhookEvent) -> None:
        calls.append(1)
        if len(calls) == 1:
            entered.set()
            await release.wait()
            raise RuntimeError("first attempt fails")

    read = Arrivals(2)
    async with receiver_at(callback, key=read.key) as (url, http, receiver):
        first = asyncio.create_task(post(http, url, sample_bytes("finishTest")))
        await entered.wait()
        second = asyncio.create_task(post(http, url, sample_bytes("finishTest")))
        await read.all_in.wait()  # the second delivery was read by the receiver
        await spin()
        assert not second.done()  # waiting for the first delivery's outcome
        assert len(calls) == 1
        release.set()
        results = [await first, await second]
        key = event_key(parse_event(sample("finishTest")))
        assert key in receiver.store  # type: ignore[operator]
    assert [(s, a["status"]) for s, _, a in results] == [(500, "failed"), (200, "delivered")]
    assert len(calls) == 2


async def test_a_duplicate_arriving_during_a_successful_delivery_waits_then_says_duplicate() -> (
    None
):
    """A second delivery during the first one's callback is answered only once that succeeds."""
    release = asyncio.Event()
    entered = asyncio.Event()
    recorder = Recorder()

    async def slow(event: WebhookEvent) -> None:
        entered.set()
        await release.wait()
        await recorder(event)

    read = Arrivals(2)
    async with receiver_at(slow, key=read.key) as (url, http, _):
        tasks = [asyncio.create_task(post(http, url, sample_bytes("startAssessment")))]
        await entered.wait()
        tasks.append(asyncio.create_task(post(http, url, sample_bytes("startAssessment"))))
        await read.all_in.wait()  # the second delivery was read by the receiver
        await spin()
        assert not any(task.done() for task in tasks)
        release.set()
        results = await asyncio.gather(*tasks)
    assert [a["status"] for _, _, a in results] == ["delivered", "duplicate"]
    assert len(recorder.events) == 1


async def test_without_deduplication_every_delivery_is_handed_over() -> None:
    """deduplicate=False (or a key of None) passes every delivery to the application."""
    recorder = Recorder()
    async with receiver_at(recorder, deduplicate=False) as (url, http, _):
        for _ in range(3):
            await post(http, url, sample_bytes("finishTest"))
    async with receiver_at(recorder, key=lambda event: None) as (url, http, _):
        await post(http, url, sample_bytes("finishTest"))
        await post(http, url, sample_bytes("finishTest"))
    assert len(recorder.events) == 5


async def test_a_plain_function_can_be_the_callback() -> None:
    """A synchronous callback is called like an async one (it runs in the event loop)."""
    seen: list[WebhookEvent] = []
    async with receiver_at(seen.append) as (url, http, _):
        assert (await post(http, url, sample_bytes("finishTest")))[0] == 200
    assert len(seen) == 1


class BrokenStore:
    """A shared store that is down, or that says another process holds every key."""

    def __init__(self, claim: Claim | None) -> None:
        self.answer = claim
        self.released: list[str] = []

    async def claim(self, key: str) -> Claim:
        if self.answer is None:
            raise ConnectionError("redis unreachable")
        return self.answer

    async def complete(self, key: str) -> None:
        raise ConnectionError("redis unreachable")

    async def release(self, key: str) -> None:
        self.released.append(key)


@pytest.mark.parametrize("claim", [None, "in_progress"], ids=["store-down", "other-process"])
async def test_a_store_that_cannot_say_yes_gets_503_and_retry_after(claim: Claim | None) -> None:
    """When the store fails or another process holds the event, Mettl is asked to retry."""
    recorder = Recorder()
    store = BrokenStore(claim)
    assert isinstance(store, SeenStore)
    async with receiver_at(recorder, store=store) as (url, http, receiver):
        status, headers, answer = await post(http, url, sample_bytes("finishTest"))
    assert (status, answer["status"]) == (503, "unavailable")
    assert headers["Retry-After"] == "5"
    assert recorder.events == []
    assert receiver.stats.unavailable == 1


async def test_a_store_failing_after_delivery_still_answers_200(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The application has the event, so Mettl gets 200 even if recording the key fails."""
    recorder = Recorder()
    store = BrokenStore("claimed")
    with caplog.at_level(logging.ERROR, logger="mettl_async"):
        async with receiver_at(recorder, store=store) as (url, http, _):
            status, _, _ = await post(http, url, sample_bytes("finishTest"))
    assert status == 200
    assert len(recorder.events) == 1
    assert store.released == [event_key(parse_event(sample("finishTest")))]
    assert "failed to record it" in caplog.text


async def test_in_memory_store_forgets_the_least_recently_seen_key_first() -> None:
    """The default store is bounded: past max_entries, the oldest untouched key goes."""
    store = InMemorySeenStore(max_entries=2)
    for key in ("a", "b"):
        assert await store.claim(key) == "claimed"
        await store.complete(key)
    assert await store.claim("a") == "done"  # refreshes "a"
    assert await store.claim("c") == "claimed"
    assert await store.claim("c") == "in_progress"
    await store.complete("c")
    assert "b" not in store
    assert "a" in store
    assert "c" in store
    assert len(store) == 2
    assert await store.claim("d") == "claimed"
    await store.release("d")
    assert await store.claim("d") == "claimed"
    with pytest.raises(ConfigurationError):
        InMemorySeenStore(0)


async def test_a_cancelled_delivery_releases_its_claim() -> None:
    """A callback cancelled mid-way (shutdown) leaves the event unseen for the next delivery."""
    store = InMemorySeenStore()
    started = asyncio.Event()

    async def hangs(event: WebhookEvent) -> None:
        started.set()
        await asyncio.Event().wait()

    receiver = WebhookReceiver(hangs, store=store)
    event = parse_event(sample_bytes("finishTest"))
    task = asyncio.create_task(receiver._deliver_once(event, event_key(event)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.claim(event_key(event)) == "claimed"


# --------------------------------------------------------------------------
# Configuring a schedule
# --------------------------------------------------------------------------


def test_with_webhooks_fills_the_four_urls_and_the_auth_header() -> None:
    """One call points every webhook of a new schedule at the receiver, with its credentials."""
    sc = with_webhooks(
        MINIMAL_SC, "https://hooks.example.com/mettl", username="username", password="password"
    )
    assert MINIMAL_SC.test_start_notification_url is None
    assert sc.test_start_notification_url == "https://hooks.example.com/mettl"
    assert sc.test_finish_notification_url == "https://hooks.example.com/mettl"
    assert sc.test_graded_notification_url == "https://hooks.example.com/mettl"
    assert sc.test_resume_enabled_for_expired_test_url == "https://hooks.example.com/mettl"
    assert sc.test_notification_basic_auth_header == "dXNlcm5hbWU6cGFzc3dvcmQ="
    assert sc.problems() == []
    wire = to_json(sc)
    assert '"testResumeEnabledForExpiredTestURL":"https://hooks.example.com/mettl"' in wire
    assert '"testNotificationBasicAuthHeader":"dXNlcm5hbWU6cGFzc3dvcmQ="' in wire
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        sc.name = "x"  # type: ignore[misc]  # the point of the test


def test_with_webhooks_separate_paths_match_the_receivers_routes() -> None:
    """separate_paths gives each event the URL the receiver serves for it, query kept."""
    sc = with_webhooks(MINIMAL_SC, "https://h.example.com/base/?tenant=7", separate_paths=True)
    assert sc.test_start_notification_url == "https://h.example.com/base/start?tenant=7"
    assert sc.test_finish_notification_url == "https://h.example.com/base/finish?tenant=7"
    assert sc.test_graded_notification_url == "https://h.example.com/base/graded?tenant=7"
    assert (
        sc.test_resume_enabled_for_expired_test_url == "https://h.example.com/base/resumed?tenant=7"
    )
    assert sc.test_notification_basic_auth_header is None


def test_with_webhooks_can_subscribe_to_some_events_only() -> None:
    """events= sets only the URLs asked for; others and an existing header stay as they were."""
    before = attrs.evolve(
        MINIMAL_SC,
        test_start_notification_url="https://old/",
        test_notification_basic_auth_header="h",
    )
    sc = with_webhooks(
        before, "https://new.example.com/", events=["finishTest", "GRADEDASSESSMENT"]
    )
    assert sc.test_start_notification_url == "https://old/"
    assert sc.test_finish_notification_url == "https://new.example.com/"
    assert sc.test_graded_notification_url == "https://new.example.com/"
    assert sc.test_resume_enabled_for_expired_test_url is None
    assert sc.test_notification_basic_auth_header == "h"
    with pytest.raises(ConfigurationError, match="unknown webhook event"):
        with_webhooks(MINIMAL_SC, "https://x.example.com/", events=["testPaused"])


@pytest.mark.parametrize(
    "base_url",
    [
        "/relative/path",
        "hooks.example.com/mettl",
        "ftp://hooks.example.com/",
        "https://",
        "https://user:pw@hooks.example.com/",
        "https://hooks.example.com/#frag",
        "https://hooks.example.com/a b",
    ],
    ids=["relative", "no-scheme", "ftp", "no-host", "userinfo", "fragment", "space"],
)
def test_with_webhooks_wants_an_absolute_http_url(base_url: str) -> None:
    """A base URL Mettl could not call is refused before the schedule is created."""
    with pytest.raises(ConfigurationError):
        with_webhooks(MINIMAL_SC, base_url)


def test_with_webhooks_warns_about_basic_auth_over_plain_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Credentials on an http:// URL are allowed (tunnels, tests) but a warning says so."""
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        with_webhooks(MINIMAL_SC, "https://h.example.com/", username=USER, password=PASSWORD)
        assert caplog.records == []
        with_webhooks(MINIMAL_SC, "http://h.example.com/", username=USER, password=PASSWORD)
    assert "plain http" in caplog.text
    with pytest.raises(ConfigurationError, match="both"):
        with_webhooks(MINIMAL_SC, "https://h.example.com/", username=USER)


def test_webhook_urls_lists_each_events_url() -> None:
    """webhook_urls gives the URL per event, for printing or for Edit Schedule."""
    urls = webhook_urls("https://h.example.com", separate_paths=True)
    assert urls == {
        WebhookEventType.START_ASSESSMENT: "https://h.example.com/start",
        WebhookEventType.FINISH_TEST: "https://h.example.com/finish",
        WebhookEventType.GRADED_ASSESSMENT: "https://h.example.com/graded",
        WebhookEventType.CANDIDATE_TEST_RESUMED: "https://h.example.com/resumed",
    }
