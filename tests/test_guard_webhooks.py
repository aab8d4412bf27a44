"""Tests of the webhooks mechanisms that mutation testing found unguarded.

What an operator reads when a call is refused (the field named, the body's start, the
answer's reason, the log line), the exact size limits, the counters over many calls,
the deduplication key's corner cases and the credential checks' edges.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from mettl_async import (
    ConfigurationError,
    FinishTestEvent,
    ValidationProblem,
    WebhookPayloadError,
)
from mettl_async.webhooks import (
    InMemorySeenStore,
    RetryLater,
    WebhookAnswer,
    WebhookEvent,
    WebhookProcessor,
    event_key,
    parse_event,
    verify_basic_auth,
)

from .conftest import HERE
from .test_webhook_core import Chunks

USER, PASSWORD = "mettl-hook", "s3cr3t:with-colon"
FINISH = (HERE / "samples" / "article13_webhook_finish_test.json").read_bytes()
FINISH_KEY = "finishTest:99999999:0x0x0x0x0x:Fri, 11 Feb 2022 23%3A08%3A02 GMT"
EXPECTED_TYPES = "'startAssessment', 'finishTest', 'gradedAssessment', 'candidateTestResumed'"


def token(user: str = USER, password: str = PASSWORD) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


GOOD = [("Authorization", f"Basic {token()}")]


def finish(**fields: Any) -> bytes:
    """The article 13 finishTest payload with ``fields`` changed."""
    return orjson.dumps({**orjson.loads(FINISH), **fields})


def body_of(answer: WebhookAnswer) -> dict[str, Any]:
    assert answer.headers["Content-Type"] == "application/json"
    decoded: dict[str, Any] = orjson.loads(answer.body)
    return decoded


def webhook_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "mettl_async.webhooks"]


class Store(InMemorySeenStore):
    """The default store, which can be told to fail at one step."""

    def __init__(self, failing: str = "") -> None:
        super().__init__()
        self.failing = failing

    async def claim(self, key: str) -> Any:
        if self.failing == "claim":
            raise ConnectionError("redis unreachable")
        if self.failing == "in_progress":
            return "in_progress"
        return await super().claim(key)

    async def complete(self, key: str) -> None:
        if self.failing in ("complete", "complete+release"):
            raise ConnectionError("redis unreachable")
        await super().complete(key)

    async def release(self, key: str) -> None:
        if self.failing in ("release", "complete+release"):
            raise ConnectionError("redis unreachable")
        await super().release(key)


# --------------------------------------------------------------------------
# A malformed body: the error names the field and carries the body's start
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (b"", "body", "is empty"),
        (b" \r\n\t", "body", "is empty"),
        (b"[1, 2]", "body", "is JSON list, not the object Mettl sends"),
        (b"12", "body", "is JSON int, not the object Mettl sends"),
        (
            b'{"EVENT_TYPE": "x"}',
            "EVENT_TYPE",
            f"unknown event type 'x'; expected {EXPECTED_TYPES}",
        ),
        (b"{}", "EVENT_TYPE", f"unknown event type None; expected {EXPECTED_TYPES}"),
        (
            b'{"EVENT_TYPE": "finishTest", "candidate_instance_id": 1.5}',
            "candidate_instance_id",
            "must be a whole number, got float 1.5",
        ),
        (
            b'{"EVENT_TYPE": "finishTest", "assessment_id": "12a"}',
            "assessment_id",
            "must be a whole number, got str '12a'",
        ),
        (
            b'{"EVENT_TYPE": "finishTest", "invitation_key": 5}',
            "invitation_key",
            "must be a string, got int 5",
        ),
        (
            b'{"EVENT_TYPE": "finishTest", "timestamp_GMT": [1]}',
            "timestamp_GMT",
            "must be a string, got list [1]",
        ),
    ],
    ids=[
        "empty",
        "blank",
        "array",
        "number",
        "unknown-type",
        "no-type",
        "float-id",
        "text-id",
        "number-key",
        "list-stamp",
    ],
)
def test_a_malformed_body_names_its_field_and_carries_its_start(
    body: bytes, path: str, message: str
) -> None:
    """Each problem names the field it is about and says what is wrong; the error holds the
    body's start (as bytes, as text); the 400's reason is the problem on one line."""
    for data in (body, body.decode()):
        with pytest.raises(WebhookPayloadError) as caught:
            parse_event(data)
        assert list(caught.value.problems) == [ValidationProblem(path, message)]
        assert caught.value.excerpt == body.decode()
        assert caught.value.reason == f"{path}: {message}"


def test_every_wrong_id_is_named_at_once() -> None:
    """A payload with several wrong ids names each of them, in order, with its value."""
    data = {
        "EVENT_TYPE": "finishTest",
        "candidate_instance_id": True,
        "assessment_id": [1],
        "invitation_key": 3,
        "timestamp_GMT": {"at": 1},
    }
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(orjson.dumps(data))
    assert [str(problem) for problem in caught.value.problems] == [
        "candidate_instance_id: must be a whole number, got bool True",
        "assessment_id: must be a whole number, got list [1]",
        "invitation_key: must be a string, got int 3",
        "timestamp_GMT: must be a string, got dict {'at': 1}",
    ]


def test_not_json_says_where_and_a_field_of_the_wrong_shape_is_named() -> None:
    """Not JSON: the decoder's own words; a wrong shape: the model field's problem, both with
    the body's start."""
    body = b'{"EVENT_TYPE": "finishTest", '
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(body)
    (problem,) = caught.value.problems
    assert problem.path == "body"
    assert problem.message.startswith("is not JSON (")
    assert problem.message.endswith(")")
    assert "line 1 column" in problem.message
    assert caught.value.excerpt == body.decode()
    shape = b'{"EVENT_TYPE": "gradedAssessment", "testStatus": [1]}'
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(shape)
    assert caught.value.problems
    assert all(
        problem.path.startswith("GradedAssessmentEvent") for problem in caught.value.problems
    )
    assert caught.value.excerpt == shape.decode()


