"""A client's configuration: every option of ``MettlClient``, checked once, in one place.

``MettlClient()`` and ``MettlClient.from_env()`` both end in
:meth:`ClientConfig.create`, which reads the keys and host not given from the
environment and refuses a bad option with a :class:`~mettl_async.ConfigurationError`
naming it. The private key is kept only inside a :class:`~mettl_async.SigningKey`:
never in an attribute, a ``repr`` or an error. Pure but for the environment
mapping it is handed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, TypedDict
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._errors import ConfigurationError
from ._numbers import is_finite_number, is_whole_number
from ._retry import RetryPolicy
from ._signing import SigningKey, algorithm_for_version

if TYPE_CHECKING:
    import aiohttp
    from opentelemetry.trace import TracerProvider

    from ._tracing import AttemptHook

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_BASE_URL",
    "ENV_PRIVATE_KEY",
    "ENV_PUBLIC_KEY",
    "EU_BASE_URL",
    "ClientConfig",
    "ClientOptions",
    "check_seconds",
    "keys_from",
    "shown_key",
]

DEFAULT_BASE_URL: Final = "https://api.mettl.com"
EU_BASE_URL: Final = "https://api.mercermettl.eu"
ENV_PUBLIC_KEY: Final = "METTL_PUBLIC_KEY"
ENV_PRIVATE_KEY: Final = "METTL_PRIVATE_KEY"
ENV_BASE_URL: Final = "METTL_BASE_URL"


class ClientOptions(TypedDict, total=False):
    """The keyword options of ``MettlClient`` other than the keys (see its docstring)."""

    base_url: str | None
    api_version: str
    session: aiohttp.ClientSession | None
    timeout: float
    max_in_flight: int
    requests_per_second: float | None
    retry: RetryPolicy | None
    clock: Callable[[], float]
    correct_clock_skew: bool
    max_response_bytes: int
    throttle_deadline: float | None
    tracer_provider: TracerProvider | None
    on_request: AttemptHook | None
    on_response: AttemptHook | None


def shown_key(public_key: str) -> str:
    """The public key as a ``repr`` shows it: its first eight characters."""
    return public_key[:8] + "…" if len(public_key) > 8 else public_key


@attrs.frozen
class ClientConfig:
    """Everything a client was set up with, checked (build it with :meth:`create`)."""

    public_key: str = attrs.field(repr=lambda key: repr(shown_key(key)))
    #: The private key, only as the HMAC state it signs with.
    key: SigningKey = attrs.field(repr=False)
    #: Without a trailing slash or an API version.
    base_url: str
    api_version: str
    timeout: float
    max_in_flight: int
    requests_per_second: float | None
    retry: RetryPolicy
    clock: Callable[[], float]
    correct_clock_skew: bool
    max_response_bytes: int
    throttle_deadline: float | None

    @classmethod
    def create(
        cls,
        public_key: str | None,
        private_key: str | None,
        *,
        environ: Mapping[str, str],
        base_url: str | None,
        api_version: str,
        timeout: float,
        max_in_flight: int,
        requests_per_second: float | None,
        retry: RetryPolicy | None,
        clock: Callable[[], float],
        correct_clock_skew: bool,
        max_response_bytes: int,
        throttle_deadline: float | None,
    ) -> ClientConfig:
        """The configuration of these options: keys and host not given come from ``environ``.

        Each option is checked, in the order of the constructor's arguments; the
        first bad one raises a :class:`~mettl_async.ConfigurationError` naming it.
        """
        if public_key is None or private_key is None:
            public_key, private_key = keys_from(
                environ, public_key=public_key, private_key=private_key
            )
        if not public_key:
            raise ConfigurationError("the Mettl public key is empty")
        if not private_key:
            raise ConfigurationError("the Mettl private key is empty")
        if base_url is None:
            base_url = environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        try:
            algorithm = algorithm_for_version(api_version)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not is_whole_number(max_in_flight) or max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be >= 1, got {max_in_flight!r}")
        check_seconds("timeout", timeout)
        if requests_per_second is not None and not _positive_finite(requests_per_second):
            raise ConfigurationError(
                "requests_per_second must be a finite number > 0 or None, "
                f"got {requests_per_second!r}"
            )
        if not is_whole_number(max_response_bytes) or max_response_bytes < 1:
            raise ConfigurationError(
                f"max_response_bytes must be a whole number >= 1, got {max_response_bytes!r}"
            )
        if throttle_deadline is not None and not throttle_deadline >= 0:
            raise ConfigurationError(
                f"throttle_deadline must be >= 0 seconds or None, got {throttle_deadline!r}"
            )
        base_url = _checked_base_url(base_url)
        return cls(
            public_key=public_key,
            key=SigningKey(private_key, algorithm=algorithm),
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            max_in_flight=max_in_flight,
            requests_per_second=requests_per_second,
            retry=retry if retry is not None else RetryPolicy(),
            clock=clock,
            correct_clock_skew=correct_clock_skew,
            max_response_bytes=max_response_bytes,
            throttle_deadline=throttle_deadline,
        )


def keys_from(
    env: Mapping[str, str], *, public_key: str | None = None, private_key: str | None = None
) -> tuple[str, str]:
    """The keys not given, from ``env``; a missing variable is named in the error."""
    public = public_key if public_key is not None else env.get(ENV_PUBLIC_KEY)
    private = private_key if private_key is not None else env.get(ENV_PRIVATE_KEY)
    missing = [
        name
        for name, given, value in (
            (ENV_PUBLIC_KEY, public_key, public),
            (ENV_PRIVATE_KEY, private_key, private),
        )
        if given is None and not value
    ]
    if missing:
        names = " and ".join(missing)
        raise ConfigurationError(
            f"{names} {'is' if len(missing) == 1 else 'are'} not set: export your Mettl API "
            f"keys as {ENV_PUBLIC_KEY} and {ENV_PRIVATE_KEY}, or pass public_key= and "
            "private_key="
        )
    return public or "", private or ""


def check_seconds(name: str, value: object) -> None:
    """A duration option: a finite number of seconds > 0 (``nan`` would mean no limit)."""
    if not _positive_finite(value):
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def _positive_finite(value: object) -> bool:
    return is_finite_number(value) and value > 0


def _checked_base_url(base_url: str) -> str:
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0..65535
    except ValueError as exc:
        raise ConfigurationError(f"base_url is not a valid URL ({exc}): {base_url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base_url must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, "
            f"got {base_url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url must not carry a query or fragment: {base_url!r}")
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments and segments[-1].lower() in ("v1", "v2", "v3"):
        host = urlunsplit(parts._replace(path="/".join(["", *segments[:-1]])))
        raise ConfigurationError(
            f"base_url must not end with the API version (the client adds "
            f"/{segments[-1].lower()} itself): use {host!r}, not {base_url!r} "
            "(api_version= chooses the version)"
        )
    return base_url.rstrip("/")
