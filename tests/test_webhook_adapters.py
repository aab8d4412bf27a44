"""Both webhook adapters answer alike: create_app mounted under aiohttp, asgi_app mounted in
Starlette and in FastAPI under uvicorn, each over loopback, through one delivery matrix.

Each case runs on a real server per adapter, and its answers are checked twice: against the
expected statuses and ``status`` words (and the number of callback calls), and against the
framework-neutral processor answering the same requests directly (every answer, its JSON
body and its headers, the same).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import aiohttp
import orjson
import pytest
import uvicorn
from aiohttp import web
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from mettl_async.webhooks import (
    RECEIVER_KEY,
    RetryLater,
    WebhookEvent,
    WebhookProcessor,
    asgi_app,
    create_app,
)

from .test_webhooks import PASSWORD, USER, auth, sample, sample_bytes, serving

ADAPTERS = ("aiohttp", "starlette", "fastapi")
MOUNT = "/mettl"
FINISH = sample_bytes("finishTest")
GRADED = sample_bytes("gradedAssessment")
TWO_MIB = 2 * 1024 * 1024
_AUTH = auth()


class Served(NamedTuple):
    url: str  # the receiver's mount: http://127.0.0.1:PORT/mettl
    processor: WebhookProcessor


@asynccontextmanager
async def under_uvicorn(app: Any, **config: Any) -> AsyncIterator[str]:
    """``app`` under a real uvicorn on a free loopback port; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **config)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise AssertionError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def aiohttp_health(request: web.Request) -> web.Response:
    """A route of the application's own, beside the receiver (in each framework)."""
    return web.json_response({"ok": True})


async def starlette_health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def fastapi_health() -> dict[str, bool]:
    return {"ok": True}


@asynccontextmanager
async def mounted(adapter: str, on_event: Any, **options: Any) -> AsyncIterator[Served]:
    """The receiver mounted at /mettl of an ``adapter`` application that has a GET /health of
    its own, served over loopback (aiohttp's runner, or uvicorn)."""
    if adapter == "aiohttp":
        hooks = create_app(on_event, **options)
        app = web.Application()
        app.router.add_get("/health", aiohttp_health)
        app.add_subapp(MOUNT, hooks)
        async with serving(app) as url:
            yield Served(url + MOUNT, hooks[RECEIVER_KEY])
        return
    receiver = asgi_app(on_event, **options)
    if adapter == "starlette":
        routes = [Route("/health", starlette_health), Mount(MOUNT, app=receiver)]
        asgi: Any = Starlette(routes=routes)
    else:
        asgi = FastAPI()
        asgi.add_api_route("/health", fastapi_health)
        asgi.mount(MOUNT, receiver)
    async with under_uvicorn(asgi) as url:
        yield Served(url + MOUNT, receiver)


# --------------------------------------------------------------------------
# The matrix
# --------------------------------------------------------------------------


class Call(NamedTuple):
    body: bytes = FINISH
    path: str = "/"  # below the mount
    headers: dict[str, str] = _AUTH
    method: str = "POST"
    chunked: bool = False  # streamed without a Content-Length


class Answer(NamedTuple):
    status: int
    body: dict[str, Any]
    headers: dict[str, str]  # those the answer's status calls for, and Content-Type


class Case(NamedTuple):
    calls: list[Call]
    expected: list[tuple[int, str]]  # status and ``status`` word of each answer
    callbacks: int  # how many times the application's callback runs
    callback: str = "record"
    concurrent: bool = False  # the calls all at once (answers compared sorted)


DELIVERED, DUPLICATE = (200, "delivered"), (200, "duplicate")
UNAUTHORIZED, MALFORMED = (401, "unauthorized"), (400, "malformed")
PHP_AUTH = {"php-auth-user": USER, "php-auth-pw": PASSWORD}
BAD_ID = orjson.dumps({**sample("finishTest"), "candidate_instance_id": {"id": 1}})

MATRIX: dict[str, Case] = {
    "valid": Case([Call()], [DELIVERED], 1),
    "repeated": Case([Call(), Call()], [DELIVERED, DUPLICATE], 1),
    "php-auth-headers": Case([Call(headers=PHP_AUTH)], [DELIVERED], 1),
    "separate-event-paths": Case(
        [Call(GRADED, "/graded"), Call(FINISH, "/finish"), Call(FINISH, "/")],
        [DELIVERED, DELIVERED, DUPLICATE],
        2,
    ),
    "event-on-another-events-path": Case([Call(FINISH, "/start")], [DELIVERED], 1),
    "wrong-credentials": Case([Call(headers=auth(password="wrong"))], [UNAUTHORIZED], 0),
    "missing-credentials": Case([Call(headers={})], [UNAUTHORIZED], 0),
    "not-json": Case([Call(b'{"EVENT_TYPE": "finishTest",')], [MALFORMED], 0),
    "json-array": Case([Call(b'["finishTest"]')], [MALFORMED], 0),
    "unknown-event-type": Case([Call(b'{"EVENT_TYPE": "testPaused"}')], [MALFORMED], 0),
    "bad-id-type": Case([Call(BAD_ID)], [MALFORMED], 0),
    "2-MiB-body": Case([Call(b" " * TWO_MIB)], [(413, "too_large")], 0),
    "2-MiB-body-chunked": Case([Call(b" " * TWO_MIB, chunked=True)], [(413, "too_large")], 0),
    "retry-later": Case([Call(), Call()], [(503, "unavailable")] * 2, 2, "retry_later"),
    "fails-once-then-redelivered": Case(
        [Call(), Call(), Call()], [(500, "failed"), DELIVERED, DUPLICATE], 2, "fails_once"
    ),
    "get": Case([Call(b"", method="GET")], [(405, "method_not_allowed")], 0),
    "put-on-an-event-path": Case(
        [Call(FINISH, "/finish", method="PUT")], [(405, "method_not_allowed")], 0
    ),
    "off-the-routes": Case([Call(FINISH, "/nowhere")], [(404, "not_found")], 0),
    "ten-concurrent-copies": Case(
        [Call()] * 10, [DELIVERED] + [DUPLICATE] * 9, 1, "slow", concurrent=True
    ),
}


