"""Mettl calls seen from outside: OpenTelemetry spans and hooks around each attempt.

``opentelemetry-api`` is optional (the ``otel`` extra). It is imported when a
client is made, never by ``import mettl_async``; without it a client has no
tracer, and a client with no tracer and no hooks has no :class:`Observer`:
the transport then does nothing more per call than before tracing existed.

What a trace holds:

- one CLIENT span per call, covering all its attempts (``mettl.attempts``
  counts them; each failed attempt adds a ``mettl.attempt.failed`` event),
  named by method and route template, ``GET /schedules/{access-key}/candidates``,
  with the HTTP semantic-convention attributes;
- one INTERNAL span per listing walk, per account-wide walk and per export or
  sync run, the parent of the calls made for it. A :class:`Scope` begins with
  the walk or run and its span is made by the first traced call under it, with
  the scope's start time: the walk and run code needs no tracer, and a walk,
  an async generator, never leaves its span current in its consumer's code.

Never recorded: the private key (it never leaves ``SigningKey``), an ``asgn``
(every URL and message goes through :func:`~mettl_async.redact_url`), an access
key or an email in a span name (names hold route templates only). ``url.full``
keeps ``ak``, the public key: it names the account and signs nothing.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar
from urllib.parse import urlsplit

import attrs

from ._errors import ConfigurationError, MettlError, RateLimitError
from ._protocol import Request, redact_url
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "AttemptHook",
    "AttemptInfo",
    "CallTrace",
    "Observer",
    "Scope",
    "observer",
    "route_template",
    "traced_run",
]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("mettl_async.http")

#: The instrumentation scope of every span of this library.
TRACER_NAME: Final = "mettl_async"

#: The paths of the 19 endpoints after ``/{api-version}``, as span names show them.
ROUTES: Final = (
    "/account",
    "/account/upload-logo",
    "/account/update-white-labeling",
    "/pbts",
    "/pbts/add",
    "/assessments",
    "/assessments/{assessment-id}",
    "/assessments/{assessment-id}/settings/edit",
    "/assessments/{assessment-id}/schedules",
    "/schedules",
    "/schedules/{access-key}",
    "/schedules/{access-key}/edit",
    "/schedules/{access-key}/candidates",
    "/schedules/{access-key}/candidates/{email}",
    "/candidates/{email}",
)
_VERSION_SEGMENT: Final = re.compile(r"[vV]\d+")
#: Routes by their number of segments, longest first (a literal tail beats a parameter).
_BY_LENGTH: Final = sorted(
    ((len(route.split("/")) - 1, route, route.split("/")[1:]) for route in ROUTES),
    key=lambda entry: -entry[0],
)


def _route_of_path(path: str) -> str | None:
    segments = path.strip("/").split("/")
    for length, route, pattern in _BY_LENGTH:
        if length >= len(segments) or not _VERSION_SEGMENT.fullmatch(segments[-length - 1]):
            continue
        tail = segments[-length:]
        if all(
            part[:1] == "{" or part == segment for part, segment in zip(pattern, tail, strict=True)
        ) and all(tail):
            return route
    return None


def route_template(url: str) -> str | None:
    """The route of ``url`` among the 19 endpoints (``/schedules/{access-key}``), or ``None``.

    The route is what follows the API version segment (``/v2``); path segments
    are percent-encoded (an access key or email holds no ``/``), so segments
    count true. A URL of no endpoint (a raw ``request()`` elsewhere) has none.
    """
    return _route_of_path(urlsplit(url).path)


@functools.lru_cache(maxsize=1024)
def _endpoint(url: str) -> tuple[str | None, str, int]:
    """Route template, host and port of a request URL (without its query: the pages
    of a listing share one, so the parse is made once per listing)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _route_of_path(parts.path), parts.hostname or "", port


# -- OpenTelemetry, imported on demand ----------------------------------------------------


