"""What every ``MettlClient`` has besides its endpoints: its lifecycle (an async
context manager, ``close``), its properties, and the low-level ``request``."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from ._config import ClientConfig, check_seconds, shown_key
from ._errors import ConfigurationError
from ._protocol import FilePart, Placement, Request, endpoint_url
from ._session import ClientStats, Transport

__all__ = ["ClientBase"]


class ClientBase:
    """The base of :class:`~mettl_async.MettlClient`: a configuration and a transport."""

    _config: ClientConfig
    _transport: Transport

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the owned session (a borrowed one is left open). Idempotent."""
        await self._transport.close()

    def __repr__(self) -> str:
        config = self._config
        return (
            f"MettlClient(public_key={shown_key(config.public_key)!r}, "
            f"base_url={config.base_url!r}, api_version={config.api_version!r})"
        )

    # -- properties ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def api_version(self) -> str:
        return self._config.api_version

    @property
    def max_in_flight(self) -> int:
        return self._config.max_in_flight

    @property
    def stats(self) -> ClientStats:
        """Requests sent, retries, failures and in-flight counts of this client."""
        return self._transport.stats

    # -- raw access ----------------------------------------------------------------

    def url(self, path: str) -> str:
        """The full URL (as signed) of an API path such as ``/schedules``."""
        if path.startswith(("http://", "https://")):
            return path
        if not path.startswith("/"):
            path = "/" + path
        return endpoint_url(self._config.base_url, self._config.api_version, path)

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        placement: Placement | None = None,
        files: tuple[FilePart, ...] = (),
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one signed request and return Mettl's JSON envelope.

        The low-level escape hatch under every endpoint method. ``path`` is
        relative to the API version (``/account``) with path segments already
        encoded (see :func:`mettl_async.path_segment`), or an absolute URL.
        ``params`` are raw string values, signed and URL-encoded once. Raises a
        :class:`~mettl_async.MettlError` subclass for every failure.
        """
        method = method.upper()
        if method not in ("GET", "POST", "DELETE"):
            raise ConfigurationError(f"Mettl uses GET, POST and DELETE, not {method!r}")
        if timeout is not None:
            check_seconds("timeout", timeout)
        request = Request(
            method=method,
            url=self.url(path),
            params=dict(params or {}),
            placement=placement,
            files=files,
            timeout=timeout,
        )
        return await self._transport.call(request)
