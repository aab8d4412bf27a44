"""The framework-neutral webhook core, used without aiohttp: the processor's whole decision
table driven directly, verify_basic_auth in both of Mettl's forms, one validating parser."""

from __future__ import annotations

import ast
import asyncio
import base64
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import mettl_async
from mettl_async import (
    ConfigurationError,
    FinishTestEvent,
    ValidationError,
    WebhookEventType,
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
    webhook_routes,
)

from .conftest import HERE

WEBHOOKS = Path(mettl_async.__file__).parent / "webhooks"
USER, PASSWORD = "mettl-hook", "s3cr3t:with-colon"
FINISH = (HERE / "samples" / "article13_webhook_finish_test.json").read_bytes()
GRADED = (HERE / "samples" / "article13_webhook_graded_assessment.json").read_bytes()
WEB_FRAMEWORKS = ("aiohttp.web", "aiohttp.web_request", "starlette", "fastapi")


def token(user: str = USER, password: str = PASSWORD) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class Recorder:
    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []

    async def __call__(self, event: WebhookEvent) -> None:
        self.events.append(event)


class Chunks:
    """A fake body reader: the chunks as they arrive, then (if ``stall``) nothing, ever."""

    def __init__(self, *chunks: bytes, stall: bool = False) -> None:
        self.chunks = chunks
        self.stall = stall
        self.read = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.read += 1
            yield chunk
        if self.stall:
            await asyncio.Event().wait()


def answer_of(answer: WebhookAnswer) -> tuple[int, str]:
    body = orjson.loads(answer.body)
    assert answer.headers["Content-Type"] == "application/json"
    return answer.status, body["status"]


# --------------------------------------------------------------------------
# No web framework in the core
# --------------------------------------------------------------------------


