"""Lower-level hardening: redaction, path segments, non-finite options, webhook keys and
timeouts, and records without an email arriving mid-walk."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from mettl_async import (
    ConfigurationError,
    DecodeError,
    MettlClient,
    RetryPolicy,
    ValidationError,
    WebhookPayloadError,
    path_segment,
)
from mettl_async._paging import RawRecord
from mettl_async._protocol import decode_response, redact_secret, redact_url
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount
from mettl_async.webhooks import WebhookReceiver, event_key, parse_event

SIGNATURE = "B9V7AL/SUGWYyKBtY/SMwkhx2//jvIvWkIVlOxCXHV8="


# -- redaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "https://h/v2/a?ak=pub&ts=1&asgn=secret%2B%3D&limit=5",
        '{"asgn": "secretvalue", "ak": "pub"}',
        '{"asgn":"secretvalue"}',
        "{'asgn': 'secretvalue'}",
        "asgn: secretvalue",
        "ASGN=secretvalue",
        "next=https%3A%2F%2Fh%2Fv2%3Fak%3Dp%26asgn%3Dsecretvalue%26ts%3D1",
        "%7B%22asgn%22%3A%22secretvalue%22%7D",
        '{\\"asgn\\":\\"secretvalue\\"}',
    ],
)
def test_asgn_is_redacted_in_every_form_a_server_echoes(text: str) -> None:
    shown = redact_url(text)
    assert "secret" not in shown
    assert "REDACTED" in shown


def test_redaction_leaves_other_parameters_alone() -> None:
    assert redact_url("ak=pub&asgn=x&limit=5") == "ak=pub&asgn=REDACTED&limit=5"
    assert redact_url("myasgn=keep&b=1") == "myasgn=keep&b=1"
    assert redact_url("https://h/v2/a") == "https://h/v2/a"


@pytest.mark.parametrize(
    "echo",
    [
        f"bad signature {SIGNATURE}.",
        "bad signature B9V7AL%2FSUGWYyKBtY%2FSMwkhx2%2F%2FjvIvWkIVlOxCXHV8%3D",
        "bad signature B9V7AL%2fSUGWYyKBtY%2fSMwkhx2%2f%2fjvIvWkIVlOxCXHV8%3d",
        'bad signature "B9V7AL\\/SUGWYyKBtY\\/SMwkhx2\\/\\/jvIvWkIVlOxCXHV8="',
        "an excerpt cut inside it: B9V7AL/SUGWYyK",
    ],
)
def test_a_bare_signature_is_redacted_by_value(echo: str) -> None:
    shown = redact_secret(echo, SIGNATURE)
    assert "B9V7AL" not in shown
    assert "REDACTED" in shown


# -- dot segments ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_dot_segments_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="email") as caught:
        path_segment(value, "email")
    assert caught.value.paths == ["email"]


def test_values_with_dots_inside_are_one_encoded_segment() -> None:
    assert path_segment("...") == "..."
    assert path_segment("../x") == "..%2Fx"
    assert path_segment("a.b@example.com") == "a.b@example.com"


@pytest.mark.parametrize("value", [".", ".."])
async def test_dot_access_key_or_email_is_refused_before_any_request(
    client: MettlClient, fake: FakeMettl, value: str
) -> None:
    with pytest.raises(ValidationError, match="cannot be a path segment"):
        await client.get_schedule_raw(value)
    with pytest.raises(ValidationError, match="cannot be a path segment"):
        await client.get_candidate_result("tiwao88y00", value)
    assert fake.requests == 0


# -- non-finite options -----------------------------------------------------------------

NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", [*NON_FINITE, 0, -1, "5", True])
def test_a_client_timeout_must_be_finite_and_positive(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        MettlClient("a", "b", timeout=value)


@pytest.mark.parametrize("value", [*NON_FINITE, 0, -1])
def test_requests_per_second_must_be_finite_and_positive(value: float) -> None:
    with pytest.raises(ConfigurationError, match="requests_per_second"):
        MettlClient("a", "b", requests_per_second=value)


@pytest.mark.parametrize("value", NON_FINITE)
async def test_a_request_timeout_must_be_finite(value: float) -> None:
    async with MettlClient("a", "b") as client:
        with pytest.raises(ConfigurationError, match="timeout"):
            await client.request("GET", "/account", timeout=value)


@pytest.mark.parametrize("name", ["backoff_initial", "backoff_max", "retry_after_max"])
@pytest.mark.parametrize("value", NON_FINITE)
def test_retry_policy_waits_must_be_finite(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        RetryPolicy(**{name: value})


@pytest.mark.parametrize("value", [1.5, math.nan, True])
def test_retry_attempts_must_be_a_whole_number(value: Any) -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=value)


@pytest.mark.parametrize(
    ("option", "value"),
    [("read_timeout", math.nan), ("read_timeout", math.inf), ("read_timeout", 0),
     ("retry_after", -1), ("retry_after", 1.5), ("max_body_size", math.inf)],
)  # fmt: skip
def test_webhook_receiver_options_must_be_finite(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=option):
        WebhookReceiver(lambda event: None, **{option: value})


def test_command_line_numbers_must_be_finite(tmp_path: Path) -> None:
    from mettl_async.cli.entry import main

    for argv in (
        ["demo", "--latency-ms", "nan", "-o", str(tmp_path / "d.jsonl")],
        ["demo", "--latency-ms", "inf", "-o", str(tmp_path / "d.jsonl")],
        ["webhooks", "listen", "--header-timeout", "nan", "-o", str(tmp_path / "e.jsonl")],
    ):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
    assert list(tmp_path.iterdir()) == []


# -- decode errors are typed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, "depth"),
        (b'{"status":"SUCCESS","x":"\xff"}', "UTF-8"),
        (b'{"status":"SUCCESS","x":1e400}', "number"),
    ],
)
def test_every_decode_failure_is_a_decode_error(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_response(200, body, method="GET", url="https://h/v2/x")


def test_a_raw_record_that_cannot_be_parsed_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="cannot be read"):
        RawRecord(b'{"n":1e400}').to_dict()


# -- webhooks: ids, keys, timeouts ------------------------------------------------------


def _event(**fields: Any) -> dict[str, Any]:
    return {"EVENT_TYPE": "finishTest", "timestamp_GMT": "Fri, 11 Feb 2022 23:08:02 GMT", **fields}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("candidate_instance_id", "12:34"),
        ("candidate_instance_id", [1]),
        ("candidate_instance_id", {"a": 1}),
        ("candidate_instance_id", True),
        ("candidate_instance_id", 1.5),
        ("assessment_id", "x"),
        ("invitation_key", 12),
        ("invitation_key", ["k"]),
        ("timestamp_GMT", 1644620882),
    ],
)
def test_webhook_ids_of_the_wrong_type_are_refused(field: str, value: Any) -> None:
    with pytest.raises(WebhookPayloadError) as caught:
        parse_event(_event(**{field: value}))
    assert caught.value.paths == [field]


def test_a_candidate_instance_id_sent_as_digits_is_the_same_id() -> None:
    as_number = parse_event(_event(candidate_instance_id=12, invitation_key="k"))
    as_text = parse_event(_event(candidate_instance_id="12", invitation_key="k"))
    assert as_text.candidate_instance_id == 12
    assert event_key(as_text) == event_key(as_number)


def test_event_keys_are_unambiguous() -> None:
    """cid 12 / invitation '34:k' and cid '12:34' / invitation 'k' used to share a key."""
    one = parse_event(_event(candidate_instance_id=12, invitation_key="34:k"))
    two = parse_event(_event(candidate_instance_id=1234, invitation_key="k"))
    three = parse_event(_event(candidate_instance_id=12, invitation_key="34%3Ak"))
    keys = {event_key(one), event_key(two), event_key(three)}
    assert len(keys) == 3
    assert event_key(one).startswith("finishTest:12:34%3Ak:")


def test_a_later_event_of_the_same_candidate_is_not_a_duplicate() -> None:
    """finishTest, candidateTestResumed, finishTest again: the second finish is new."""
    first = parse_event(_event(candidate_instance_id=7, invitation_key="k"))
    again = parse_event(
        _event(candidate_instance_id=7, invitation_key="k", timestamp_GMT="Sat, 12 Feb 2022 GMT")
    )
    retried = parse_event(_event(candidate_instance_id=7, invitation_key="k"))
    assert event_key(first) != event_key(again)
    assert event_key(first) == event_key(retried)


async def test_a_second_finish_after_a_resume_reaches_the_application() -> None:
    from .test_webhooks import Recorder, post, receiver_at, sample

    recorder = Recorder()
    first = sample("finishTest")
    later = {**first, "timestamp_GMT": "Sat, 12 Feb 2022 10:00:00 GMT"}
    async with receiver_at(recorder) as (url, http, _):
        answers = [
            (await post(http, url, orjson.dumps(body)))[2]["status"]
            for body in (first, first, later, later)
        ]
    assert answers == ["delivered", "duplicate", "delivered", "duplicate"]
    assert len(recorder.events) == 2


async def test_a_body_that_does_not_arrive_gets_408() -> None:
    from .test_webhooks import Recorder, receiver_at

    recorder = Recorder()
    async with receiver_at(recorder, read_timeout=0.3) as (url, _, receiver):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"EVENT_TYPE":'
        )  # the rest of the body never comes
        await writer.drain()
        async with asyncio.timeout(30):
            status = await reader.readline()
        writer.close()
    assert b" 408 " in status
    assert receiver.stats.timed_out == 1
    assert recorder.events == []


async def test_the_listener_closes_a_connection_whose_headers_never_end(tmp_path: Path) -> None:
    """A request sent half-way does not hold the listener's connection open."""
    from .test_cli_webhooks import listening, stop

    async with listening(tmp_path / "e.jsonl", "--header-timeout", "0.5") as (process, url, _):
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")  # and nothing more
        await writer.drain()
        async with asyncio.timeout(30):  # closed by the listener, long before this
            rest = await reader.read()
        writer.close()
        assert rest == b""  # closed without an answer
        code, _ = await stop(process, 15)
    assert code == 0


# -- records without an email, arriving mid-walk -------------------------------------------


@pytest.mark.parametrize("window", [1, 4])
async def test_records_without_email_arriving_mid_walk_are_yielded_once(window: int) -> None:
    fake = FakeMettl(account=FakeAccount([300], seed=window), arrival_every=1)
    original = fake.account.candidate_bytes

    def without_email(schedule: Any, j: int, *, ir: bool, qr: bool) -> bytes:
        data = orjson.loads(original(schedule, j, ir=ir, qr=qr))
        data.pop("email")
        data["n"] = j  # records stay distinct, as real ones are
        return orjson.dumps(data)

    fake.account.candidate_bytes = without_email  # type: ignore[method-assign]
    schedule = fake.account.schedules[0]
    at_start = set(range(schedule.base_candidates))
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        seen = [
            record["n"]
            async for record in mettl.iter_candidate_results(
                schedule.access_key, page_size=50, window=window
            ).raw()
        ]
    assert len(schedule.arrivals) > 0  # records did arrive under the walk
    assert len(seen) == len(set(seen))  # nobody twice
    assert at_start <= set(seen)  # nobody there at the start lost