def test_an_already_decoded_body_has_no_excerpt() -> None:
    """A mapping or another decoded value has no text to quote: the excerpt is empty."""
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event({"EVENT_TYPE": "testPaused"})
    assert caught.value.excerpt == ""
    assert caught.value.paths == ["EVENT_TYPE"]
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event([1])  # type: ignore[arg-type]  # the point
    assert caught.value.excerpt == ""
    assert list(caught.value.problems) == [
        ValidationProblem("body", "is JSON list, not the object Mettl sends")
    ]


def test_the_excerpt_is_the_first_200_characters_whatever_the_encoding() -> None:
    """200 characters are quoted whole; more are cut to 200 and marked; a body of multi-byte
    characters is cut by characters, undecodable bytes are shown, not an error."""
    exactly = "x" * 200
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(exactly.encode())
    assert caught.value.excerpt == exactly
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(exactly + "y")
    assert caught.value.excerpt == exactly + "…"
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(("€" * 300).encode())  # 3 bytes each
    assert caught.value.excerpt == "€" * 200 + "…"
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(("😀" * 201).encode())  # 4 bytes each
    assert caught.value.excerpt == "😀" * 200 + "…"
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(b"\xff\xfe not json")
    assert caught.value.excerpt == "\ufffd\ufffd not json"


def test_a_long_wrong_value_is_quoted_by_its_first_40_characters() -> None:
    """The problem quotes a wrong value whole up to 40 characters, else its start and '…'."""
    forty = "k" * 38  # repr: 40 characters with its quotes
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event({"EVENT_TYPE": "finishTest", "assessment_id": forty})
    assert caught.value.reason == f"assessment_id: must be a whole number, got str '{forty}'"
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event({"EVENT_TYPE": "finishTest", "assessment_id": forty + "k"})
    assert caught.value.reason == f"assessment_id: must be a whole number, got str '{forty}k…"


def test_an_id_of_digits_is_a_number_up_to_30_digits() -> None:
    """A string of up to 30 digits is the id as a number; 31 digits or other digits are wrong."""
    event = parse_event({"EVENT_TYPE": "finishTest", "candidate_instance_id": "9" * 30})
    assert event.candidate_instance_id == int("9" * 30)
    for bad in ("9" * 31, "\uff11\uff12", "-12", ""):
        with pytest.raises(WebhookPayloadError) as caught:
            parse_event({"EVENT_TYPE": "finishTest", "candidate_instance_id": bad})
        assert caught.value.paths == ["candidate_instance_id"], bad
    event = parse_event({"EVENT_TYPE": "FINISHTEST", "assessment_id": "007"})
    assert isinstance(event, FinishTestEvent)
    assert event.assessment_id == 7


