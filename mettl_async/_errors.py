"""Every error mettl-async raises, in one tree under :class:`MettlError`.

::

    MettlError
    ├── ConfigurationError          bad client setup (missing env var, bad argument)
    ├── ClientClosedError           a request on a MettlClient that was closed
    ├── ValidationError             a request model Mettl would reject; lists every problem
    │   └── WebhookPayloadError     a webhook body that is not one of the four events
    │                               (not JSON, not an object, unknown EVENT_TYPE)
    ├── RequestError                a request was made and failed; carries method, url, status,
    │   │                           code, message and attempts
    │   ├── TransportError          no usable HTTP answer
    │   │   ├── MettlConnectionError    could not connect, or the connection dropped
    │   │   └── MettlTimeoutError       no complete answer within the timeout
    │   ├── DecodeError             an answer that is not the JSON Mettl sends (or cut short,
    │   │                           nested too deep, not UTF-8)
    │   ├── ResponseTooLargeError   an answer larger than ``max_response_bytes`` (not retried)
    │   └── APIError                Mettl answered with an ERROR envelope or an HTTP error
    │       ├── AuthenticationError     E401: signature mismatch (wrong private key)
    │       ├── TimestampError          E504, E422: ts missing, malformed or outside 24 h
    │       ├── PermissionDeniedError   E403: unknown public key, or action not allowed
    │       ├── NotFoundError           E404: unknown assessment id, access key or email
    │       ├── InvalidRequestError     E400, E405: malformed request or parameter
    │       ├── RateLimitError          E509, HTTP 429
    │       │   └── ThrottledError      still E509/429 at the end of the call's throttle_deadline
    │       └── ServerError             E503, E408, E000, HTTP 5xx
    ├── PaginationError             a listing could not be walked completely
    │   ├── IncompleteListingError      fewer records than the server reported, or a page failed
    │   └── RepeatedPageLinkError       the server sent the same next link twice
    └── RegistrationError           every chunk of a registration failed (more than one);
                                    carries each one's error, and is also of the class they
                                    share (a ServerError when each chunk got one)

Messages name what failed and never contain the private key; URLs have ``asgn``
redacted.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final, Self, cast

__all__ = [
    "APIError",
    "AuthenticationError",
    "ClientClosedError",
    "ConfigurationError",
    "DecodeError",
    "IncompleteListingError",
    "InvalidRequestError",
    "MettlConnectionError",
    "MettlError",
    "MettlTimeoutError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RegistrationError",
    "RepeatedPageLinkError",
    "RequestError",
    "ResponseTooLargeError",
    "ServerError",
    "ThrottledError",
    "TimestampError",
    "TransportError",
    "ValidationError",
    "ValidationProblem",
    "WebhookPayloadError",
]


class MettlError(Exception):
    """Base class of every error raised by mettl-async."""


class ConfigurationError(MettlError, ValueError):
    """The client was set up wrongly (a missing environment variable, a bad option)."""


class ClientClosedError(MettlError, RuntimeError):
    """A request was made on a :class:`MettlClient` after it was closed."""


class ValidationProblem:
    """One problem found in a request model: where (wire path) and what."""

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __repr__(self) -> str:
        return f"ValidationProblem({self.path!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidationProblem):
            return NotImplemented
        return (self.path, self.message) == (other.path, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.message))


class ValidationError(MettlError, ValueError):
    """A request that Mettl would reject, caught before any I/O.

    ``problems`` lists every problem found, each with its path in wire names
    (for example ``sc.scheduleWindow.timeZone``).
    """

    def __init__(self, problems: Sequence[ValidationProblem], *, subject: str = "request") -> None:
        self.problems: tuple[ValidationProblem, ...] = tuple(problems)
        self.subject = subject
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {subject}: {count} problem{'s' if count != 1 else ''}\n{lines}")

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.problems]

    def __reduce__(self) -> tuple[object, ...]:
        # The default would rebuild from the message text, one "problem" per character.
        return (_rebuild_validation_error, (type(self), self.problems, self.subject))


def _rebuild_validation_error(
    cls: type[ValidationError], problems: Sequence[ValidationProblem], subject: str
) -> ValidationError:
    error = cls.__new__(cls)
    ValidationError.__init__(error, problems, subject=subject)
    return error


class WebhookPayloadError(ValidationError):
    """A webhook body that is not one of Mettl's four events (article 13).

    Not JSON, not a JSON object, or an ``EVENT_TYPE`` that is missing or unknown.
    ``excerpt`` holds the start of the body (at most 200 characters), for diagnosis;
    the message never contains request headers.
    """

    def __init__(self, problems: Sequence[ValidationProblem], *, excerpt: str = "") -> None:
        self.excerpt = excerpt
        super().__init__(problems, subject="webhook payload")

    @property
    def reason(self) -> str:
        """The problems on one line, as the receiver answers them with its 400."""
        return "; ".join(str(problem) for problem in self.problems)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_payload_error, (self.problems, self.excerpt))


def _rebuild_payload_error(
    problems: Sequence[ValidationProblem], excerpt: str
) -> WebhookPayloadError:
    return WebhookPayloadError(problems, excerpt=excerpt)


class RequestError(MettlError):
    """A request to Mettl failed.

    Attributes: ``method``, ``url`` (``asgn`` redacted), ``path``, ``status``
    (HTTP status, or ``None`` when no answer came), ``code`` (Mettl's ``E…``
    code, if any), ``message`` and ``attempts`` (how many times it was sent).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        path: str = "",
        status: int | None = None,
        code: str | None = None,
        attempts: int = 1,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.method = method
        self.url = url
        self.path = path
        self.status = status
        self.code = code
        self.attempts = attempts
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        head = f"{self.code} {self.message}" if self.code else self.message
        where = " ".join(part for part in (self.method, self.path) if part)
        details = []
        if where:
            details.append(where)
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        details.append(f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        text = f"{head} ({', '.join(details)})"
        if self.hint:
            text += f"; {self.hint}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, method={self.method!r}, "
            f"path={self.path!r}, status={self.status!r}, code={self.code!r}, "
            f"attempts={self.attempts!r})"
        )

    def _init_kwargs(self) -> dict[str, object]:
        """The keyword arguments that rebuild this error (for pickling)."""
        return {
            "method": self.method,
            "url": self.url,
            "path": self.path,
            "status": self.status,
            "code": self.code,
            "attempts": self.attempts,
            "hint": self.hint,
        }

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.message, self._init_kwargs()))


