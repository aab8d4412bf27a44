"""Mettl request signing: pure functions, no I/O, no clock reads.

The rule, as Mettl's "API Authentication and Signature Generation" article and
the worked examples of articles 8, 11 and 16 state it::

    string_to_sign = METHOD + URL_WITHOUT_QUERY
                     + for each parameter sorted by name (asgn excluded):
                         "\\n" + raw value
    asgn = base64(HMAC(private_key, string_to_sign))   # SHA-256 for v2/v3, SHA-1 for v1

Values go in raw (a JSON parameter exactly as serialized, never URL-encoded);
there is no ``name=`` and no trailing newline. The caller URL-encodes ``asgn``
exactly once when it puts it on the wire (see ``_protocol``).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Final

__all__ = [
    "SIGNATURE_PARAMS",
    "SigningKey",
    "algorithm_for_version",
    "sign_params",
    "signature",
    "string_to_sign",
]

#: Parameters the signer owns: a caller's value for any of them is replaced.
SIGNATURE_PARAMS: Final = frozenset({"ak", "ts", "asgn"})

_ALGORITHMS: Final = {"v1": "sha1", "v2": "sha256", "v3": "sha256"}


def algorithm_for_version(api_version: str) -> str:
    """Return the hashlib name of the HMAC digest Mettl uses for ``api_version``."""
    try:
        return _ALGORITHMS[api_version]
    except KeyError:
        raise ValueError(
            f"unknown Mettl API version {api_version!r}: expected one of v1, v2, v3"
        ) from None


def string_to_sign(method: str, url: str, params: Mapping[str, str]) -> str:
    """Build Mettl's string-to-sign.

    ``url`` is the full URL without its query string, exactly as requested (path
    segments in their percent-encoded form). ``params`` are the raw, unencoded
    values; ``asgn`` is skipped if present. Names sort by code point, which is the
    byte order every documented client relies on (``sort`` before ``sort_order``).
    """
    parts = [method.upper() + url]
    for name in sorted(params):
        if name != "asgn":
            parts.append(params[name])
    return "\n".join(parts)


class SigningKey:
    """A private API key, held so that it cannot leak by accident.

    ``repr()`` and ``str()`` never show the key; the only way to use it is
    :meth:`sign`. Keyed HMAC state is prepared once and copied per signature.
    """

    __slots__ = ("_digest", "_prepared")

    def __init__(self, private_key: str, *, algorithm: str = "sha256") -> None:
        if not private_key:
            raise ValueError("the Mettl private key is empty")
        self._digest = algorithm
        self._prepared = hmac.new(private_key.encode("utf-8"), digestmod=algorithm)

    @property
    def algorithm(self) -> str:
        return self._digest

    def sign(self, message: str) -> str:
        """Return base64 (standard alphabet, padded) of HMAC(key, message)."""
        mac = self._prepared.copy()
        mac.update(message.encode("utf-8"))
        return base64.b64encode(mac.digest()).decode("ascii")

    def __repr__(self) -> str:
        return f"SigningKey(<redacted>, algorithm={self._digest!r})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a SigningKey cannot be pickled: it holds a private key")


def signature(
    method: str,
    url: str,
    params: Mapping[str, str],
    private_key: str,
    *,
    algorithm: str = "sha256",
) -> str:
    """Return the base64 ``asgn`` value for a request (not URL-encoded)."""
    return SigningKey(private_key, algorithm=algorithm).sign(string_to_sign(method, url, params))


def sign_params(
    method: str,
    url: str,
    params: Mapping[str, str],
    *,
    public_key: str,
    key: SigningKey,
    ts: int,
) -> dict[str, str]:
    """Return ``params`` plus fresh ``ak``, ``ts`` and ``asgn``.

    Any ``ak``, ``ts`` or ``asgn`` already in ``params`` (a followed page link
    carries stale ones) is dropped first, so every attempt is signed afresh.
    """
    signed = {name: value for name, value in params.items() if name not in SIGNATURE_PARAMS}
    signed["ak"] = public_key
    signed["ts"] = str(ts)
    signed["asgn"] = key.sign(string_to_sign(method, url, signed))
    return signed