# --------------------------------------------------------------------------
# The deduplication key's corner cases
# --------------------------------------------------------------------------


def test_event_key_with_one_id_missing_keeps_the_others() -> None:
    """Only one of the two ids still keys by ids (an empty part for the missing one)."""
    stamp = "Fri, 11 Feb 2022 23:08:02 GMT"
    only_cid = parse_event({"EVENT_TYPE": "finishTest", "candidate_instance_id": 12})
    assert event_key(only_cid) == "finishTest:12::"
    only_key = parse_event(
        {"EVENT_TYPE": "finishTest", "invitation_key": "a:b%c", "timestamp_GMT": stamp}
    )
    assert event_key(only_key) == "finishTest::a%3Ab%25c:Fri, 11 Feb 2022 23%3A08%3A02 GMT"
    zero = parse_event({"EVENT_TYPE": "startAssessment", "candidate_instance_id": 0})
    assert event_key(zero) == "startAssessment:0::"


def test_event_key_of_an_event_built_in_code_writes_its_timestamp() -> None:
    """An event made by the application (no raw payload) is keyed by its fields."""
    at = datetime(2022, 2, 8, 11, 13, 55, tzinfo=UTC)
    event = FinishTestEvent(candidate_instance_id=5, invitation_key="k", timestamp_gmt=at)
    assert event_key(event) == "finishTest:5:k:Tue, 08 Feb 2022 11%3A13%3A55 UTC"
    assert event_key(FinishTestEvent(candidate_instance_id=5)) == "finishTest:5::"


def test_event_key_keeps_the_timestamp_as_sent() -> None:
    """A timestamp in another shape (or one the event could not read) is keyed as sent, so
    two events differing only there are two events."""
    for stamp in (
        "2022-02-11T23:08:02Z",  # not Mettl's shape: the event's timestamp_gmt is None
        "fri, 11 feb 2022 23:08:02 gmt",
        "Fri, 11 Feb 2022 23:08:02.5 GMT",
    ):
        data = {"EVENT_TYPE": "finishTest", "candidate_instance_id": 1, "timestamp_GMT": stamp}
        assert event_key(parse_event(data)) == "finishTest:1::" + stamp.replace(":", "%3A")


def test_event_key_without_ids_is_a_digest_of_the_whole_payload() -> None:
    """Neither id: the SHA-256 of the payload with sorted keys (so field order does not count)."""
    event = parse_event(b'{"email": "a@x", "EVENT_TYPE": "finishTest"}')
    import hashlib

    digest = hashlib.sha256(b'{"EVENT_TYPE":"finishTest","email":"a@x"}').hexdigest()
    assert event_key(event) == f"finishTest:sha256:{digest}"


# --------------------------------------------------------------------------
# The processor: exact limits, counters, answers and log lines
# --------------------------------------------------------------------------


async def test_a_body_of_exactly_max_body_size_bytes_is_read() -> None:
    """The limit is inclusive, as bytes, as chunks and as a declared length."""
    recorder: list[WebhookEvent] = []
    body = FINISH.ljust(2000)
    processor = WebhookProcessor(recorder.append, max_body_size=2000, deduplicate=False)
    assert (await processor.process("POST", "/", {}, body)).status == 200
    chunks = Chunks(body[:1000], body[1000:])
    declared = {"Content-Length": "2000"}
    assert (await processor.process("POST", "/", declared, chunks)).status == 200
    assert chunks.read == 2
    over = Chunks(body[:1000], body[1000:] + b" ")
    assert (await processor.process("POST", "/", {}, over)).status == 413
    assert len(recorder) == 2


