"""The aiohttp adapter: routes on an ``aiohttp.web`` application, each handing its request
to the :class:`WebhookProcessor` and writing back its answer.

Nothing is decided here: every status comes from the processor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Unpack

from aiohttp import web

from mettl_async._enums import WebhookEventType

from ._paths import webhook_routes
from ._processor import EventCallback, ReceiverOptions, WebhookAnswer, WebhookProcessor

__all__ = ["RECEIVER_KEY", "WebhookReceiver", "create_app"]

_CHUNK_SIZE: Final = 64 * 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _response(answer: WebhookAnswer) -> web.Response:
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


class WebhookReceiver(WebhookProcessor):
    """An aiohttp handler for Mettl's webhooks, delivering each event to ``on_event`` once.

    A :class:`WebhookProcessor` served by aiohttp, with the processor's
    arguments: :meth:`add_routes` puts its URLs on an application's router
    (beside the application's own routes, so aiohttp answers 404 and 405 off
    them), and each call is answered by :meth:`WebhookProcessor.post`. See the
    package documentation for every status.
    """

    def add_routes(
        self,
        app: web.Application,
        path: str | None = None,
        *,
        separate_paths: bool | None = None,
    ) -> None:
        """Answer ``POST path`` (every event, by ``EVENT_TYPE``) on ``app``.

        With ``separate_paths`` also ``path/start``, ``path/finish``,
        ``path/graded`` and ``path/resumed`` (:data:`EVENT_PATHS`), the URLs
        :func:`with_webhooks` sets with ``separate_paths=True``; each still
        dispatches on ``EVENT_TYPE``. Mounted with ``add_subapp("/mettl", app)``,
        the bare ``/mettl`` (the URL ``with_webhooks`` gives Mettl) answers too
        (:func:`webhook_routes`). Either argument left out is the receiver's own
        (by default ``/`` and ``True``): ``add_routes(app)`` serves :attr:`routes`.
        """
        routes = webhook_routes(
            self.path if path is None else path,
            separate_paths=self.separate_paths if separate_paths is None else separate_paths,
        )
        for route, expected in routes.items():
            app.router.add_post(route, self._handler_for(expected))

    def _handler_for(self, expected: WebhookEventType | None) -> _Handler:
        if expected is None:
            return self.handle

        async def handle_one(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, expected)

        return handle_one

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler: verify, read, parse, deduplicate, deliver, answer."""
        return await self._handle(request, None)

    async def _handle(
        self, request: web.Request, expected: WebhookEventType | None
    ) -> web.StreamResponse:
        answer = await self.post(
            request.headers,
            request.content.iter_chunked(_CHUNK_SIZE),
            expected=expected,
            path=request.path,
            remote=request.remote,
        )
        return _response(answer)


#: Where :func:`create_app` keeps its :class:`WebhookReceiver` (``app[RECEIVER_KEY]``).
RECEIVER_KEY: Final = web.AppKey("mettl_webhook_receiver", WebhookReceiver)


def create_app(on_event: EventCallback, **options: Unpack[ReceiverOptions]) -> web.Application:
    """An ``aiohttp.web.Application`` answering Mettl's webhooks on ``path``.

    Run it on its own (``web.run_app(create_app(...))``) or mount it under a
    prefix of an existing application (``app.add_subapp("/mettl", create_app(...))``).
    The receiver is ``app[RECEIVER_KEY]``. The keyword arguments are those of
    :class:`WebhookProcessor` (``path="/"``, ``separate_paths=True``, ``username``,
    ``password``, ``store``, ``deduplicate``, ``key``, ``max_body_size``,
    ``retry_after``, ``read_timeout``); the routes are
    :meth:`WebhookReceiver.add_routes`'.
    """
    receiver = WebhookReceiver(on_event, **options)
    app = web.Application()
    app[RECEIVER_KEY] = receiver
    receiver.add_routes(app)
    return app