def _rebuild(cls: type[RequestError], message: str, kwargs: dict[str, object]) -> RequestError:
    return cls(message, **kwargs)  # type: ignore[arg-type]


class TransportError(RequestError):
    """No usable HTTP answer arrived."""


class MettlConnectionError(TransportError):
    """Could not connect to Mettl, or the connection dropped before the answer was complete.

    ``request_sent`` is false when the connection failed before anything was sent
    (refused, DNS failure): only then is a POST safe to repeat.
    """

    request_sent: bool = True


class MettlTimeoutError(TransportError):
    """Mettl did not answer completely within the timeout."""


class DecodeError(RequestError):
    """The answer was not the JSON envelope Mettl sends (not JSON, cut short, wrong shape).

    ``excerpt`` holds the first bytes of the body, for diagnosis.
    """

    def __init__(self, message: str, *, excerpt: str = "", **kwargs: object) -> None:
        self.excerpt = excerpt
        super().__init__(message, **kwargs)  # type: ignore[arg-type]

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}; body starts {self.excerpt!r}" if self.excerpt else text


class ResponseTooLargeError(RequestError):
    """The answer was larger than the client's ``max_response_bytes``; it was not read further.

    Never retried: the same request would bring the same answer. ``limit`` is the
    cap in bytes (raise it with ``MettlClient(max_response_bytes=...)`` if the
    answer is genuine).
    """

    def __init__(self, message: str, *, limit: int = 0, **kwargs: object) -> None:
        self.limit = limit
        super().__init__(message, **kwargs)  # type: ignore[arg-type]

    def _init_kwargs(self) -> dict[str, object]:
        return {**super()._init_kwargs(), "limit": self.limit}


class APIError(RequestError):
    """Mettl answered with ``{"status": "ERROR", ...}`` or an HTTP error status.

    ``retry_after`` holds the seconds the server asked to wait (``Retry-After``), if any.
    """

    retry_after: float | None = None


class AuthenticationError(APIError):
    """E401: Mettl recomputed a different signature. Usually a wrong private key."""


class TimestampError(APIError):
    """E504 / E422: ``ts`` missing, malformed or outside Mettl's 24-hour window.

    ``server_skew`` is how far Mettl's clock (its ``Date`` header) was ahead of
    ours, in seconds, when it answered; ``None`` when it sent no date.
    """

    server_skew: float | None = None


class PermissionDeniedError(APIError):
    """E403: the public key is unknown or not allowed this action."""


class NotFoundError(APIError):
    """E404: unknown assessment id, access key or candidate email."""


class InvalidRequestError(APIError):
    """E400 / E405: Mettl found the request malformed."""


class RateLimitError(APIError):
    """E509 or HTTP 429: too many requests. ``retry_after`` holds the server's hint, if any."""


class ThrottledError(RateLimitError):
    """A call that Mettl kept refusing for its rate until its deadline passed.

    Throttled calls are retried (slower and slower) for up to the client's
    ``throttle_deadline`` seconds, held in ``deadline``; past it this is raised,
    with the last refusal's code and status and every attempt counted.
    """

    def __init__(self, message: str, *, deadline: float | None = None, **kwargs: object) -> None:
        self.deadline = deadline
        super().__init__(message, **kwargs)  # type: ignore[arg-type]

    def _init_kwargs(self) -> dict[str, object]:
        return {**super()._init_kwargs(), "deadline": self.deadline}