@pytest.mark.parametrize(
    ("declared", "refused_unread"),
    [
        (b"2001", True),  # ASGI gives header values as bytes
        (" 2001 ", True),
        ("abc", False),  # not a length: the body itself is measured
        ("\uff12\uff10\uff10\uff11", False),  # not ASCII digits: not a length either
        ("-1", False),
    ],
    ids=["bytes", "spaces", "letters", "fullwidth", "negative"],
)
async def test_only_a_valid_declared_length_refuses_a_body_unread(
    declared: str | bytes, refused_unread: bool
) -> None:
    recorder: list[WebhookEvent] = []
    processor = WebhookProcessor(recorder.append, max_body_size=2000)
    chunks = Chunks(FINISH)
    answer = await processor.process("POST", "/", [(b"content-length", declared)], chunks)
    if refused_unread:
        assert (answer.status, chunks.read) == (413, 0)
    else:
        assert (answer.status, chunks.read, len(recorder)) == (200, 1, 1)


async def test_the_counters_count_every_call() -> None:
    """Two calls of each outcome: each counter says two."""
    calls = {"fail": 0}

    async def on_event(event: WebhookEvent) -> None:
        if event.invitation_key == "fail":
            calls["fail"] += 1
            raise RuntimeError("down")
        if event.invitation_key == "later":
            raise RetryLater("not now")

    processor = WebhookProcessor(
        on_event, username=USER, password=PASSWORD, max_body_size=3000, read_timeout=0.05
    )

    async def post(body: Any, headers: Any = GOOD) -> int:
        return (await processor.process("POST", "/", headers, body)).status

    wrong = [("Authorization", f"Basic {token(password='nope')}")]
    statuses = [
        await post(finish(invitation_key="a")),
        await post(finish(invitation_key="b")),
        await post(finish(invitation_key="a")),
        await post(finish(invitation_key="b")),
        await post(FINISH, wrong),
        await post(FINISH, []),
        await post(b" " * 3001),
        await post(Chunks(b" " * 3001)),
        await post(b"[]"),
        await post(b"nope"),
        await post(finish(invitation_key="fail")),
        await post(finish(invitation_key="fail")),
        await post(finish(invitation_key="later")),
        await post(finish(invitation_key="later")),
        await post(Chunks(b"{", stall=True)),
        await post(Chunks(stall=True)),
    ]
    assert statuses == [
        200,
        200,
        200,
        200,
        401,
        401,
        413,
        413,
        400,
        400,
        500,
        500,
        503,
        503,
        408,
        408,
    ]
    stats = processor.stats
    assert (stats.delivered, stats.duplicates, stats.unauthorized, stats.too_large) == (2, 2, 2, 2)
    assert (stats.malformed, stats.failed, stats.unavailable, stats.timed_out) == (2, 2, 2, 2)
    assert calls["fail"] == 2  # a failed event stays unseen: its redelivery is handed over
    for failing in ("claim", "in_progress"):
        processor = WebhookProcessor(lambda event: None, store=Store(failing))
        for _ in range(2):
            assert (await processor.process("POST", "/", {}, FINISH)).status == 503
        assert processor.stats.unavailable == 2, failing


def test_retry_later_reads_as_its_reason() -> None:
    """In a traceback or a log line the exception shows its reason."""
    error = RetryLater("warehouse closed", retry_after=3)
    assert (str(error), error.reason, error.retry_after) == (
        "warehouse closed",
        "warehouse closed",
        3,
    )
    assert RetryLater("busy").retry_after is None


async def test_each_refusal_answers_its_reason() -> None:
    """The body Mettl's delivery log shows: the state and, for a refusal, why."""

    async def on_event(event: WebhookEvent) -> None:
        if event.invitation_key == "fail":
            raise RuntimeError("secret detail")

    processor = WebhookProcessor(
        on_event, username=USER, password=PASSWORD, max_body_size=3000, read_timeout=0.05
    )

    async def answer(method: str = "POST", path: str = "/", body: Any = FINISH) -> Any:
        result = await processor.process(method, path, GOOD, body)
        return result.status, body_of(result)

    assert await answer(path="/elsewhere") == (
        404,
        {"status": "not_found", "reason": "no webhook URL at this path"},
    )
    assert await answer(method="PUT") == (
        405,
        {"status": "method_not_allowed", "reason": "webhooks are POSTed"},
    )
    refused = await processor.process("POST", "/", [], FINISH)
    assert (refused.status, body_of(refused)) == (
        401,
        {"status": "unauthorized", "reason": "missing or wrong credentials"},
    )
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="mettl-webhooks", charset="UTF-8"'
    assert await answer(body=Chunks(stall=True)) == (
        408,
        {"status": "timeout", "reason": "the body did not arrive within 0.05 s"},
    )
    assert await answer(body=b" " * 3001) == (
        413,
        {"status": "too_large", "reason": "body larger than 3000 bytes"},
    )
    assert await answer(body=b"[]") == (
        400,
        {"status": "malformed", "reason": "body: is JSON list, not the object Mettl sends"},
    )
    assert await answer() == (200, {"status": "delivered"})
    assert await answer() == (200, {"status": "duplicate"})
    assert await answer(body=finish(invitation_key="fail")) == (
        500,
        {"status": "failed", "reason": "the application failed to handle the event"},
    )