def test_importing_the_core_imports_no_web_framework() -> None:
    """The parser, the key, the stores, the auth and the processor come without aiohttp.web."""
    code = (
        "import sys\n"
        "import mettl_async\n"
        "from mettl_async.webhooks import WebhookProcessor, parse_event, verify_basic_auth\n"
        f"loaded = [m for m in {WEB_FRAMEWORKS!r} if m in sys.modules]\n"
        "assert loaded == [], loaded\n"
        "from mettl_async.webhooks import create_app\n"
        "assert 'aiohttp.web' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_only_the_aiohttp_adapter_names_a_web_framework() -> None:
    """Every module of mettl_async/webhooks but _aiohttp.py imports no web framework."""
    for path in sorted(WEBHOOKS.glob("*.py")):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        frameworks = imported & {"aiohttp", "yarl", "multidict", "starlette", "fastapi"}
        assert frameworks == ({"aiohttp"} if path.name == "_aiohttp.py" else set()), path.name


# --------------------------------------------------------------------------
# The processor's decision table
# --------------------------------------------------------------------------


async def test_every_status_of_the_decision_table_without_a_web_framework(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """404, 405, 401, 413, 408, 400, 200, 200 duplicate, 500 and 503 from process() alone."""
    recorder = Recorder()

    async def on_event(event: WebhookEvent) -> None:
        await recorder(event)
        if event.event_type is WebhookEventType.START_ASSESSMENT:
            raise RuntimeError("application down")
        if event.event_type is WebhookEventType.GRADED_ASSESSMENT:
            raise RetryLater("warehouse closed", retry_after=42)

    processor = WebhookProcessor(
        on_event, username=USER, password=PASSWORD, max_body_size=5000, read_timeout=0.2
    )
    good = [("Authorization", f"Basic {token()}")]

    async def post(body: Any, headers: Any = good, path: str = "/") -> WebhookAnswer:
        return await processor.process("POST", path, headers, body, remote="10.0.0.1")

    start = orjson.dumps({**orjson.loads(FINISH), "EVENT_TYPE": "startAssessment"})
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        assert answer_of(await processor.process("POST", "/nowhere", good, FINISH)) == (
            404,
            "not_found",
        )
        not_allowed = await processor.process("GET", "/", good, b"")
        assert answer_of(not_allowed) == (405, "method_not_allowed")
        assert not_allowed.headers["Allow"] == "POST"
        unread = Chunks(FINISH)
        refused = await post(unread, headers=[("Authorization", f"Basic {token(password='x')}")])
        assert answer_of(refused) == (401, "unauthorized")
        assert refused.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert unread.read == 0  # the body is not read before the credentials are checked
        declared = Chunks(FINISH)
        too_large = await post(declared, headers=[*good, ("Content-Length", "5001")])
        assert answer_of(too_large) == (413, "too_large")
        assert declared.read == 0  # refused on its declared length
        assert answer_of(await post(Chunks(b" " * 4000, b" " * 1001))) == (413, "too_large")
        assert answer_of(await post(b" " * 5001)) == (413, "too_large")
        assert answer_of(await post(Chunks(b'{"EVENT', stall=True))) == (408, "timeout")
        assert answer_of(await post(b"[1, 2]")) == (400, "malformed")
        assert answer_of(await post(Chunks(FINISH[:10], FINISH[10:]))) == (200, "delivered")
        assert answer_of(await post(FINISH)) == (200, "duplicate")
        assert answer_of(await post(start)) == (500, "failed")
        unavailable = await post(GRADED)
        assert answer_of(unavailable) == (503, "unavailable")
        assert unavailable.headers["Retry-After"] == "42"
        assert orjson.loads(unavailable.body)["reason"] == "warehouse closed"
    assert [type(event) for event in recorder.events].count(FinishTestEvent) == 1
    stats = processor.stats
    assert (stats.unauthorized, stats.too_large, stats.timed_out, stats.malformed) == (1, 3, 1, 1)
    assert (stats.delivered, stats.duplicates, stats.failed, stats.unavailable) == (1, 1, 1, 1)
    assert "from 10.0.0.1 to / refused: missing or wrong credentials" in caplog.text


async def test_a_store_that_cannot_say_yes_gets_503_with_the_processors_retry_after() -> None:
    """Another process holding the event: 503 with the configured Retry-After."""

    class Elsewhere(InMemorySeenStore):
        async def claim(self, key: str) -> Any:
            return "in_progress"

    processor = WebhookProcessor(Recorder(), store=Elsewhere(), retry_after=9)
    answer = await processor.process("POST", "/", {}, FINISH)
    assert answer_of(answer) == (503, "unavailable")
    assert answer.headers["Retry-After"] == "9"


async def test_concurrent_deliveries_of_one_event_wait_for_the_first() -> None:
    """Ten copies of one new event at once: one callback; the others wait, then 'duplicate'."""
    release = asyncio.Event()
    recorder = Recorder()

    async def slow(event: WebhookEvent) -> None:
        await release.wait()
        await recorder(event)

    processor = WebhookProcessor(slow)
    tasks = [asyncio.create_task(processor.process("POST", "/", {}, FINISH)) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert not any(task.done() for task in tasks)  # all wait for the first callback
    release.set()
    states = sorted(answer_of(answer)[1] for answer in await asyncio.gather(*tasks))
    assert states == ["delivered"] + ["duplicate"] * 9
    assert len(recorder.events) == 1


async def test_routes_separate_paths_and_the_wrong_url_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The routes of a mounted processor; an event on another event's URL is delivered, logged."""
    assert webhook_routes("/") == {
        "/": None,
        "": None,
        "/start": WebhookEventType.START_ASSESSMENT,
        "/finish": WebhookEventType.FINISH_TEST,
        "/graded": WebhookEventType.GRADED_ASSESSMENT,
        "/resumed": WebhookEventType.CANDIDATE_TEST_RESUMED,
    }
    assert webhook_routes("/hooks/", separate_paths=False) == {"/hooks": None, "/hooks/": None}
    with pytest.raises(ConfigurationError):
        webhook_routes("hooks")
    recorder = Recorder()
    processor = WebhookProcessor(recorder, path="/hooks", deduplicate=False)
    assert answer_of(await processor.process("POST", "/", {}, FINISH))[0] == 404
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        for path in ("/hooks", "/hooks/", "/hooks/finish", "/hooks/start"):
            assert answer_of(await processor.process("post", path, {}, FINISH))[0] == 200, path
    assert len(recorder.events) == 4
    assert "finishTest arrived on the startAssessment URL (/hooks/start)" in caplog.text
    assert caplog.text.count("arrived on the") == 1


def test_the_processor_refuses_a_configuration_it_cannot_honour() -> None:
    with pytest.raises(ConfigurationError, match="both"):
        WebhookProcessor(Recorder(), username=USER)
    for bad in ({"max_body_size": 0}, {"retry_after": -1}, {"read_timeout": float("nan")}):
        with pytest.raises(ConfigurationError):
            WebhookProcessor(Recorder(), **bad)
    with pytest.raises(ConfigurationError, match="':'"):
        WebhookProcessor(Recorder(), username="a:b", password="p")


# --------------------------------------------------------------------------
# verify_basic_auth
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Basic {token()}"},
        {"AUTHORIZATION": f"basic  {token()}"},
        {"php-auth-user": USER, "php-auth-pw": PASSWORD},
        {"PHP-Auth-User": USER, "Php-Auth-Pw": PASSWORD, "Authorization": "Bearer x"},
        [(b"authorization", f"Basic {token()}".encode())],
        [(b"php-auth-user", USER.encode()), (b"php-auth-pw", PASSWORD.encode())],
        # a generator, made afresh for each run of the test (one made here would be spent)
        lambda: (pair for pair in [("php-auth-user", USER), ("php-auth-pw", PASSWORD)]),
    ],
    ids=[
        "authorization",
        "any-case",
        "php-pair",
        "php-pair-beside-bearer",
        "asgi-authorization",
        "asgi-php-pair",
        "a-generator-of-pairs",
    ],
)
def test_verify_basic_auth_accepts_either_of_mettls_forms(headers: Any) -> None:
    if callable(headers):
        headers = headers()
    assert verify_basic_auth(headers, USER, PASSWORD)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Basic {token(password='wrong')}"},
        {"Authorization": f"Bearer {token()}"},
        {"Authorization": "Basic !!!"},
        {"php-auth-user": USER},
        {"php-auth-user": USER, "php-auth-pw": PASSWORD + "x"},
        [("php-auth-user", "someone"), ("php-auth-user", USER), ("php-auth-pw", PASSWORD)],
    ],
    ids=["none", "wrong", "bearer", "not-base64", "user-only", "longer", "first-value-counts"],
)
def test_verify_basic_auth_refuses_missing_or_wrong_credentials(headers: Any) -> None:
    assert not verify_basic_auth(headers, USER, PASSWORD)


