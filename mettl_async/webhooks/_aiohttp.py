"""The aiohttp adapter: routes on an ``aiohttp.web`` application, each handing its request
to the :class:`WebhookProcessor` and writing back its answer.

Nothing is decided here: every status comes from the processor, 404 and 405 included
(:func:`create_app`'s middleware hands aiohttp's own refusals to it), so that the answers
are those of the ASGI adapter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Unpack

from aiohttp import web
from aiohttp.typedefs import Middleware

from mettl_async._enums import WebhookEventType

from ._paths import webhook_routes
from ._processor import EventCallback, ReceiverOptions, WebhookAnswer, WebhookProcessor

__all__ = ["RECEIVER_KEY", "WebhookReceiver", "create_app"]

_CHUNK_SIZE: Final = 64 * 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A path no route has (each is "" or starts with "/"): the processor answers it 404.
_OFF_ROUTES: Final = "*"


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

    async def answer_router_refusal(self, request: web.Request) -> web.StreamResponse | None:
        """The processor's answer where aiohttp's router refused ``request``, else ``None``.

        Its 404 (no route at the path) is the processor's 404 ``not_found``; its 405 at a
        route that takes only POST (a webhook URL) the processor's 405
        ``method_not_allowed``. A request the router routed, or a 405 at a route of other
        methods, is left alone (``None``).
        """
        refused = request.match_info.http_exception
        if isinstance(refused, web.HTTPMethodNotAllowed) and refused.allowed_methods == {"POST"}:
            path = self.path
        elif isinstance(refused, web.HTTPNotFound):
            path = _OFF_ROUTES
        else:
            return None
        answer = await self.process(
            request.method, path, request.headers, b"", remote=request.remote
        )
        return _response(answer)


def _answer_router_refusals(receiver: WebhookReceiver) -> Middleware:
    @web.middleware
    async def answer_router_refusals(request: web.Request, handler: _Handler) -> web.StreamResponse:
        answer = await receiver.answer_router_refusal(request)
        return await handler(request) if answer is None else answer

    return answer_router_refusals


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
    :meth:`WebhookReceiver.add_routes`'. What aiohttp's router refuses in this
    application (404 off its routes, 405 for another method than POST on a webhook URL)
    is answered by the receiver too, as :func:`asgi_app` answers it; routes of your own
    added to it or to a parent application are left alone.
    """
    receiver = WebhookReceiver(on_event, **options)
    app = web.Application(middlewares=[_answer_router_refusals(receiver)])
    app[RECEIVER_KEY] = receiver
    receiver.add_routes(app)
    return app