@pytest.mark.parametrize(
    ("failing", "reason"),
    [
        ("claim", "the seen-keys store is unavailable"),
        ("in_progress", "the same event is being handled; retry later"),
    ],
)
async def test_a_store_that_cannot_claim_answers_503_after_the_default_five_seconds(
    failing: str, reason: str
) -> None:
    processor = WebhookProcessor(lambda event: None, store=Store(failing))
    answer = await processor.process("POST", "/", {}, FINISH)
    assert (answer.status, body_of(answer)) == (503, {"status": "unavailable", "reason": reason})
    assert answer.headers["Retry-After"] == "5"


async def test_retry_later_takes_its_own_seconds_else_the_processors() -> None:
    """RetryLater's retry_after (even 0) wins; without one the processor's is sent."""
    seconds: list[int | None] = [None, 0, 7]

    def on_event(event: WebhookEvent) -> None:
        raise RetryLater("queue full", retry_after=seconds.pop(0))

    processor = WebhookProcessor(on_event, retry_after=9)
    for expected in ("9", "0", "7"):
        answer = await processor.process("POST", "/", {}, FINISH)
        assert (answer.status, answer.headers["Retry-After"]) == (503, expected)
        assert body_of(answer) == {"status": "unavailable", "reason": "queue full"}
    assert processor.stats.unavailable == 3


async def test_a_refused_event_is_handed_over_again_once_the_application_is_back() -> None:
    """After 500 or 503 the event's claim is released: the redelivery is delivered."""
    outcomes: list[BaseException | None] = [RuntimeError("down"), RetryLater("busy"), None]
    seen: list[WebhookEvent] = []

    async def on_event(event: WebhookEvent) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        seen.append(event)

    processor = WebhookProcessor(on_event)
    statuses = [(await processor.process("POST", "/", {}, FINISH)).status for _ in range(4)]
    assert statuses == [500, 503, 200, 200]
    assert len(seen) == 1
    assert (processor.stats.delivered, processor.stats.duplicates) == (1, 1)