class _Otel:
    """The two modules of ``opentelemetry-api`` used here."""

    def __init__(self) -> None:
        from opentelemetry import context, trace

        self.context = context
        self.trace = trace


_otel: _Otel | None = None
_otel_missing = False


def _load_otel() -> _Otel | None:
    """``opentelemetry-api``, imported once; ``None`` when it is not installed."""
    global _otel, _otel_missing
    if _otel is None and not _otel_missing:
        try:
            _otel = _Otel()
        except ImportError:
            _otel_missing = True
    return _otel


def _tracer(provider: TracerProvider | None) -> Tracer | None:
    otel = _load_otel()
    if otel is None:
        if provider is not None:
            raise ConfigurationError(
                "tracer_provider needs opentelemetry-api: pip install 'mettl-async[otel]'"
            )
        return None
    if provider is None:
        # The global provider, looked up at each span: one set later is followed.
        tracer: Tracer = otel.trace.get_tracer(TRACER_NAME, __version__)
        return tracer
    if isinstance(provider, otel.trace.NoOpTracerProvider):
        return None  # tracing turned off: no span, no cost
    return provider.get_tracer(TRACER_NAME, __version__)


def _error_type(error: BaseException) -> str:
    """``error.type``: the class, named where users import it (private modules left out)."""
    cls = type(error)
    module = ".".join(part for part in cls.__module__.split(".") if not part.startswith("_"))
    return f"{module}.{cls.__qualname__}"


def _failure(span: Span, error: BaseException) -> str:
    """Mark ``span`` failed by ``error`` (an event without a stack trace); its type."""
    otel = _otel
    assert otel is not None
    kind = _error_type(error)
    message = redact_url(str(error))
    span.add_event("exception", {"exception.type": kind, "exception.message": message})
    span.set_status(otel.trace.StatusCode.ERROR, message)
    return kind


# -- scopes: the parent spans of walks and runs -------------------------------------------

_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "mettl_async_scope", default=None
)