class Callback:
    """The application's callback of a case, counting its calls."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls: list[WebhookEvent] = []

    async def __call__(self, event: WebhookEvent) -> None:
        self.calls.append(event)
        if self.kind == "retry_later":
            raise RetryLater("the warehouse is closed", retry_after=7)
        if self.kind == "fails_once" and len(self.calls) == 1:
            raise RuntimeError("the database is down")
        if self.kind == "slow":
            await asyncio.sleep(0.1)  # the other copies arrive meanwhile


_KEPT_HEADERS = ("Content-Type", "WWW-Authenticate", "Retry-After", "Allow")


def kept(headers: Any) -> dict[str, str]:
    lowered = {name.lower(): value for name, value in headers.items()}
    return {name: lowered[name.lower()] for name in _KEPT_HEADERS if name.lower() in lowered}


async def send(http: aiohttp.ClientSession, base: str, call: Call) -> Answer:
    data: Any = call.body
    if call.chunked:

        async def chunks() -> AsyncIterator[bytes]:
            view = memoryview(call.body)
            for start in range(0, len(view), 64 * 1024):
                yield bytes(view[start : start + 64 * 1024])

        data = chunks()
    elif len(call.body) > 1024 * 1024:
        data = io.BytesIO(call.body)  # sent with its Content-Length, read as it goes
    async with http.request(
        call.method, base + call.path, data=data, headers=call.headers, allow_redirects=False
    ) as response:
        body = orjson.loads(await response.read())
        return Answer(response.status, body, kept(response.headers))


async def run_case(case: Case, post: Callable[[Call], Any]) -> list[Answer]:
    if case.concurrent:
        answers = await asyncio.gather(*(post(call) for call in case.calls))
        return sorted(answers, key=lambda answer: answer.body["status"])
    return [await post(call) for call in case.calls]


async def reference(case: Case, options: dict[str, Any]) -> list[Answer]:
    """The same requests answered by the framework-neutral processor itself, no server."""
    processor = WebhookProcessor(Callback(case.callback), **options)

    async def post(call: Call) -> Answer:
        answer = await processor.process(call.method, call.path, call.headers, call.body)
        return Answer(answer.status, orjson.loads(answer.body), kept(answer.headers))

    return await run_case(case, post)


@pytest.mark.parametrize("name", list(MATRIX))
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_delivery_matrix(adapter: str, name: str) -> None:
    """Each adapter, mounted at /mettl, answers each case with the expected status and
    ``status`` word, calls the application as often, and answers exactly as the processor."""
    case = MATRIX[name]
    options = {"username": USER, "password": PASSWORD}
    callback = Callback(case.callback)
    async with (
        mounted(adapter, callback, **options) as served,
        aiohttp.ClientSession() as http,
    ):
        answers = await run_case(case, lambda call: send(http, served.url, call))
    assert [(a.status, a.body["status"]) for a in answers] == case.expected
    assert len(callback.calls) == case.callbacks
    assert answers == await reference(case, options)
    for answer in answers:
        assert answer.headers["Content-Type"] == "application/json"
        if answer.status == 401:
            assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
        if answer.status == 503:
            assert answer.headers["Retry-After"] == "7"
        if answer.status == 405:
            assert answer.headers["Allow"] == "POST"


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_body_that_stalls_gets_408(adapter: str) -> None:
    """A body that has not arrived within read_timeout is answered 408 ``timeout``, unread."""
    callback = Callback("record")
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield FINISH[:20]
        await never.wait()

    async with (
        mounted(adapter, callback, read_timeout=0.2) as served,
        aiohttp.ClientSession() as http,
        http.post(served.url + "/", data=stalls()) as response,
    ):
        assert response.status == 408
        assert orjson.loads(await response.read())["status"] == "timeout"
    assert callback.calls == []
    assert served.processor.stats.timed_out == 1


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_applications_own_routes_stay_its_own(adapter: str) -> None:
    """The application's GET /health answers as before; its refusals off the mount are the
    framework's own, not the receiver's."""
    async with mounted(adapter, Callback("record")) as served, aiohttp.ClientSession() as http:
        root = served.url.removesuffix(MOUNT)
        async with http.get(root + "/health") as response:
            assert (response.status, await response.json()) == (200, {"ok": True})
        async with http.post(root + "/health") as response:
            assert response.status == 405
            assert b"method_not_allowed" not in await response.read()
        async with http.post(root + "/elsewhere", data=FINISH) as response:
            assert response.status == 404
            assert b"not_found" not in await response.read()
    assert served.processor.stats.delivered == 0


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_bare_mount_url(adapter: str) -> None:
    """aiohttp answers POST /mettl itself; Starlette's router (FastAPI's too) redirects it to
    /mettl/ with a 307, which keeps the method and body: the README says to give Mettl the
    URL with its trailing slash."""
    callback = Callback("record")
    async with mounted(adapter, callback) as served, aiohttp.ClientSession() as http:
        async with http.post(served.url, data=FINISH, allow_redirects=False) as response:
            if adapter == "aiohttp":
                assert (response.status, await response.json()) == (200, {"status": "delivered"})
            else:
                assert response.status == 307
                assert response.headers["Location"].endswith(MOUNT + "/")
        async with http.post(served.url + "/", data=FINISH) as response:
            assert response.status == 200
    assert len(callback.calls) == 1