async def test_refusals_are_logged_with_caller_path_and_what_was_wrong(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each refusal's WARNING names the caller, the path and what an operator needs."""
    processor = WebhookProcessor(
        lambda event: None,
        username=USER,
        password=PASSWORD,
        max_body_size=3000,
        read_timeout=0.05,
    )

    async def post(body: Any, headers: Any = GOOD) -> None:
        await processor.process("POST", "/finish", headers, body, remote="10.1.2.3")

    with caplog.at_level(logging.DEBUG, logger="mettl_async.webhooks"):
        await post(FINISH, [])
        await post(Chunks(stall=True))
        await post(b" " * 3001)
        await post(b"[1, 2]")
    messages = [(record.levelno, record.getMessage()) for record in webhook_records(caplog)]
    prefix = "webhook call from 10.1.2.3 to /finish refused: "
    assert messages == [
        (logging.WARNING, prefix + "missing or wrong credentials"),
        (logging.WARNING, prefix + "the body did not arrive within 0.05 s"),
        (logging.WARNING, prefix + "body larger than 3000 bytes"),
        (
            logging.WARNING,
            prefix + "body: is JSON list, not the object Mettl sends; body starts '[1, 2]'",
        ),
    ]


async def test_deliveries_are_logged_by_key_or_by_event_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failures are logged with the event's key (its type without deduplication), a raising
    callback with its traceback; a delivery and a duplicate at DEBUG."""
    outcomes: list[BaseException | None] = [None, RuntimeError("boom"), RetryLater("busy")]

    def on_event(event: WebhookEvent) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    processor = WebhookProcessor(on_event)
    with caplog.at_level(logging.DEBUG, logger="mettl_async.webhooks"):
        await processor.process("POST", "/", {}, FINISH)
        await processor.process("POST", "/", {}, FINISH)
        other = finish(invitation_key="other")
        processor.deduplicate = False
        await processor.process("POST", "/", {}, other)
        await processor.process("POST", "/", {}, other)
    records = webhook_records(caplog)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, f"webhook {FINISH_KEY} delivered"),
        (logging.DEBUG, f"webhook {FINISH_KEY} already delivered: answered as a duplicate"),
        (logging.ERROR, "webhook finishTest: the application's callback raised; answered 500"),
        (logging.WARNING, "webhook finishTest: busy; answered 503"),
    ]
    assert records[2].exc_info is not None
    assert isinstance(records[2].exc_info[1], RuntimeError)
    assert records[3].exc_info is None


@pytest.mark.parametrize(
    ("failing", "status", "logged"),
    [
        ("claim", 503, [f"webhook {FINISH_KEY}: the seen-keys store failed to claim it"]),
        ("in_progress", 503, [f"webhook {FINISH_KEY} is being handled elsewhere: asked to retry"]),
        ("complete", 200, [f"webhook {FINISH_KEY} delivered, but the store failed to record it"]),
        (
            "complete+release",
            200,
            [
                f"webhook {FINISH_KEY} delivered, but the store failed to record it",
                f"webhook {FINISH_KEY}: the store failed to release its claim",
            ],
        ),
    ],
)
async def test_a_failing_store_is_logged_with_the_events_key(
    failing: str, status: int, logged: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    processor = WebhookProcessor(lambda event: None, store=Store(failing))
    with caplog.at_level(logging.INFO, logger="mettl_async.webhooks"):
        answer = await processor.process("POST", "/", {}, FINISH)
    assert answer.status == status
    records = webhook_records(caplog)
    assert [record.getMessage() for record in records] == logged
    for record in records:
        if "store failed" in record.getMessage():
            assert record.levelno == logging.ERROR
            assert isinstance(record.exc_info and record.exc_info[1], ConnectionError)


async def test_a_store_that_cannot_release_does_not_change_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The callback failed and the claim could not be released: still 500, and logged."""

    def on_event(event: WebhookEvent) -> None:
        raise RuntimeError("down")

    processor = WebhookProcessor(on_event, store=Store("release"))
    with caplog.at_level(logging.ERROR, logger="mettl_async.webhooks"):
        answer = await processor.process("POST", "/", {}, FINISH)
    assert answer.status == 500
    assert f"webhook {FINISH_KEY}: the store failed to release its claim" in caplog.text


# --------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        f"Basic {token()[:4]}!{token()[4:]}",  # a character outside base64
        f"Basic {token()[:4]}\n{token()[4:]}",
        "Basic " + base64.b64encode(USER.encode() + PASSWORD.encode()).decode(),  # no colon
        "Basic",
        f"Basic{token()}",
        f"Digest {token()}",
    ],
    ids=["junk-character", "newline", "no-colon", "no-token", "no-space", "other-scheme"],
)
def test_an_authorization_header_that_is_not_strict_basic_is_refused(authorization: str) -> None:
    assert not verify_basic_auth({"Authorization": authorization}, USER, PASSWORD)


@pytest.mark.parametrize(
    "authorization",
    [f"BASIC {token()}", f"  Basic   {token()}  ", f"Basic {token()}".encode("latin-1")],
    ids=["upper-case", "spaces", "bytes"],
)
def test_an_authorization_header_in_any_case_spacing_or_bytes_is_accepted(
    authorization: str | bytes,
) -> None:
    assert verify_basic_auth({"Authorization": authorization}, USER, PASSWORD)


def test_a_header_value_that_is_not_text_is_refused_not_an_error() -> None:
    """aiohttp hands undecodable bytes over as surrogates; euro signs are not Latin-1: both are
    compared (and refused), never a crash; the right password still matches either way."""
    for value in ("p\udce4ss", "pa€ss"):
        assert not verify_basic_auth({"php-auth-user": USER, "php-auth-pw": value}, USER, "päss")
    assert verify_basic_auth({"php-auth-user": USER, "php-auth-pw": "pa€ss"}, USER, "pa€ss")