def test_a_non_ascii_password_matches_as_aiohttp_and_as_asgi_decode_it() -> None:
    """The php pair carries the password's UTF-8 bytes: aiohttp decodes them as UTF-8,
    Starlette and ASGI servers as Latin-1; the raw bytes of ASGI's pairs match too."""
    password = "pässwörd"
    sent = password.encode()
    for value in (sent.decode("utf-8"), sent.decode("latin-1"), sent):
        assert verify_basic_auth({"php-auth-user": USER, "php-auth-pw": value}, USER, password)
    assert not verify_basic_auth({"php-auth-user": USER, "php-auth-pw": "passwort"}, USER, password)


def test_verify_basic_auth_refuses_credentials_basic_auth_cannot_carry() -> None:
    for username, password in (("", "p"), ("u", ""), ("a:b", "p"), ("u", "p\nq")):
        with pytest.raises(ConfigurationError):
            verify_basic_auth({}, username, password)


# --------------------------------------------------------------------------
# One parser
# --------------------------------------------------------------------------


def test_parse_webhook_event_is_the_validating_parser() -> None:
    """mettl_async.parse_webhook_event checks and normalizes ids like webhooks.parse_event."""
    assert mettl_async.parse_webhook_event is parse_event
    data = {"EVENT_TYPE": "finishTest", "candidate_instance_id": "12", "invitation_key": "k"}
    event = mettl_async.parse_webhook_event(data)
    assert event.candidate_instance_id == 12
    assert event_key(event) == event_key(parse_event({**data, "candidate_instance_id": 12}))
    for bad in ({"x": 1}, "x", 12.5):
        with pytest.raises(WebhookPayloadError):
            mettl_async.parse_webhook_event({**data, "candidate_instance_id": bad})
    with pytest.raises(ValidationError) as caught:
        mettl_async.parse_webhook_event(["finishTest"])  # type: ignore[arg-type]  # the point
    assert caught.value.paths == ["body"]