class ServerError(APIError):
    """E503, E408, E000 or HTTP 5xx: Mettl failed to handle the request."""


class PaginationError(MettlError):
    """A listing could not be walked completely.

    ``listing`` names what was walked (for example ``schedule 0x0x0x0x0x``) and
    ``offset`` where it went wrong.
    """

    def __init__(self, message: str, *, listing: str = "", offset: int | None = None) -> None:
        self.listing = listing
        self.offset = offset
        super().__init__(message)


class IncompleteListingError(PaginationError):
    """A walk cannot vouch that it yielded every record of its listing.

    Walks are deletion-safe: records arriving or deleted while a listing is
    walked are followed, not reported (each page is proven to meet the pages
    before it; where one does not, a repair page is read where the walk had got
    to), and every record that existed throughout is yielded once. This is
    raised when

    - a page after the first failed for good: ``offset`` is that page's, and
      ``__cause__`` the underlying :class:`RequestError` (the first page's
      errors are raised as they are, nothing having been yielded);
    - the listing changed faster than the walk could follow (repair pages kept
      missing where it had got to): ``offset`` is just past where the last
      record it could prove was last seen;
    - the listing did not change, yet the walk found fewer records than the
      server's ``totalRecords`` (the server skipped some): ``offset`` is None;
    - under a sort other than the default (newest first), the listing's total
      changed during the walk (a record inserted mid-walk can push another past
      a page already read): ``offset`` is None.

    Records already yielded were real; the listing should be walked again.
    For a paginated listing, the final page (``is_last``) is never handed over
    before this is raised.
    """


class RepeatedPageLinkError(PaginationError):
    """The server sent a next-page link it had already sent: following it would loop."""


class RegistrationError(MettlError):
    """Every chunk of one ``register_candidates`` call failed: no candidate got an answer.

    ``register_candidates`` sends its candidates in chunks of 20, and raises
    only when every chunk failed as a whole: the error itself when there was
    one chunk, else this, carrying every chunk's error (``errors``, in the
    order the chunks were sent; ``__cause__`` is the first).

    It is also an instance of the most specific class those errors share, with
    the first one's attributes: when every chunk got a :class:`ServerError`, it
    is a :class:`ServerError` (``except ServerError`` catches it, and ``code``,
    ``status`` and ``path`` are the first chunk's); when they differ, it is of
    their common base (:class:`APIError`, :class:`RequestError`, ...).
    """

    #: Each chunk's error, in the order the chunks were sent.
    errors: tuple[MettlError, ...]

    def __new__(cls, errors: Sequence[MettlError]) -> Self:
        # The class shared by every error, nearest first in the first one's MRO.
        shared = next(
            klass for klass in type(errors[0]).__mro__ if all(isinstance(e, klass) for e in errors)
        )
        return super().__new__(cast("type[Self]", _joining(shared)), errors)

    def __init__(self, errors: Sequence[MettlError]) -> None:
        first = errors[0]
        # The first error's attributes (code, status, path, ...), as its class reads them.
        self.__dict__.update({k: v for k, v in vars(first).items() if not k.startswith("__")})
        self.errors = tuple(errors)
        super(MettlError, self).__init__(self._summary())

    def _summary(self) -> str:
        by_text: dict[str, list[int]] = {}
        for number, error in enumerate(self.errors, 1):
            by_text.setdefault(str(error), []).append(number)
        listed = "; ".join(
            f"chunk{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}: {text}"
            for text, numbers in by_text.items()
        )
        return (
            f"{len(self.errors)} chunks of the registration failed and no candidate got "
            f"an answer: {listed}"
        )

    def __str__(self) -> str:
        return self._summary()

    def __repr__(self) -> str:
        return f"RegistrationError(errors={self.errors!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (RegistrationError, (self.errors,))


@functools.cache
def _joining(shared: type[BaseException]) -> type[RegistrationError]:
    """The RegistrationError that is also a ``shared`` (one class per shared class)."""
    if issubclass(RegistrationError, shared):
        return RegistrationError
    namespace = {"__module__": __name__, "__qualname__": "RegistrationError"}
    return cast(
        "type[RegistrationError]", type("RegistrationError", (RegistrationError, shared), namespace)
    )


#: Mettl error code -> error class, checked before the HTTP status.
ERROR_CODES: Final[dict[str, type[APIError]]] = {
    "E401": AuthenticationError,
    "E504": TimestampError,
    "E422": TimestampError,
    "E403": PermissionDeniedError,
    "E404": NotFoundError,
    "E400": InvalidRequestError,
    "E405": InvalidRequestError,
    "E509": RateLimitError,
    "E503": ServerError,
    "E408": ServerError,
    "E000": ServerError,
}