def test_printable_credentials_are_usable_control_characters_are_not() -> None:
    """Space and '~' are printable; below space and DEL are control characters."""
    for password in ("with space", "tilde~", "ümlaut"):
        headers = {"php-auth-user": USER, "php-auth-pw": password}
        assert verify_basic_auth(headers, USER, password), password
    for username, password in ((USER, "a\x1fb"), (USER, "a\x7fb"), ("a\x00", PASSWORD)):
        with pytest.raises(ConfigurationError) as caught:
            verify_basic_auth({}, username, password)
        assert str(caught.value) == "webhook credentials cannot contain control characters"
    with pytest.raises(ConfigurationError) as caught:
        WebhookProcessor(lambda event: None, username="", password=PASSWORD)
    assert str(caught.value) == "webhook Basic authentication needs a username and a password"
    with pytest.raises(ConfigurationError) as caught:
        WebhookProcessor(lambda event: None, username="a:b", password=PASSWORD)
    assert str(caught.value) == "a Basic authentication username cannot contain ':'"


def test_a_processors_attributes_show_no_credentials() -> None:
    """What a debugger or a log of ``vars(processor)`` shows holds neither secret."""
    processor = WebhookProcessor(lambda event: None, username=USER, password=PASSWORD)
    shown = repr(vars(processor))
    assert "'_auth': Credentials(<redacted>)" in shown
    assert USER not in shown
    assert PASSWORD not in shown


def test_a_text_body_may_start_with_a_byte_order_mark() -> None:
    """As text too (a framework that decoded the body), a leading BOM is not a malformed body."""
    event = parse_event("\ufeff" + FINISH.decode())
    assert isinstance(event, FinishTestEvent)
    assert event_key(event) == FINISH_KEY


def test_the_smallest_settings_are_accepted_and_a_bad_one_is_named_with_its_value() -> None:
    """max_body_size 1, retry_after 0 and any read_timeout above 0 are usable; a bad value's
    error names the option and repeats the value."""
    processor = WebhookProcessor(
        lambda event: None, max_body_size=1, retry_after=0, read_timeout=1e-9
    )
    assert (processor.max_body_size, processor.retry_after) == (1, 0)
    for option, bad, message in (
        ("max_body_size", 0, "max_body_size must be >= 1, got 0"),
        ("max_body_size", 2.0, "max_body_size must be >= 1, got 2.0"),
        ("retry_after", -1, "retry_after must be whole seconds >= 0, got -1"),
        ("retry_after", True, "retry_after must be whole seconds >= 0, got True"),
        ("read_timeout", 0, "read_timeout must be a finite number of seconds > 0, got 0"),
        (
            "read_timeout",
            float("inf"),
            "read_timeout must be a finite number of seconds > 0, got inf",
        ),
    ):
        with pytest.raises(ConfigurationError) as caught:
            WebhookProcessor(lambda event: None, **{option: bad})
        assert str(caught.value) == message
    with pytest.raises(ConfigurationError) as caught:
        WebhookProcessor(lambda event: None, password=PASSWORD)
    assert str(caught.value) == "give both username and password, or neither"


async def test_one_url_for_all_events_answers_404_on_the_event_paths() -> None:
    """separate_paths=False: only the one URL is answered, the four event paths are not."""
    seen: list[WebhookEvent] = []
    processor = WebhookProcessor(seen.append, path="/hooks", separate_paths=False)
    assert (await processor.process("POST", "/hooks/finish", {}, FINISH)).status == 404
    assert (await processor.process("POST", "/hooks", {}, FINISH)).status == 200
    assert len(seen) == 1


async def test_an_event_on_another_events_url_is_logged_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[WebhookEvent] = []
    processor = WebhookProcessor(seen.append)
    with caplog.at_level(logging.WARNING, logger="mettl_async.webhooks"):
        answer = await processor.process("POST", "/graded", {}, FINISH)
    assert answer.status == 200
    assert [record.getMessage() for record in webhook_records(caplog)] == [
        "webhook finishTest arrived on the gradedAssessment URL (/graded): accepted; "
        "check the schedule's URLs"
    ]
