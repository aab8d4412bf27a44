"""Receive Mettl's schedule webhooks (article 13): verify, parse, deduplicate, deliver.

A schedule can call four URLs: when a candidate starts (``startAssessment``),
finishes (``finishTest``), is graded (``gradedAssessment``) or is allowed to
resume an expired test (``candidateTestResumed``). This module turns those
calls into the typed events of :mod:`mettl_async` and hands each one to an
async callback of the application, once.

Quick start::

    from aiohttp import web
    from mettl_async import webhooks

    async def on_event(event: webhooks.WebhookEvent) -> None:
        await queue.put(event)          # keep it short: enqueue, answer fast

    app = webhooks.create_app(on_event, username="mettl", password=SECRET)
    web.run_app(app, port=8080)

    # and when creating the schedule:
    sc = webhooks.with_webhooks(sc, "https://hooks.example.com/", username="mettl",
                                password=SECRET)

What the receiver answers, in the order it checks:

- **401** (with ``WWW-Authenticate: Basic``) when credentials are configured and
  the call carries none or wrong ones. Mettl sends them twice (article 13):
  ``Authorization: Basic base64(user:password)`` and the ``php-auth-user`` /
  ``php-auth-pw`` pair; either one matching is enough. Comparisons are in
  constant time, and the body is not read.
- **413** when the body is larger than ``max_body_size`` (1 MiB by default).
- **408** when the body does not arrive within ``read_timeout`` seconds (30 by default).
- **400** with the reason when the body is not JSON, not an object, its
  ``EVENT_TYPE`` is missing or unknown, or an id has the wrong type
  (``candidate_instance_id`` and ``assessment_id`` are whole numbers, ``invitation_key``
  and ``timestamp_GMT`` strings); the start of the body is logged (WARNING,
  logger ``mettl_async``). Unknown extra fields are accepted (kept in ``raw``).
- **200** ``{"status": "delivered"}`` once the callback has returned: the
  callback is **awaited before the answer**, so a 200 means the application has
  the event.
- **200** ``{"status": "duplicate"}`` for an event already delivered: the
  callback is not called again.
- **500** when the callback raises (logged with its traceback): the event is
  *not* marked as seen, so Mettl's next delivery of it is handed over again.
- **503** (with ``Retry-After``) when the callback raises :class:`RetryLater`
  (it cannot handle the event now): not marked as seen either.
- **503** (with ``Retry-After``) when the seen-keys store fails, or when it says
  another process is handling the same event right now.

Deduplication. Each event has a key (:func:`event_key`: event type,
``candidate_instance_id``, ``invitation_key`` and ``timestamp_GMT``): a retried
delivery of one event is byte-identical, while a new event has a new timestamp
(a second ``finishTest`` after ``candidateTestResumed`` is a new event). A :class:`SeenStore`
records keys in two states: *in progress* (claimed by a delivery whose
callback is running) and *done* (the callback returned). A delivery that
arrives while the same event is in progress in this process waits for that one
to end, then answers ``duplicate`` if it succeeded or handles the event itself
if it failed. The default store, :class:`InMemorySeenStore`, keeps the last
100,000 done keys (least recently seen forgotten first) in this process; give
a shared store when several processes receive the same schedule's webhooks.

Slow clients. aiohttp's server waits for a request's headers up to its
``keepalive_timeout``, counted from the connection or the previous answer (75 s
under ``web.run_app``, an hour under a bare ``web.AppRunner``): give
``keepalive_timeout=15`` to either so that a request sent half-way does not
hold a connection open for long; ``mettl-async webhooks listen`` does
(``--header-timeout``). The body is bounded by the receiver's ``read_timeout``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable
from urllib.parse import SplitResult, urlsplit, urlunsplit

import attrs
import orjson
from aiohttp import web

from ._convert import parse_webhook_event
from ._enums import WebhookEventType
from ._errors import ConfigurationError, ValidationError, ValidationProblem, WebhookPayloadError
from ._models import (
    CandidateTestResumedEvent,
    FinishTestEvent,
    GradedAssessmentEvent,
    ScheduleSettings,
    StartAssessmentEvent,
    WebhookEvent,
)
from ._numbers import is_finite_number, is_whole_number
from ._timefmt import format_timestamp

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "EVENT_PATHS",
    "RECEIVER_KEY",
    "Claim",
    "EventCallback",
    "InMemorySeenStore",
    "ReceiverStats",
    "RetryLater",
    "SeenStore",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookReceiver",
    "basic_auth_header",
    "create_app",
    "event_key",
    "parse_event",
    "webhook_urls",
    "with_webhooks",
]

logger = logging.getLogger("mettl_async")

#: Largest body the receiver reads by default; Mettl's largest payload (graded) is a few KiB.
DEFAULT_MAX_BODY_SIZE: Final = 1024 * 1024
#: Seconds the receiver waits for a whole body by default.
DEFAULT_READ_TIMEOUT: Final = 30.0

#: The path segment of each event when the four URLs are separate (``separate_paths=True``).
EVENT_PATHS: Final[Mapping[WebhookEventType, str]] = {
    WebhookEventType.START_ASSESSMENT: "start",
    WebhookEventType.FINISH_TEST: "finish",
    WebhookEventType.GRADED_ASSESSMENT: "graded",
    WebhookEventType.CANDIDATE_TEST_RESUMED: "resumed",
}

# The ScheduleSettings field of each event's URL (article 13).
_URL_FIELDS: Final[Mapping[WebhookEventType, str]] = {
    WebhookEventType.START_ASSESSMENT: "test_start_notification_url",
    WebhookEventType.FINISH_TEST: "test_finish_notification_url",
    WebhookEventType.GRADED_ASSESSMENT: "test_graded_notification_url",
    WebhookEventType.CANDIDATE_TEST_RESUMED: "test_resume_enabled_for_expired_test_url",
}

_EVENT_TYPES: Final[Mapping[type, WebhookEventType]] = {
    StartAssessmentEvent: WebhookEventType.START_ASSESSMENT,
    FinishTestEvent: WebhookEventType.FINISH_TEST,
    GradedAssessmentEvent: WebhookEventType.GRADED_ASSESSMENT,
    CandidateTestResumedEvent: WebhookEventType.CANDIDATE_TEST_RESUMED,
}

_EXCERPT_CHARS: Final = 200
_BOM: Final = "\ufeff"

#: The application's callback: an async function of one event (or a plain function, which
#: then runs in the event loop: keep it quick). Its return value is ignored.
EventCallback: TypeAlias = Callable[[WebhookEvent], Awaitable[object] | None]


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def parse_event(data: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> WebhookEvent:
    """A webhook body (bytes or text of JSON, or the decoded mapping) -> its typed event.

    Returns a :class:`~mettl_async.StartAssessmentEvent`,
    :class:`~mettl_async.FinishTestEvent`, :class:`~mettl_async.GradedAssessmentEvent`
    (``sectional_scores`` decoded) or :class:`~mettl_async.CandidateTestResumedEvent`,
    chosen by ``EVENT_TYPE``. Unknown extra fields are accepted and kept in ``raw``.

    Raises :class:`~mettl_async.WebhookPayloadError` (a ``ValidationError``) when
    the body is not JSON, not a JSON object, or names no known event type.
    """
    if isinstance(data, Mapping):
        return _event_from_mapping(data, excerpt="")
    if isinstance(data, str):
        text = data
        raw: bytes | str = data.removeprefix(_BOM)
    else:
        blob = bytes(data)
        text = blob[: _EXCERPT_CHARS * 4].decode("utf-8", "replace")
        raw = blob.removeprefix(_BOM.encode())
    excerpt = _excerpt(text)
    if not raw.strip():
        raise WebhookPayloadError([ValidationProblem("body", "is empty")], excerpt=excerpt)
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebhookPayloadError(
            [ValidationProblem("body", f"is not JSON ({exc})")], excerpt=excerpt
        ) from None
    if not isinstance(decoded, dict):
        raise WebhookPayloadError(
            [
                ValidationProblem(
                    "body", f"is JSON {type(decoded).__name__}, not the object Mettl sends"
                )
            ],
            excerpt=excerpt,
        )
    return _event_from_mapping(decoded, excerpt=excerpt)


# Fields that identify an event (its deduplication key): their wire names and types.
_WHOLE_NUMBER_IDS: Final = ("candidate_instance_id", "assessment_id")
_TEXT_IDS: Final = ("invitation_key", "timestamp_GMT")


def _id_problems(data: Mapping[str, Any]) -> list[ValidationProblem]:
    problems = []
    for name in _WHOLE_NUMBER_IDS:
        value = data.get(name)
        if value is None or _whole_number(value) is not None:
            continue
        problems.append(
            ValidationProblem(
                name, f"must be a whole number, got {type(value).__name__} {_short(value)}"
            )
        )
    for name in _TEXT_IDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(
                ValidationProblem(
                    name, f"must be a string, got {type(value).__name__} {_short(value)}"
                )
            )
    return problems


def _whole_number(value: object) -> int | None:
    """An id as Mettl sends it (a JSON number), or a string of digits; else ``None``."""
    if is_whole_number(value):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 30:
        return int(value)
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _event_from_mapping(data: Mapping[str, Any], *, excerpt: str) -> WebhookEvent:
    problems = _id_problems(data) if isinstance(data, Mapping) else []
    if problems:
        raise WebhookPayloadError(problems, excerpt=excerpt)
    try:
        event = parse_webhook_event(data)
    except WebhookPayloadError:
        raise
    except ValidationError as exc:
        raise WebhookPayloadError(exc.problems, excerpt=excerpt) from None
    # Ids sent as strings of digits are the same ids: the event holds them as numbers.
    for name in _WHOLE_NUMBER_IDS:
        value = getattr(event, name)
        if isinstance(value, str):
            setattr(event, name, _whole_number(value))
    return event


def event_key(event: WebhookEvent) -> str:
    """The deduplication key:
    ``"<EVENT_TYPE>:<candidate_instance_id>:<invitation_key>:<timestamp_GMT>"``.

    Two deliveries with the same key are the same event: Mettl's retry of a
    delivery is byte-identical, while a new event of the same candidate (a
    second ``finishTest`` after ``candidateTestResumed``) has a new
    ``timestamp_GMT``, kept as sent. In each part ``%`` and ``:`` are written
    ``%25`` and ``%3A``, so that no two events share a key
    (``"finishTest:12:34%3Ak:…"`` is not ``"finishTest:12%3A34:k:…"``). When the
    payload has neither id, the key is the event type and a SHA-256 of the
    payload instead (``"<EVENT_TYPE>:sha256:<hex>"``), so only identical
    payloads collapse.
    """
    kind = _EVENT_TYPES[type(event)].value
    cid, invitation = event.candidate_instance_id, event.invitation_key
    if cid is None and invitation is None:
        digest = hashlib.sha256(orjson.dumps(event.raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"{kind}:sha256:{digest}"
    stamp = event.raw.get("timestamp_GMT")
    if not isinstance(stamp, str):
        stamp = format_timestamp(event.timestamp_gmt) if event.timestamp_gmt is not None else ""
    parts = ("" if cid is None else str(cid), invitation or "", stamp)
    return ":".join((kind, *(_key_part(part) for part in parts)))


def _key_part(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A")


# --------------------------------------------------------------------------
# Seen keys
# --------------------------------------------------------------------------

#: What :meth:`SeenStore.claim` found: the caller now owns the key (``"claimed"``),
#: another delivery owns it (``"in_progress"``), or it was handled (``"done"``).
Claim: TypeAlias = Literal["claimed", "in_progress", "done"]


@runtime_checkable
class SeenStore(Protocol):
    """Where the receiver records event keys. Each method must be atomic for its key.

    The receiver calls :meth:`claim` before the callback, then exactly one of
    :meth:`complete` (the callback returned) or :meth:`release` (it raised, or
    the request was cancelled). A shared store (Redis ``SET NX`` with an expiry
    on the in-progress state, a database row with a unique key, ...) should let
    an in-progress claim expire, in case its process dies before releasing it.
    """

    async def claim(self, key: str) -> Claim:
        """Take ``key`` if it is neither done nor in progress; say which it was otherwise."""
        ...

    async def complete(self, key: str) -> None:
        """Mark a claimed key done: later deliveries of it are duplicates."""
        ...

    async def release(self, key: str) -> None:
        """Forget a claim whose callback failed, so that the next delivery is handled."""
        ...


class InMemorySeenStore:
    """The default :class:`SeenStore`: this process only, at most ``max_entries`` done keys.

    The least recently seen done key is forgotten first (a duplicate refreshes
    its key). In-progress keys are never evicted; there are at most as many as
    deliveries being handled.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._done: OrderedDict[str, None] = OrderedDict()
        self._in_progress: set[str] = set()

    async def claim(self, key: str) -> Claim:
        if key in self._done:
            self._done.move_to_end(key)
            return "done"
        if key in self._in_progress:
            return "in_progress"
        self._in_progress.add(key)
        return "claimed"

    async def complete(self, key: str) -> None:
        self._in_progress.discard(key)
        self._done[key] = None
        self._done.move_to_end(key)
        while len(self._done) > self.max_entries:
            self._done.popitem(last=False)

    async def release(self, key: str) -> None:
        self._in_progress.discard(key)

    def __len__(self) -> int:
        """How many done keys are remembered."""
        return len(self._done)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is remembered as done."""
        return key in self._done


# --------------------------------------------------------------------------
# Basic authentication
# --------------------------------------------------------------------------


def _check_credentials(username: str, password: str) -> None:
    if not username or not password:
        raise ConfigurationError("webhook Basic authentication needs a username and a password")
    if ":" in username:
        raise ConfigurationError("a Basic authentication username cannot contain ':'")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in username + password):
        raise ConfigurationError("webhook credentials cannot contain control characters")


def basic_auth_header(username: str, password: str) -> str:
    """``base64(username:password)``: the value of ``testNotificationBasicAuthHeader``.

    Mettl then sends ``Authorization: Basic <this value>`` with every webhook,
    plus ``php-auth-user`` and ``php-auth-pw`` (article 13).
    """
    _check_credentials(username, password)
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _header_bytes(value: str) -> bytes:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape; undo it exactly.
    return value.encode("utf-8", "surrogateescape")


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class _BasicAuth:
    """Constant-time check of the credentials Mettl sends (article 13)."""

    __slots__ = ("_password", "_username")

    def __init__(self, username: str, password: str) -> None:
        _check_credentials(username, password)
        self._username = _digest(username.encode())
        self._password = _digest(password.encode())

    def __repr__(self) -> str:
        return "_BasicAuth(<redacted>)"

    def _matches(self, username: bytes, password: bytes) -> bool:
        # Digests of equal length, so the time taken does not depend on the lengths
        # either; both comparisons always run (``&``, not ``and``).
        return hmac.compare_digest(_digest(username), self._username) & hmac.compare_digest(
            _digest(password), self._password
        )

    def _from_authorization(self, value: str | None) -> bool:
        if value is None:
            return False
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        username, colon, password = decoded.partition(b":")
        return bool(colon) and self._matches(username, password)

    def _from_php_headers(self, username: str | None, password: str | None) -> bool:
        if username is None or password is None:
            return False
        return self._matches(_header_bytes(username), _header_bytes(password))

    def verify(self, request: web.BaseRequest) -> bool:
        """Whether either form of the credentials matches."""
        headers = request.headers
        by_authorization = self._from_authorization(headers.get("Authorization"))
        by_php = self._from_php_headers(headers.get("php-auth-user"), headers.get("php-auth-pw"))
        return by_authorization | by_php


# --------------------------------------------------------------------------
# The receiver
# --------------------------------------------------------------------------


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


def _answer(status: int, state: str, reason: str | None = None, **headers: str) -> web.Response:
    body: dict[str, str] = {"status": state}
    if reason is not None:
        body["reason"] = reason
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers or None,
    )


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


class WebhookReceiver:
    """An aiohttp handler for Mettl's webhooks, delivering each event to ``on_event`` once.

    ``on_event`` is awaited before the answer: Mettl gets 200 once it has
    returned, 500 if it raised (the event stays unseen, so a redelivery is
    handed over again). Keep it short (put the event on a queue) if Mettl must
    not wait. See the module documentation for every status.

    ``username`` and ``password`` turn on Basic authentication (both or
    neither). ``store`` records seen keys (default: a new
    :class:`InMemorySeenStore`); ``deduplicate=False`` hands over every
    delivery. ``key`` computes an event's key (default :func:`event_key`); a
    key of ``None`` turns deduplication off for that event. A body that has not
    arrived whole within ``read_timeout`` seconds is answered 408.
    """

    def __init__(
        self,
        on_event: EventCallback,
        *,
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
            _BasicAuth(username, password)
            if username is not None and password is not None
            else None
        )
        self.store: SeenStore = store if store is not None else InMemorySeenStore()
        self.deduplicate = deduplicate
        self.key = key
        self.max_body_size = max_body_size
        self.retry_after = retry_after
        self.read_timeout = float(read_timeout)
        self.stats = ReceiverStats()
        self._waiters: dict[str, asyncio.Future[None]] = {}

    @property
    def authenticates(self) -> bool:
        """Whether calls must carry the configured credentials."""
        return self._auth is not None

    def add_routes(
        self, app: web.Application, path: str = "/", *, separate_paths: bool = True
    ) -> None:
        """Answer ``POST path`` (every event, by ``EVENT_TYPE``) on ``app``.

        With ``separate_paths`` (the default) also ``path/start``, ``path/finish``,
        ``path/graded`` and ``path/resumed`` (:data:`EVENT_PATHS`), the URLs
        :func:`with_webhooks` sets with ``separate_paths=True``; each still
        dispatches on ``EVENT_TYPE``.
        """
        base = _normalized_path(path)
        app.router.add_post(base, self.handle)
        if base != "/":
            app.router.add_post(base + "/", self.handle)
        else:
            # Mounted with ``add_subapp("/mettl", app)``, the bare ``/mettl`` (the URL
            # with_webhooks gives Mettl) answers too, not only ``/mettl/``.
            app.router.add_post("", self.handle)
        if separate_paths:
            prefix = "" if base == "/" else base
            for kind, segment in EVENT_PATHS.items():
                app.router.add_post(f"{prefix}/{segment}", self._handler_for(kind))

    def _handler_for(
        self, kind: WebhookEventType
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle_one(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, kind)

        return handle_one

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler: verify, read, parse, deduplicate, deliver, answer."""
        return await self._handle(request, None)

    async def _handle(
        self, request: web.Request, expected: WebhookEventType | None
    ) -> web.StreamResponse:
        if self._auth is not None and not self._auth.verify(request):
            self.stats.unauthorized += 1
            logger.warning(
                "webhook call from %s to %s refused: missing or wrong credentials",
                request.remote,
                request.path,
            )
            return _answer(
                401,
                "unauthorized",
                "missing or wrong credentials",
                **{"WWW-Authenticate": 'Basic realm="mettl-webhooks", charset="UTF-8"'},
            )
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await self._read_body(request)
        except TimeoutError:
            self.stats.timed_out += 1
            logger.warning(
                "webhook call from %s to %s refused: the body did not arrive within %g s",
                request.remote,
                request.path,
                self.read_timeout,
            )
            return _answer(
                408, "timeout", f"the body did not arrive within {self.read_timeout:g} s"
            )
        if body is None:
            self.stats.too_large += 1
            logger.warning(
                "webhook call from %s to %s refused: body larger than %d bytes",
                request.remote,
                request.path,
                self.max_body_size,
            )
            return _answer(413, "too_large", f"body larger than {self.max_body_size} bytes")
        try:
            event = parse_event(body)
        except WebhookPayloadError as exc:
            self.stats.malformed += 1
            logger.warning(
                "webhook call from %s to %s refused: %s; body starts %r",
                request.remote,
                request.path,
                exc.reason,
                exc.excerpt,
            )
            return _answer(400, "malformed", exc.reason)
        kind = _EVENT_TYPES[type(event)]
        if expected is not None and kind is not expected:
            logger.warning(
                "webhook %s arrived on the %s URL (%s): accepted; check the schedule's URLs",
                kind.value,
                expected.value,
                request.path,
            )
        key = self.key(event) if self.deduplicate else None
        if key is None:
            return await self._deliver(event, None)
        return await self._deliver_once(event, key)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or ``None`` when it is larger than ``max_body_size``."""
        limit = self.max_body_size
        declared = request.content_length
        if declared is not None and declared > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _deliver_once(self, event: WebhookEvent, key: str) -> web.StreamResponse:
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

    async def _deliver(self, event: WebhookEvent, key: str | None) -> web.StreamResponse:
        label = key or _EVENT_TYPES[type(event)].value
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

    def _unavailable(self, reason: str, retry_after: int | None = None) -> web.Response:
        seconds = self.retry_after if retry_after is None else retry_after
        return _answer(503, "unavailable", reason, **{"Retry-After": str(seconds)})


#: Where :func:`create_app` keeps its :class:`WebhookReceiver` (``app[RECEIVER_KEY]``).
RECEIVER_KEY: Final = web.AppKey("mettl_webhook_receiver", WebhookReceiver)


def _normalized_path(path: str) -> str:
    if not path.startswith("/"):
        raise ConfigurationError(f"a route path starts with '/', got {path!r}")
    return path.rstrip("/") or "/"


def create_app(
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
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> web.Application:
    """An ``aiohttp.web.Application`` answering Mettl's webhooks on ``path``.

    Run it on its own (``web.run_app(create_app(...))``) or mount it under a
    prefix of an existing application (``app.add_subapp("/mettl", create_app(...))``).
    The receiver is ``app[RECEIVER_KEY]``. Arguments: see :class:`WebhookReceiver`
    and :meth:`WebhookReceiver.add_routes`.
    """
    receiver = WebhookReceiver(
        on_event,
        username=username,
        password=password,
        store=store,
        deduplicate=deduplicate,
        key=key,
        max_body_size=max_body_size,
        read_timeout=read_timeout,
    )
    app = web.Application()
    app[RECEIVER_KEY] = receiver
    receiver.add_routes(app, path, separate_paths=separate_paths)
    return app


# --------------------------------------------------------------------------
# Configuring a schedule
# --------------------------------------------------------------------------


def _parse_base_url(base_url: str) -> SplitResult:
    if not isinstance(base_url, str) or any(c.isspace() for c in base_url):
        raise ConfigurationError(f"webhook base URL must be a URL without spaces: {base_url!r}")
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"webhook base URL must be an absolute http(s) URL, got {base_url!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "webhook base URL must not carry credentials: give username and password instead"
        )
    if parts.fragment:
        raise ConfigurationError(f"webhook base URL must not have a fragment: {base_url!r}")
    return parts


def _event_types(events: Iterable[WebhookEventType | str] | None) -> list[WebhookEventType]:
    if events is None:
        return list(EVENT_PATHS)
    chosen: list[WebhookEventType] = []
    for item in events:
        kind = WebhookEventType.parse(item) if isinstance(item, str) else item
        if not isinstance(kind, WebhookEventType):
            expected = ", ".join(k.value for k in WebhookEventType)
            raise ConfigurationError(f"unknown webhook event {item!r}; expected one of {expected}")
        if kind not in chosen:
            chosen.append(kind)
    return chosen


def webhook_urls(
    base_url: str,
    *,
    separate_paths: bool = False,
    events: Iterable[WebhookEventType | str] | None = None,
) -> dict[WebhookEventType, str]:
    """The URL Mettl should call for each event, from the receiver's public base URL.

    By default every event goes to ``base_url`` itself (the receiver dispatches
    on ``EVENT_TYPE``); with ``separate_paths``, to ``base_url`` + ``/start``,
    ``/finish``, ``/graded``, ``/resumed``. ``events`` limits the events
    (default: all four). Raises :class:`~mettl_async.ConfigurationError` unless
    ``base_url`` is an absolute http(s) URL without credentials or fragment.
    """
    parts = _parse_base_url(base_url)
    urls: dict[WebhookEventType, str] = {}
    for kind in _event_types(events):
        if separate_paths:
            path = f"{parts.path.rstrip('/')}/{EVENT_PATHS[kind]}"
            urls[kind] = urlunsplit(parts._replace(path=path))
        else:
            urls[kind] = base_url
    return urls


def with_webhooks(
    settings: ScheduleSettings,
    base_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    separate_paths: bool = False,
    events: Iterable[WebhookEventType | str] | None = None,
) -> ScheduleSettings:
    """A copy of ``settings`` whose webhook URLs point at ``base_url`` (see :func:`webhook_urls`).

    With ``username`` and ``password``, ``testNotificationBasicAuthHeader`` is
    set too (:func:`basic_auth_header`), so that the receiver can verify the
    calls. Fields not concerned (other events' URLs, the header when no
    credentials are given) keep their values. Basic authentication over plain
    ``http`` sends the password readable on the way: a WARNING is logged.
    """
    if (username is None) != (password is None):
        raise ConfigurationError("give both username and password, or neither")
    changes: dict[str, Any] = {
        _URL_FIELDS[kind]: url
        for kind, url in webhook_urls(
            base_url, separate_paths=separate_paths, events=events
        ).items()
    }
    if username is not None and password is not None:
        changes["test_notification_basic_auth_header"] = basic_auth_header(username, password)
        if urlsplit(base_url).scheme.lower() == "http":
            logger.warning(
                "webhook URLs use plain http: Mettl's Basic authentication header will "
                "travel unencrypted; prefer https"
            )
    return attrs.evolve(settings, **changes)
