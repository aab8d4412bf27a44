"""Sans-I/O core: what a request looks like on the wire, and what an answer means.

Nothing here performs I/O or reads a clock. ``_session`` is the thin adapter
that sends a :class:`PreparedRequest` with aiohttp and hands the status, headers
and body back to :func:`decode_response`.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit

import attrs
import orjson

from ._errors import (
    ERROR_CODES,
    APIError,
    AuthenticationError,
    DecodeError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestError,
    ServerError,
    TimestampError,
    ValidationError,
    ValidationProblem,
)
from ._signing import SigningKey, sign_params

__all__ = [
    "FORM_CONTENT_TYPE",
    "FilePart",
    "PreparedRequest",
    "Request",
    "decode_response",
    "encode_params",
    "endpoint_url",
    "parse_retry_after",
    "path_segment",
    "prepare",
    "redact_secret",
    "redact_url",
]

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded; charset=UTF-8"
EXCERPT_BYTES: Final = 200
#: A POST whose parameters would make a longer query string sends them in the body.
MAX_POST_QUERY: Final = 6000
TIMESTAMP_HINT: Final = (
    "Mettl accepts a ts only within 24 hours of its own clock: check this machine's clock"
)
AUTH_HINT: Final = "check METTL_PUBLIC_KEY / METTL_PRIVATE_KEY (the private key must match)"

Placement = Literal["query", "form", "multipart"]


@attrs.frozen
class FilePart:
    """A multipart file field (logo, favicon, cover image). Never signed (articles 2, 3)."""

    name: str
    filename: str
    content: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    content_type: str = "application/octet-stream"


@attrs.frozen
class Request:
    """An unsigned request description: everything but ``ak``, ``ts`` and ``asgn``.

    ``url`` is the full URL without query, path segments already percent-encoded
    (it is signed exactly as written). ``params`` hold raw string values: a
    JSON-valued parameter is serialized once, by the caller, and that one string
    is both signed and sent. ``placement`` says where parameters travel: the
    query string (GET, DELETE, and POSTs such as article 13's examples), a
    form-urlencoded body (article 8), or the query next to a multipart body of
    unsigned files (articles 2, 3).
    """

    method: str
    url: str
    params: Mapping[str, str] = attrs.field(factory=dict)
    placement: Placement | None = None
    files: Sequence[FilePart] = ()
    timeout: float | None = None

    @property
    def where(self) -> Placement:
        if self.placement is not None:
            return self.placement
        if self.files:
            return "multipart"
        return "form" if self.method == "POST" else "query"

    @property
    def idempotent(self) -> bool:
        """GET and DELETE may be repeated safely; a POST may have been acted on."""
        return self.method in ("GET", "DELETE", "HEAD")

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@attrs.frozen
class PreparedRequest:
    """A signed request, ready for the wire."""

    method: str
    url: str  # with the encoded query string, if any
    body: bytes | None
    headers: Mapping[str, str]
    files: Sequence[FilePart] = ()
    form_fields: Mapping[str, str] = attrs.field(factory=dict)
    #: The request's ``asgn``, so that any text shown about it can be cleaned of it.
    signature: str = attrs.field(default="", repr=False)


def endpoint_url(base_url: str, api_version: str, path: str) -> str:
    """``https://api.mettl.com`` + ``v2`` + ``/schedules`` -> the URL that is signed."""
    return f"{base_url.rstrip('/')}/{api_version}{path}"


def path_segment(value: str, what: str = "path segment") -> str:
    """Percent-encode one path segment (an email, an access key).

    Everything but unreserved characters and ``@`` is encoded, so ``+`` becomes
    ``%2B`` and ``?`` becomes ``%3F``; the encoded form is what is signed (NM).
    ``""``, ``"."`` and ``".."`` are refused (:class:`~mettl_async.ValidationError`
    naming ``what``): a proxy or server normalizing the path would send the
    request to another endpoint (``/schedules/../candidates`` is ``/candidates``).
    """
    if value in ("", ".", ".."):
        problem = (
            f"{value!r} cannot be a path segment: the URL would name another endpoint"
            if value
            else "an empty string cannot be a path segment"
        )
        raise ValidationError([ValidationProblem(what, problem)], subject=what)
    return quote(value, safe="@")


def encode_params(params: Mapping[str, str]) -> str:
    """URL-encode every value exactly once (``+`` -> ``%2B``, space -> ``%20``)."""
    return "&".join(
        f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params.items()
    )


def prepare(
    request: Request,
    *,
    public_key: str,
    key: SigningKey,
    ts: int,
    headers: Mapping[str, str] | None = None,
) -> PreparedRequest:
    """Sign ``request`` with a fresh ``ts`` and lay it out for the wire."""
    signed = sign_params(
        request.method, request.url, request.params, public_key=public_key, key=key, ts=ts
    )
    out_headers = dict(headers or {})
    where = request.where
    query = encode_params(signed)
    if where == "query" and request.method == "POST" and len(query) > MAX_POST_QUERY:
        where = "form"  # servers refuse very long request lines; Mettl takes both (§2.3)
    if where == "form":
        out_headers["Content-Type"] = FORM_CONTENT_TYPE
        return PreparedRequest(
            method=request.method,
            url=request.url,
            body=query.encode("ascii"),
            headers=out_headers,
            signature=signed["asgn"],
        )
    url = f"{request.url}?{query}"
    return PreparedRequest(
        method=request.method,
        url=url,
        body=None,
        headers=out_headers,
        files=tuple(request.files) if where == "multipart" else (),
        signature=signed["asgn"],
    )


# ``asgn`` named, then its value: ``asgn=v`` (a URL, a form body), ``"asgn": "v"`` (JSON),
# ``'asgn': 'v'`` (a repr), ``asgn: v``, and URL-encoded inside another URL
# (``%26asgn%3Dv``, ``%22asgn%22%3A%22v``). The value runs to the next delimiter.
_ASGN: Final = re.compile(
    r"(?:(?<![\w%])|(?<=%26)|(?<=%3[fF])|(?<=%22))"
    r"((?i:asgn)(?:\\?[\"']|%22)?\s*(?:=|:|%3[dDaA])\s*(?:\\?[\"']|%22)?)"
    r"(?:\\.|%(?!26|22)|[^&\s'\"<>#,;}\]\\%])*"
)
_ASGN_NAME: Final = re.compile("asgn", re.IGNORECASE)
# A signature is about 44 characters; a shorter text is never treated as one.
_MIN_SECRET: Final = 8
_PERCENT: Final = re.compile(r"%[0-9A-F]{2}")


def redact_url(url: object) -> str:
    """``url`` (a ``str`` or a ``yarl.URL``) as text, its ``asgn`` value ``REDACTED``.

    Mettl's ``asgn`` signs a request: shown, it lets anyone replay that request
    until Mettl's timestamp window closes. Any text is cleaned, not only a URL
    (a form body, an error page), in every form a server might echo the
    parameter: ``asgn=…``, ``"asgn": "…"`` and ``'asgn': '…'``, ``asgn: …``,
    and URL-encoded. The rest (``ak``, the public key; ``ts``) is left as it is.

    It is the ``url_filter`` to give the OpenTelemetry aiohttp-client
    instrumentation, whose ``url.full`` would otherwise carry the signature
    (its default redaction knows other services' signature parameters only)::

        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
        from mettl_async import redact_url

        AioHttpClientInstrumentor().instrument(url_filter=redact_url)

    The spans :class:`MettlClient` makes itself are redacted already.
    """
    text = url if isinstance(url, str) else str(url)
    first = _ASGN_NAME.search(text)
    if first is None:
        return text
    # The pattern is slow to try at every position: start at the first "asgn", keeping
    # the three characters its look-behinds read (``%26asgn``), so that matches are unchanged.
    start = max(first.start() - 3, 0)
    return text[:start] + _ASGN.sub(r"\1REDACTED", text[start:])


def _spellings(secret: str) -> list[str]:
    """How a signature may appear in an echo: as is, URL-encoded (either case of hex),
    JSON-escaped, or with ``+`` read as a space."""
    encoded = quote(secret, safe="")
    spellings = {
        secret,
        encoded,
        _PERCENT.sub(lambda m: m.group().lower(), encoded),
        secret.replace("/", "\\/"),
        secret.replace("+", " "),
    }
    return sorted(spellings, key=len, reverse=True)


def redact_secret(text: str, secret: str) -> str:
    """``text`` with ``asgn`` values (:func:`redact_url`) and every spelling of ``secret``
    hidden, including one cut short at the very end of ``text`` (an excerpt)."""
    text = redact_url(text)
    if len(secret) < _MIN_SECRET or not text:
        return text
    for spelling in _spellings(secret):
        if spelling in text:
            text = text.replace(spelling, "REDACTED")
        # An excerpt that ends inside the secret: its start is still a piece of it.
        for cut in range(min(len(spelling) - 1, len(text)), _MIN_SECRET - 1, -1):
            if text.endswith(spelling[:cut]):
                text = text[:-cut] + "REDACTED"
                break
    return text


def redact_error(error: RequestError, secret: str) -> None:
    """Remove ``secret`` (a request's ``asgn``) from every text ``error`` shows."""
    if len(secret) < _MIN_SECRET:
        return
    error.message = redact_secret(error.message, secret)
    error.url = redact_secret(error.url, secret)
    if error.hint:
        error.hint = redact_secret(error.hint, secret)
    if isinstance(error, DecodeError):
        error.excerpt = redact_secret(error.excerpt, secret)
    error.args = (error.message,)


def _excerpt(body: bytes) -> str:
    # A proxy's error page may echo the request URL: never show its signature.
    return redact_url(body[:EXCERPT_BYTES].decode("utf-8", errors="replace"))


def _class_for_status(status: int) -> type[APIError]:
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status in (400, 405, 422):
        return InvalidRequestError
    return APIError


def _hint_for(cls: type[APIError]) -> str | None:
    if cls is TimestampError:
        return TIMESTAMP_HINT
    if cls is AuthenticationError:
        return AUTH_HINT
    return None


def decode_response(
    status: int,
    body: bytes,
    *,
    method: str,
    url: str,
    attempts: int = 1,
    retry_after: float | None = None,
) -> dict[str, Any]:
    """Return the JSON envelope of a successful answer, or raise the typed error.

    The body is read whatever the HTTP status: Mettl reports most failures as
    ``{"status": "ERROR", "error": {"code": "E401", ...}}`` with HTTP 200. The
    Mettl code decides the error class first, then the HTTP status.
    """
    shown = redact_url(url)
    path = urlsplit(url).path
    context: dict[str, Any] = {
        "method": method,
        "url": shown,
        "path": path,
        "status": status,
        "attempts": attempts,
    }
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if status >= 400:
            cls = _class_for_status(status)
            raise _with_retry_after(
                cls(f"HTTP {status} with a body that is not JSON", **context), retry_after
            ) from None
        what = (
            "an empty body"
            if not body
            else f"a body that is not JSON (or was cut short): {_reason(exc)}"
        )
        raise DecodeError(f"Mettl sent {what}", excerpt=_excerpt(body), **context) from None
    if not isinstance(data, dict):
        raise DecodeError(
            f"Mettl sent JSON {type(data).__name__}, not an object",
            excerpt=_excerpt(body),
            **context,
        )
    envelope_status = data.get("status")
    if isinstance(envelope_status, str) and envelope_status.upper() == "SUCCESS":
        return data
    error = data.get("error")
    code: str | None = None
    message = ""
    if isinstance(error, dict):
        raw_code = error.get("code")
        code = str(raw_code) if raw_code is not None else None
        raw_message = error.get("message")
        message = redact_url(str(raw_message)) if raw_message is not None else ""
    if envelope_status is None and error is None and status < 400:
        raise DecodeError(
            "Mettl sent JSON without a status field", excerpt=_excerpt(body), **context
        )
    cls = ERROR_CODES.get(code or "") or _class_for_status(status)
    if not message:
        message = f"Mettl answered status {envelope_status!r}" if status < 400 else f"HTTP {status}"
    raise _with_retry_after(cls(message, code=code, hint=_hint_for(cls), **context), retry_after)


def _reason(exc: orjson.JSONDecodeError) -> str:
    """What the parser found wrong (nesting too deep, not UTF-8, a number out of range)."""
    return str(exc.msg) if getattr(exc, "msg", None) else str(exc)


def _with_retry_after(error: APIError, retry_after: float | None) -> APIError:
    error.retry_after = retry_after
    return error


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def server_clock_skew(date_header: str | None, *, now: float) -> float | None:
    """Seconds the server's ``Date`` header is ahead of ``now`` (negative: behind)."""
    if not date_header:
        return None
    try:
        when = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp() - now
