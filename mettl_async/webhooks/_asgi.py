"""The ASGI adapter: a plain ASGI 3 application handing each request to the
:class:`WebhookProcessor` and sending back its answer.

Nothing is decided here: every status comes from the processor. No web framework is
imported: the application runs mounted in Starlette or FastAPI (``app.mount``) or on
its own under any ASGI server (uvicorn, hypercorn, granian).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, TypeAlias, Unpack

from ._processor import EventCallback, ReceiverOptions, WebhookAnswer, WebhookProcessor

__all__ = ["WebhookASGIApp", "asgi_app"]

logger = logging.getLogger("mettl_async.webhooks")

# The ASGI types, as the specification and the frameworks spell them (Starlette's
# ``starlette.types`` are the same aliases): a scope and messages are dictionaries
# whose keys depend on their "type".
#: An ASGI connection scope.
Scope: TypeAlias = MutableMapping[str, Any]
#: An ASGI event message (received or sent).
Message: TypeAlias = MutableMapping[str, Any]
#: The ASGI ``receive`` callable.
Receive: TypeAlias = Callable[[], Awaitable[Message]]
#: The ASGI ``send`` callable.
Send: TypeAlias = Callable[[Message], Awaitable[None]]

_WEBSOCKET_RESPONSE: Final = "websocket.http.response"


class _ClientGone(Exception):
    """The client disconnected before its whole body arrived."""


class _RequestBody:
    """An HTTP request's body, chunk by chunk from ASGI's ``receive()``, as the processor
    reads it (its size cap and read timeout apply while it arrives)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._more = True

    def __aiter__(self) -> _RequestBody:
        return self

    async def __anext__(self) -> bytes:
        while self._more:
            message = await self._receive()
            kind = message.get("type")
            if kind == "http.disconnect":
                raise _ClientGone
            if kind != "http.request":
                continue  # not a body message: nothing to read in it
            self._more = bool(message.get("more_body", False))
            chunk = message.get("body", b"")
            if chunk:
                return bytes(chunk)
        raise StopAsyncIteration


def _relative_path(scope: Scope) -> str:
    """The request's path below where the application is mounted.

    ASGI's ``root_path`` is the mount's prefix. Servers and frameworks differ on
    whether ``path`` still holds it (Starlette's ``Mount`` keeps it in recent
    versions and dropped it in older ones; uvicorn prepends ``--root-path``): a
    ``path`` that starts with ``root_path`` (followed by ``/`` or nothing) has it
    taken off, any other is already relative.
    """
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def _send_answer(send: Send, answer: WebhookAnswer, kind: str) -> None:
    """``answer`` as the two messages of an ASGI response: ``KIND.start``, ``KIND.body``."""
    body = answer.body
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in answer.headers.items()
    ]
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    await send({"type": f"{kind}.start", "status": answer.status, "headers": headers})
    await send({"type": f"{kind}.body", "body": body})


class WebhookASGIApp(WebhookProcessor):
    """Mettl's webhooks as a plain ASGI 3 application: each event goes to ``on_event`` once.

    A :class:`WebhookProcessor` called as ``await app(scope, receive, send)``, with the
    processor's arguments; made by :func:`asgi_app`. It answers:

    - ``http``: every request through :meth:`WebhookProcessor.process` (the statuses of
      the package documentation, 404 off its routes and 405 for another method included),
      with the path taken relative to the mount (``scope["root_path"]``). A client that
      disconnects while sending its body gets no answer and nothing is delivered.
    - ``lifespan``: startup and shutdown complete at once (nothing to open or close), so
      that a server running it on its own (uvicorn's ``--lifespan on``) starts.
    - ``websocket``: refused. Where the server offers the ``websocket.http.response``
      extension, with the HTTP answer the processor gives a GET at that path (405 or 404);
      otherwise by closing before the handshake (the server answers 403).

    Any other scope type raises :class:`ValueError`, as ASGI asks of an application.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await self._refuse_websocket(scope, receive, send)
        else:
            raise ValueError(f"the Mettl webhook application does not serve {kind!r} scopes")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _relative_path(scope)
        try:
            answer = await self.process(
                scope.get("method", "GET"),
                path,
                scope.get("headers", ()),
                _RequestBody(receive),
                remote=_client(scope),
            )
        except _ClientGone:
            logger.info(
                "webhook call from %s to %s: the client disconnected before its body arrived",
                _client(scope),
                path,
            )
            return
        await _send_answer(send, answer, "http.response")

    async def _refuse_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message.get("type") != "websocket.connect":
            return  # disconnected already
        if _WEBSOCKET_RESPONSE in (scope.get("extensions") or {}):
            answer = await self.process("GET", _relative_path(scope), (), b"")
            await _send_answer(send, answer, _WEBSOCKET_RESPONSE)
            return
        await send({"type": "websocket.close", "code": 1008})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def asgi_app(on_event: EventCallback, **options: Unpack[ReceiverOptions]) -> WebhookASGIApp:
    """An ASGI 3 application answering Mettl's webhooks: mount it or serve it on its own.

    Mounted under a prefix of a Starlette or FastAPI application
    (``app.mount("/mettl", webhooks.asgi_app(on_event, username=..., password=...))``), it
    answers ``/mettl/`` and the event URLs ``/mettl/start``, ``/mettl/finish``,
    ``/mettl/graded`` and ``/mettl/resumed``. Their routers answer the bare ``/mettl``
    with a redirect to ``/mettl/`` (307): give Mettl the URL with its trailing slash
    (``with_webhooks(sc, "https://example.com/mettl/")``). On its own, under any ASGI
    server (``uvicorn module:app``, ``hypercorn module:app``, ``granian --interface asgi
    module:app``), it answers ``path`` at the root.

    Neither Starlette nor FastAPI is needed to import or run it. The keyword arguments
    are those of :class:`WebhookProcessor` (``path="/"``, ``separate_paths=True``,
    ``username``, ``password``, ``store``, ``deduplicate``, ``key``, ``max_body_size``,
    ``retry_after``, ``read_timeout``), and every answer is the one :func:`create_app`
    gives under aiohttp. The application is the processor: its :attr:`~WebhookProcessor.stats`
    and :attr:`~WebhookProcessor.store` are the application's.
    """
    return WebhookASGIApp(on_event, **options)
