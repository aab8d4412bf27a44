"""The webhook processor: one call (method, path, headers, body) -> the answer Mettl gets.

It holds the whole decision table (404, 405, 401, 408, 413, 400, 200, 500, 503),
deduplication, the statistics and the logging, and imports no web framework: an
adapter (the aiohttp one in this package, or any other) only hands it the request
and writes its :class:`WebhookAnswer` back.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Final, TypeAlias, TypedDict

import attrs
import orjson

from mettl_async._enums import WebhookEventType
from mettl_async._errors import ConfigurationError, WebhookPayloadError
from mettl_async._models import WebhookEvent
from mettl_async._numbers import is_finite_number, is_whole_number

from ._auth import AUTH_HEADERS, Credentials, Headers, pick_headers
from ._events import EVENT_TYPES, event_key, parse_event
from ._paths import normalized_path, webhook_routes
from ._seen import InMemorySeenStore, SeenStore

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "Body",
    "EventCallback",
    "ReceiverOptions",
    "ReceiverStats",
    "RetryLater",
    "WebhookAnswer",
    "WebhookProcessor",
]

logger = logging.getLogger("mettl_async.webhooks")

#: Largest body the receiver reads by default; Mettl's largest payload (graded) is a few KiB.
DEFAULT_MAX_BODY_SIZE: Final = 1024 * 1024
#: Seconds the receiver waits for a whole body by default.
DEFAULT_READ_TIMEOUT: Final = 30.0

#: The application's callback: an async function of one event (or a plain function, which
#: then runs in the event loop: keep it quick). Its return value is ignored.
EventCallback: TypeAlias = Callable[[WebhookEvent], Awaitable[object] | None]

#: A request's body as :meth:`WebhookProcessor.process` takes it: the bytes, or the
#: chunks as they arrive (an async iterable, such as aiohttp's
#: ``request.content.iter_chunked(n)`` or a generator over ASGI's ``receive()``), so
#: that the size cap and the read timeout apply while it is read.
Body: TypeAlias = bytes | bytearray | memoryview | AsyncIterable[bytes]


class ReceiverOptions(TypedDict, total=False):
    """The keyword arguments of a receiver, whatever serves it: those of
    :class:`WebhookProcessor` (which has their defaults and meaning)."""

    path: str
    separate_paths: bool
    username: str | None
    password: str | None
    store: SeenStore | None
    deduplicate: bool
    key: Callable[[WebhookEvent], str | None]
    max_body_size: int
    retry_after: int
    read_timeout: float


_CONTENT_LENGTH: Final = "content-length"
_AUTHENTICATE: Final = 'Basic realm="mettl-webhooks", charset="UTF-8"'


@attrs.define
class ReceiverStats:
    """Counts of what a :class:`WebhookReceiver` answered, since it was made."""

    delivered: int = 0  # 200, the callback returned
    duplicates: int = 0  # 200, already delivered
    unauthorized: int = 0  # 401
    too_large: int = 0  # 413
    malformed: int = 0  # 400
    failed: int = 0  # 500, the callback raised
    unavailable: int = 0  # 503
    timed_out: int = 0  # 408, the body was too slow to arrive


@attrs.frozen
class WebhookAnswer:
    """What to answer a webhook call: ``status``, a JSON ``body`` and ``headers``.

    The body is ``{"status": state}``, with ``"reason"`` when there is one;
    ``headers`` holds ``Content-Type: application/json`` and, by status,
    ``WWW-Authenticate`` (401), ``Retry-After`` (503) or ``Allow`` (405).
    """

    status: int
    state: str
    reason: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def body(self) -> bytes:
        """The JSON body: ``{"status": state, "reason": reason}`` (no reason: no key)."""
        body = {"status": self.state}
        if self.reason is not None:
            body["reason"] = self.reason
        return orjson.dumps(body)


def _answer(status: int, state: str, reason: str | None = None, **headers: str) -> WebhookAnswer:
    return WebhookAnswer(status, state, reason, {"Content-Type": "application/json", **headers})


class RetryLater(Exception):
    """Raised by a callback that cannot handle the event now (a service it needs is down).

    The receiver answers 503 with ``Retry-After`` (``retry_after`` seconds, else
    the receiver's) and does not mark the event seen, so the sender's retry is
    handled afresh; it logs ``reason`` as a WARNING, without a traceback.
    """

    def __init__(self, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _content_length(value: str | bytes | None) -> int | None:
    if value is None:
        return None
    text = value.strip()  # str or bytes alike
    return int(text) if text.isascii() and text.isdigit() else None


class WebhookProcessor:
    """Mettl's webhook calls, answered without a web framework: each event goes to
    ``on_event`` once.

    An adapter hands over each request with :meth:`process` (method, path, headers,
    body) and sends back the :class:`WebhookAnswer`; an adapter that routes with its
    framework's router (as :class:`WebhookReceiver` does) calls :meth:`post` for
    the POSTs instead. The statuses are those of the package documentation.

    ``on_event`` is awaited before the answer: Mettl gets 200 once it has
    returned, 500 if it raised (the event stays unseen, so a redelivery is
    handed over again). Keep it short (put the event on a queue) if Mettl must
    not wait.

    ``path`` and ``separate_paths`` say which paths :meth:`process` answers
    (:func:`webhook_routes`), relative to where the processor is mounted.
    ``username`` and ``password`` turn on Basic authentication (both or
    neither). ``store`` records seen keys (default: a new
    :class:`InMemorySeenStore`); ``deduplicate=False`` hands over every
    delivery. ``key`` computes an event's key (default :func:`event_key`); a
    key of ``None`` turns deduplication off for that event. A body larger than
    ``max_body_size`` bytes is answered 413, one that has not arrived whole
    within ``read_timeout`` seconds 408; a 503 asks Mettl to retry after
    ``retry_after`` seconds.
    """

    def __init__(
        self,
        on_event: EventCallback,
        *,
        path: str = "/",
        separate_paths: bool = True,
        username: str | None = None,
        password: str | None = None,
        store: SeenStore | None = None,
        deduplicate: bool = True,
        key: Callable[[WebhookEvent], str | None] = event_key,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        retry_after: int = 5,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        if (username is None) != (password is None):
            raise ConfigurationError("give both username and password, or neither")
        if not is_whole_number(max_body_size) or max_body_size < 1:
            raise ConfigurationError(f"max_body_size must be >= 1, got {max_body_size!r}")
        if not is_whole_number(retry_after) or retry_after < 0:
            raise ConfigurationError(f"retry_after must be whole seconds >= 0, got {retry_after!r}")
        if not is_finite_number(read_timeout) or read_timeout <= 0:
            raise ConfigurationError(
                f"read_timeout must be a finite number of seconds > 0, got {read_timeout!r}"
            )
        self.on_event = on_event
        self._auth = (
            Credentials(username, password)
            if username is not None and password is not None
            else None
        )
        self.store: SeenStore = store if store is not None else InMemorySeenStore()
        self.deduplicate = deduplicate
        self.key = key
        self.max_body_size = max_body_size
        self.retry_after = retry_after
        self.read_timeout = float(read_timeout)
        #: The paths :meth:`process` answers, with the event each expects (``None``: any).
        self.routes: Mapping[str, WebhookEventType | None] = webhook_routes(
            path, separate_paths=separate_paths
        )
        self.path = normalized_path(path)
        self.separate_paths = separate_paths
        self.stats = ReceiverStats()
        self._waiters: dict[str, asyncio.Future[None]] = {}

    @property
    def authenticates(self) -> bool:
        """Whether calls must carry the configured credentials."""
        return self._auth is not None

    async def process(
        self,
        method: str,
        path: str,
        headers: Headers,
        body: Body,
        *,
        remote: str | None = None,
    ) -> WebhookAnswer:
        """The answer to one HTTP request: 404 off :attr:`routes`, 405 unless POST, else
        :meth:`post`'s.

        ``path`` is relative to where the processor is mounted (ASGI: ``scope["path"]``
        without ``scope["root_path"]``). ``headers`` as :func:`verify_basic_auth` takes
        them. ``body`` is read only when the call is authenticated. ``remote`` (the
        caller's address) is only logged.
        """
        if path not in self.routes:
            return _answer(404, "not_found", "no webhook URL at this path")
        if method.upper() != "POST":
            return _answer(405, "method_not_allowed", "webhooks are POSTed", Allow="POST")
        return await self.post(headers, body, expected=self.routes[path], path=path, remote=remote)

    async def post(
        self,
        headers: Headers,
        body: Body,
        *,
        expected: WebhookEventType | None = None,
        path: str = "",
        remote: str | None = None,
    ) -> WebhookAnswer:
        """The answer to one POST: verify, read, parse, deduplicate, deliver.

        ``expected`` is the event of the URL it arrived on, if that URL is one event's
        (another event is accepted there, with a warning); ``path`` and ``remote`` are
        only logged.
        """
        found = pick_headers(headers, (*AUTH_HEADERS, _CONTENT_LENGTH))
        if self._auth is not None and not self._auth.verify(found):
            self.stats.unauthorized += 1
            logger.warning(
                "webhook call from %s to %s refused: missing or wrong credentials", remote, path
            )
            return _answer(
                401,
                "unauthorized",
                "missing or wrong credentials",
                **{"WWW-Authenticate": _AUTHENTICATE},
            )
        try:
            async with asyncio.timeout(self.read_timeout):
                data = await self._read_body(found.get(_CONTENT_LENGTH), body)
        except TimeoutError:
            self.stats.timed_out += 1
            logger.warning(
                "webhook call from %s to %s refused: the body did not arrive within %g s",
                remote,
                path,
                self.read_timeout,
            )
            return _answer(
                408, "timeout", f"the body did not arrive within {self.read_timeout:g} s"
            )
        if data is None:
            self.stats.too_large += 1
            logger.warning(
                "webhook call from %s to %s refused: body larger than %d bytes",
                remote,
                path,
                self.max_body_size,
            )
            return _answer(413, "too_large", f"body larger than {self.max_body_size} bytes")
        try:
            event = parse_event(data)
        except WebhookPayloadError as exc:
            self.stats.malformed += 1
            logger.warning(
                "webhook call from %s to %s refused: %s; body starts %r",
                remote,
                path,
                exc.reason,
                exc.excerpt,
            )
            return _answer(400, "malformed", exc.reason)
        kind = EVENT_TYPES[type(event)]
        if expected is not None and kind is not expected:
            logger.warning(
                "webhook %s arrived on the %s URL (%s): accepted; check the schedule's URLs",
                kind.value,
                expected.value,
                path,
            )
        key = self.key(event) if self.deduplicate else None
        if key is None:
            return await self._deliver(event, None)
        return await self._deliver_once(event, key)

    async def _read_body(self, declared: str | bytes | None, body: Body) -> bytes | None:
        """The body, or ``None`` when it is larger than ``max_body_size``."""
        limit = self.max_body_size
        if isinstance(body, bytes | bytearray | memoryview):
            return bytes(body) if len(body) <= limit else None
        length = _content_length(declared)
        if length is not None and length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _deliver_once(self, event: WebhookEvent, key: str) -> WebhookAnswer:
        # Deliveries of one key in this process take turns (one waiter per key),
        # so only the store's answer decides between "deliver" and "duplicate".
        while (current := self._waiters.get(key)) is not None:
            await asyncio.wait([current])  # never cancels ``current``
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        try:
            try:
                claim = await self.store.claim(key)
            except Exception:
                self.stats.unavailable += 1
                logger.exception("webhook %s: the seen-keys store failed to claim it", key)
                return self._unavailable("the seen-keys store is unavailable")
            if claim == "done":
                self.stats.duplicates += 1
                logger.debug("webhook %s already delivered: answered as a duplicate", key)
                return _answer(200, "duplicate")
            if claim == "in_progress":
                # claimed by another process sharing the store
                self.stats.unavailable += 1
                logger.info("webhook %s is being handled elsewhere: asked to retry", key)
                return self._unavailable("the same event is being handled; retry later")
            return await self._deliver(event, key)
        finally:
            del self._waiters[key]
            waiter.set_result(None)

    async def _deliver(self, event: WebhookEvent, key: str | None) -> WebhookAnswer:
        label = key or EVENT_TYPES[type(event)].value
        try:
            outcome = self.on_event(event)
            if inspect.isawaitable(outcome):
                await outcome
        except RetryLater as exc:
            self.stats.unavailable += 1
            logger.warning("webhook %s: %s; answered 503", label, exc.reason)
            if key is not None:
                await self._release(key)
            return self._unavailable(exc.reason, exc.retry_after)
        except Exception:
            self.stats.failed += 1
            logger.exception("webhook %s: the application's callback raised; answered 500", label)
            if key is not None:
                await self._release(key)
            return _answer(500, "failed", "the application failed to handle the event")
        except BaseException:  # cancelled: the event was not handled
            if key is not None:
                await self._release(key)
            raise
        if key is not None:
            try:
                await self.store.complete(key)
            except Exception:
                # Delivered: answering an error would make Mettl deliver it again.
                logger.exception("webhook %s delivered, but the store failed to record it", label)
                await self._release(key)
        self.stats.delivered += 1
        logger.debug("webhook %s delivered", label)
        return _answer(200, "delivered")

    async def _release(self, key: str) -> None:
        try:
            await self.store.release(key)
        except Exception:
            logger.exception("webhook %s: the store failed to release its claim", key)

    def _unavailable(self, reason: str, retry_after: int | None = None) -> WebhookAnswer:
        seconds = self.retry_after if retry_after is None else retry_after
        return _answer(503, "unavailable", reason, **{"Retry-After": str(seconds)})