class Scope:
    """A walk or run whose calls a span is to gather, made by the first traced call in it.

    ``with scope:`` ends the span (if one was made) when the block does, failed
    by its exception if any; ``with scope.current():`` makes calls in the block
    (and tasks started in it) children of the scope. Both are cheap without a
    tracer: a scope is a small object and a context variable.
    """

    __slots__ = (
        "_context",
        "_error",
        "_notes",
        "attributes",
        "closed",
        "name",
        "parent",
        "span",
        "start",
    )

    def __init__(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        self.name = name
        self.attributes = attributes or {}
        self.parent = _SCOPE.get()
        self.start = time.time_ns()
        self.span: Span | None = None
        self.closed = False
        self._context: Any = None
        self._notes: dict[str, Any] = {}
        self._error: BaseException | None = None

    def current(self) -> _Current:
        """A context manager: calls in its block are children of this scope."""
        return _Current(self)

    def note(self, key: str, value: Any) -> None:
        """An attribute known at the end (a count of records)."""
        self._notes[key] = value

    def fail(self, error: BaseException) -> None:
        """What ended the walk or run: the span, closed later, shows it."""
        self._error = error

    def context(self, tracer: Tracer) -> Any:
        """The OpenTelemetry context of this scope's span, made now if need be."""
        if self._context is None:
            parent = None if self.parent is None else self.parent.context(tracer)
            if self.closed:  # a late call: no span that would never end
                return parent
            otel = _otel
            assert otel is not None
            self.span = tracer.start_span(
                self.name,
                context=parent,
                attributes=self.attributes,
                start_time=self.start,
                record_exception=False,
                set_status_on_exception=False,
            )
            self._context = otel.trace.set_span_in_context(self.span, parent)
        return self._context

    def __enter__(self) -> Scope:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self.close(error)

    def close(self, error: BaseException | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        error = error or self._error
        span = self.span
        if span is None:
            return
        if span.is_recording():
            if self._notes:
                span.set_attributes(self._notes)
            if error is not None and isinstance(error, Exception):
                span.set_attribute("error.type", _failure(span, error))
        span.end()


class _Current:
    __slots__ = ("_scope", "_token")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def __enter__(self) -> None:
        self._token = _SCOPE.set(self._scope)

    def __exit__(self, *_: object) -> None:
        _SCOPE.reset(self._token)


def listing_scope(request: Request, items_key: str) -> Scope:
    """The scope of one listing walk, named by its route template."""
    route = _endpoint(request.url)[0]
    attributes: dict[str, Any] = {"mettl.listing.items": items_key}
    if route is not None:
        attributes["url.template"] = route
    return Scope(f"mettl.listing {route}" if route else "mettl.listing", attributes)


_SUMMARY_COUNTS: Final = ("schedules", "records", "requests", "retries")


def traced_run(
    name: str,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate a run (an export, a sync) so that its calls gather under a span ``name``;
    the summary's counts it returns become attributes (``mettl.records``)."""

    def decorate(run: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(run)
        async def traced(*args: P.args, **kwargs: P.kwargs) -> T:
            with Scope(name) as scope, scope.current():
                result = await run(*args, **kwargs)
                for count in _SUMMARY_COUNTS:
                    value = getattr(result, count, None)
                    if isinstance(value, int):
                        scope.note(f"mettl.{count}", value)
                return result

        return traced

    return decorate


# -- one call, its attempts -------------------------------------------------------------


@attrs.frozen
class AttemptInfo:
    """One attempt of a Mettl call, as ``on_request`` and ``on_response`` hooks see it.

    Nothing secret: ``url`` has its ``asgn`` redacted, and ``route`` names the
    endpoint without its access key or email (a low-cardinality label for metrics).
    """

    method: str  #: ``GET``, ``POST``, ``DELETE``
    #: The endpoint, ``/schedules/{access-key}/candidates``; ``None`` for a URL of none
    route: str | None
    url: str  #: the URL as sent, ``asgn`` redacted (a form POST's parameters are in its body)
    attempt: int  #: 1 for the first attempt, then 2, 3... (throttled attempts count)
    #: The HTTP status (``None``: before the answer, or no answer came)
    status: int | None = None
    #: Seconds from sending to the answer read and decoded (``None`` in ``on_request``)
    elapsed: float | None = None
    #: What failed the attempt (its texts redacted); ``None``: it succeeded, or before it
    error: MettlError | None = None
    #: Mettl refused the attempt for its rate (E509, HTTP 429)
    throttled: bool = False


#: An ``on_request`` or ``on_response`` hook: called with each attempt, its result ignored.
AttemptHook = Callable[[AttemptInfo], object]


@attrs.define
class Observer:
    """What a client reports its calls to: a tracer, hooks, or both."""

    tracer: Tracer | None
    on_request: AttemptHook | None = None
    on_response: AttemptHook | None = None
    hooks: bool = attrs.field(init=False)  #: any hook to call

    @hooks.default
    def _any_hook(self) -> bool:
        return self.on_request is not None or self.on_response is not None

    def call(self, request: Request) -> CallTrace:
        return CallTrace(self, request)

    def notify(self, hook: AttemptHook, info: AttemptInfo) -> None:
        try:
            hook(info)
        except Exception:
            # A metrics hook never fails a call (a POST Mettl acted on would look failed).
            logger.exception("the %s hook %r failed", info.method, hook)


def observer(
    tracer_provider: TracerProvider | None,
    on_request: AttemptHook | None,
    on_response: AttemptHook | None,
) -> Observer | None:
    """The observer of a client; ``None`` when there is nothing to tell (no cost)."""
    tracer = _tracer(tracer_provider)
    if tracer is None and on_request is None and on_response is None:
        return None
    return Observer(tracer, on_request, on_response)


class CallTrace:
    """One call: its span (current while it runs) and its attempts, told to the hooks."""

    __slots__ = (
        "_observer",
        "_recording",
        "_sent_at",
        "_span",
        "_token",
        "attempt",
        "method",
        "route",
        "status",
        "throttled",
        "url",
    )

    def __init__(self, observer: Observer, request: Request) -> None:
        self._observer = observer
        self.method = request.method
        self.route, host, port = _endpoint(request.url)
        self.url = ""  # the last attempt's, redacted: made only when a span or hook shows it
        self.attempt = 0
        self.status: int | None = None
        self.throttled = False
        self._sent_at = 0.0
        self._span: Span | None = None
        self._recording = False
        self._token: object = None
        if observer.tracer is not None:
            self._start(observer.tracer, host, port)

    def _start(self, tracer: Tracer, host: str, port: int) -> None:
        otel = _otel
        assert otel is not None
        scope = _SCOPE.get()
        parent = None if scope is None else scope.context(tracer)
        route = self.route
        attributes: dict[str, Any] = {
            "http.request.method": self.method,
            "server.address": host,
            "server.port": port,
        }
        if route is not None:
            attributes["url.template"] = route
        span = tracer.start_span(
            f"{self.method} {route}" if route is not None else self.method,
            context=parent,
            kind=otel.trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = span
        self._recording = span.is_recording()
        if span.get_span_context().is_valid:
            # Current while the call runs: spans made under it (aiohttp's) are its children.
            self._token = otel.context.attach(otel.trace.set_span_in_context(span, parent))

    def sending(self, url: str, attempt: int) -> None:
        """An attempt of the call goes out to ``url`` (signed: its asgn is redacted here)."""
        observer = self._observer
        self.attempt = attempt
        self._sent_at = time.perf_counter()
        if self._recording or observer.hooks:
            self.url = redact_url(url)
        if self._recording:
            assert self._span is not None
            self._span.set_attribute("url.full", self.url)
        if observer.on_request is not None:
            info = AttemptInfo(self.method, self.route, self.url, attempt)
            observer.notify(observer.on_request, info)

    def answered(self, status: int | None, error: MettlError | None) -> None:
        """The attempt ended: ``status`` (``None``: no answer) and its error, if any."""
        observer = self._observer
        throttled = isinstance(error, RateLimitError)
        self.status = status
        self.throttled = self.throttled or throttled
        if self._recording and error is not None:
            assert self._span is not None
            event: dict[str, Any] = {
                "mettl.attempt": self.attempt,
                "error.type": _error_type(error),
                "mettl.throttled": throttled,
            }
            if status is not None:
                event["http.response.status_code"] = status
            code = getattr(error, "code", None)
            if code:
                event["mettl.error.code"] = code
            self._span.add_event("mettl.attempt.failed", event)
        if observer.on_response is not None:
            info = AttemptInfo(
                self.method,
                self.route,
                self.url,
                self.attempt,
                status,
                time.perf_counter() - self._sent_at,
                error,
                throttled,
            )
            observer.notify(observer.on_response, info)

    def finish(self, error: BaseException | None) -> None:
        """The call is over, returned or raised ``error``: its span ends."""
        span = self._span
        if span is None:
            return
        try:
            if self._recording:
                attributes: dict[str, Any] = {
                    "mettl.attempts": self.attempt,
                    "mettl.throttled": self.throttled,
                }
                if self.status is not None:
                    attributes["http.response.status_code"] = self.status
                if isinstance(error, Exception):
                    attributes["error.type"] = _failure(span, error)
                    code = getattr(error, "code", None)
                    if code:
                        attributes["mettl.error.code"] = code
                elif error is not None:  # cancelled: no failure of the call's own
                    attributes["mettl.cancelled"] = True
                span.set_attributes(attributes)
            span.end()
        finally:
            if self._token is not None:
                otel = _otel
                assert otel is not None
                otel.context.detach(self._token)
