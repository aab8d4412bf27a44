"""The ASGI adapter on its own: standalone under uvicorn, the mount's root_path in both of its
spellings, a client that disconnects mid-body, lifespan, websocket and unknown scopes."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from mettl_async.webhooks import WebhookASGIApp, WebhookEvent, asgi_app

from .test_webhook_adapters import FINISH, Callback, under_uvicorn
from .test_webhooks import PASSWORD, USER, auth


class Channel:
    """ASGI's receive/send for a direct call: the messages to receive, the ones sent."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.incoming = list(messages)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.incoming:
            return self.incoming.pop(0)
        await asyncio.Event().wait()  # nothing more: wait forever, as a server would
        raise AssertionError("unreachable")

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))


def http_scope(path: str, root_path: str = "", method: str = "POST") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "method": method,
        "path": path,
        "root_path": root_path,
        "headers": [(b"content-type", b"application/json")],
        "client": ("10.0.0.7", 50000),
    }


async def call(app: WebhookASGIApp, scope: dict[str, Any], *body: bytes) -> tuple[int, Any]:
    """One request through ``app`` directly; its status and JSON answer."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(body) - 1}
        for i, chunk in enumerate(body)
    ] or [{"type": "http.request", "body": b""}]
    channel = Channel(*messages)
    await app(scope, channel.receive, channel.send)
    start, answer = channel.sent
    assert start["type"] == "http.response.start"
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(answer["body"])).encode()
    return start["status"], orjson.loads(answer["body"])


def test_importing_the_asgi_adapter_imports_no_web_framework() -> None:
    """asgi_app comes with neither Starlette, FastAPI nor aiohttp.web."""
    code = (
        "import sys\n"
        "from mettl_async.webhooks import asgi_app, WebhookASGIApp\n"
        "asgi_app(print)\n"
        "loaded = [m for m in ('starlette', 'fastapi', 'aiohttp.web') if m in sys.modules]\n"
        "assert loaded == [], loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_the_path_below_the_mount_with_or_without_the_root_path_in_it() -> None:
    """Mounted at /mettl, /mettl/finish arrives as path /mettl/finish (recent Starlette,
    uvicorn --root-path) or /finish (older Starlette): both are the finish URL."""
    callback = Callback("record")
    app = asgi_app(callback, deduplicate=False)
    assert await call(app, http_scope("/mettl/finish", "/mettl"), FINISH) == (
        200,
        {"status": "delivered"},
    )
    assert (await call(app, http_scope("/finish", "/mettl"), FINISH))[0] == 200
    assert (await call(app, http_scope("/mettl", "/mettl"), FINISH[:9], FINISH[9:]))[0] == 200
    # /mettlx is not below /mettl: the path is taken as it is, which is no route
    assert (await call(app, http_scope("/mettlx/finish", "/mettl"), FINISH))[0] == 404
    assert len(callback.calls) == 3


async def test_standalone_under_uvicorn_with_and_without_a_root_path() -> None:
    """asgi_app as the whole application (lifespan on): its routes at the root; behind a
    proxy that strips /mettl (uvicorn's root_path), the same routes."""
    callback = Callback("record")
    app = asgi_app(callback, username=USER, password=PASSWORD, deduplicate=False)
    async with aiohttp.ClientSession() as http:
        for config in ({}, {"root_path": "/mettl"}):
            async with under_uvicorn(app, **config) as url:
                for path in ("/", "/finish"):
                    async with http.post(url + path, data=FINISH, headers=auth()) as response:
                        assert response.status == 200, (config, path)
                async with http.get(url + "/") as response:
                    assert (response.status, response.headers["Allow"]) == (405, "POST")
                async with http.post(url + "/nowhere", data=FINISH, headers=auth()) as response:
                    assert (response.status, await response.json()) == (
                        404,
                        {"status": "not_found", "reason": "no webhook URL at this path"},
                    )
    assert len(callback.calls) == 4


async def test_a_client_that_disconnects_mid_body_gets_nothing_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A delivery whose sender hangs up half-way is dropped (logged), not parsed as a short
    body: no 400, no callback, no error from the server; the next delivery is handled."""
    callback = Callback("record")
    app = asgi_app(callback)
    with caplog.at_level(logging.INFO):
        async with under_uvicorn(app) as url:
            port = int(url.rsplit(":", 1)[1])
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            head = f"POST /finish HTTP/1.1\r\nHost: x\r\nContent-Length: {len(FINISH)}\r\n\r\n"
            writer.write(head.encode() + FINISH[:40])
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            for _ in range(500):  # until uvicorn has told the application (bounded)
                if "disconnected before its body arrived" in caplog.text:
                    break
                await asyncio.sleep(0.01)
            async with (
                aiohttp.ClientSession() as http,
                http.post(url + "/finish", data=FINISH) as response,
            ):
                assert response.status == 200
    assert "from 127.0.0.1 to /finish: the client disconnected" in caplog.text
    assert app.stats.malformed == 0
    assert len(callback.calls) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_lifespan_completes_startup_and_shutdown() -> None:
    channel = Channel({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await asgi_app(Callback("record"))({"type": "lifespan"}, channel.receive, channel.send)
    assert channel.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


@pytest.mark.parametrize(
    ("path", "status", "state"),
    [("/", 405, "method_not_allowed"), ("/x", 404, "not_found")],
)
async def test_a_websocket_is_refused_with_the_http_answer_when_the_server_can(
    path: str, status: int, state: str
) -> None:
    """With the websocket.http.response extension: the answer a GET there gets."""
    scope = {"type": "websocket", "path": path, "extensions": {"websocket.http.response": {}}}
    channel = Channel({"type": "websocket.connect"})
    await asgi_app(Callback("record"))(scope, channel.receive, channel.send)
    start, body = channel.sent
    assert (start["type"], start["status"]) == ("websocket.http.response.start", status)
    assert body["type"] == "websocket.http.response.body"
    assert orjson.loads(body["body"])["status"] == state


async def test_a_websocket_is_closed_before_its_handshake_otherwise() -> None:
    """Without the extension: closed before accepting (the server answers 403)."""
    channel = Channel({"type": "websocket.connect"})
    await asgi_app(Callback("record"))(
        {"type": "websocket", "path": "/"}, channel.receive, channel.send
    )
    assert [message["type"] for message in channel.sent] == ["websocket.close"]


async def test_an_unknown_scope_type_raises() -> None:
    """As ASGI asks: an application raises on a scope type it does not know."""
    channel = Channel()
    with pytest.raises(ValueError, match="'telepathy'"):
        await asgi_app(Callback("record"))({"type": "telepathy"}, channel.receive, channel.send)
    assert channel.sent == []


async def test_the_application_is_the_processor() -> None:
    """asgi_app's keywords are the processor's, checked the same way; its stats count."""
    events: list[WebhookEvent] = []
    app = asgi_app(events.append, max_body_size=100, retry_after=3)
    assert isinstance(app, WebhookASGIApp)
    assert (app.max_body_size, app.retry_after) == (100, 3)
    assert (await call(app, http_scope("/"), b" " * 101))[0] == 413
    assert app.stats.too_large == 1
    with pytest.raises(ValueError, match="both"):
        asgi_app(events.append, username=USER)


MOUNTS = """\
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

from mettl_async import webhooks


async def on_event(event: webhooks.WebhookEvent) -> None:
    print(event.event_type)


hooks = webhooks.asgi_app(on_event, username="mettl", password="secret", read_timeout=10)
service = FastAPI()
service.mount("/mettl", hooks)
site = Starlette(routes=[Mount("/mettl", app=webhooks.asgi_app(on_event))])
print(hooks.stats.delivered)
"""


@pytest.mark.slow
def test_mounting_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    """A user's ``mypy --strict`` accepts the application where FastAPI and Starlette
    take an ASGI application."""
    (tmp_path / "mounts.py").write_text(MOUNTS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path / ".mypy_cache"), "mounts.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
