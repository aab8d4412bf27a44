"""Basic authentication of Mettl's webhook calls, in either of the two forms Mettl sends.

Framework-neutral: the headers are any mapping or pairs, as a web framework gives them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping
from typing import Final, TypeAlias

from mettl_async._errors import ConfigurationError

__all__ = [
    "AUTH_HEADERS",
    "Credentials",
    "Headers",
    "check_credentials",
    "pick_headers",
    "verify_basic_auth",
]

#: Request headers as a web framework gives them: a mapping of names to values (aiohttp's
#: ``request.headers``, Starlette's ``request.headers``, a ``dict``), or the pairs
#: themselves (ASGI's ``scope["headers"]``: ``(bytes, bytes)``). Names are matched
#: without regard to case; of a repeated header the first value counts.
Headers: TypeAlias = Mapping[str, str | bytes] | Iterable[tuple[str | bytes, str | bytes]]

_AUTHORIZATION: Final = "authorization"
_PHP_USER: Final = "php-auth-user"
_PHP_PASSWORD: Final = "php-auth-pw"
#: The headers that carry the credentials (lower case).
AUTH_HEADERS: Final = (_AUTHORIZATION, _PHP_USER, _PHP_PASSWORD)


def pick_headers(headers: Headers, names: Collection[str]) -> dict[str, str | bytes]:
    """The first value of each header of ``names`` (lower case) that ``headers`` holds.

    ``headers`` is read once, so it may be any iterable of pairs, even a generator.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str | bytes] = {}
    for name, value in pairs:
        text = name.decode("latin-1") if isinstance(name, bytes) else name
        lowered = text.lower()
        if lowered in names and lowered not in found:
            found[lowered] = value
    return found


def check_credentials(username: str, password: str) -> None:
    """Raise :class:`~mettl_async.ConfigurationError` unless Basic authentication can carry them."""
    if not username or not password:
        raise ConfigurationError("webhook Basic authentication needs a username and a password")
    if ":" in username:
        raise ConfigurationError("a Basic authentication username cannot contain ':'")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in username + password):
        raise ConfigurationError("webhook credentials cannot contain control characters")


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _as_bytes(value: str | bytes) -> list[bytes]:
    """The bytes a header value may have been sent as.

    aiohttp decodes header bytes as UTF-8 with ``surrogateescape`` (undone exactly
    here); Starlette and the ASGI servers decode them as Latin-1.
    """
    if isinstance(value, bytes):
        return [value]
    sent = value.encode("utf-8", "surrogateescape")
    try:
        return [sent, value.encode("latin-1")]  # the same twice when it is ASCII
    except UnicodeEncodeError:
        return [sent]


class Credentials:
    """Constant-time check of the credentials Mettl sends (article 13).

    Only SHA-256 digests of the configured username and password are kept.
    """

    __slots__ = ("_password", "_username")

    def __init__(self, username: str, password: str) -> None:
        check_credentials(username, password)
        self._username = _digest(username.encode())
        self._password = _digest(password.encode())

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    def _matches(self, username: bytes, password: bytes) -> bool:
        # Digests of equal length, so the time taken does not depend on the lengths
        # either; both comparisons always run (``&``, not ``and``).
        return hmac.compare_digest(_digest(username), self._username) & hmac.compare_digest(
            _digest(password), self._password
        )

    def _from_authorization(self, value: str | bytes | None) -> bool:
        if value is None:
            return False
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        username, colon, password = decoded.partition(b":")
        return bool(colon) and self._matches(username, password)

    def _from_php_headers(self, username: str | bytes | None, password: str | bytes | None) -> bool:
        if username is None or password is None:
            return False
        matched = False
        for user in _as_bytes(username):
            for secret in _as_bytes(password):
                matched |= self._matches(user, secret)
        return matched

    def verify(self, headers: Headers) -> bool:
        """Whether either form of the credentials in ``headers`` matches."""
        found = pick_headers(headers, AUTH_HEADERS)
        by_authorization = self._from_authorization(found.get(_AUTHORIZATION))
        by_php = self._from_php_headers(found.get(_PHP_USER), found.get(_PHP_PASSWORD))
        return by_authorization | by_php


def verify_basic_auth(headers: Headers, username: str, password: str) -> bool:
    """Whether a webhook call's ``headers`` carry ``username`` and ``password``.

    Mettl sends the credentials twice (article 13): ``Authorization: Basic
    base64(username:password)`` and the ``php-auth-user`` / ``php-auth-pw`` pair;
    either one matching is enough. The comparisons take the same time whatever the
    values (SHA-256 digests compared with :func:`hmac.compare_digest`, both forms
    always checked).

    ``headers`` is the request's headers as a web framework gives them: any mapping
    of names to values (aiohttp's or Starlette's ``request.headers``, a ``dict``),
    or an iterable of ``(name, value)`` pairs of ``str`` or ``bytes`` (ASGI's
    ``scope["headers"]``). Names are matched without regard to case; of a repeated
    header the first counts. A ``str`` value is compared as the bytes it was sent
    as, whether the framework decoded it as UTF-8 (aiohttp) or Latin-1 (ASGI).

    Raises :class:`~mettl_async.ConfigurationError` when ``username`` or
    ``password`` is empty, the username holds ``:``, or either holds a control
    character: Basic authentication cannot carry them.
    """
    return Credentials(username, password).verify(headers)
