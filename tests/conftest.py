"""Shared fixtures: the fake Mettl server over loopback, and the aioresponses shim."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.client_reqrep import ClientResponse

from mettl_async import MettlClient
from mettl_async.testing import FakeMettl, FakeMettlServer

HERE = Path(__file__).parent


def load_json(relative: str) -> Any:
    return json.loads((HERE / relative).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _no_mettl_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no METTL_* variable of the shell that runs them (say, after fake-server)."""
    for name in ("METTL_PUBLIC_KEY", "METTL_PRIVATE_KEY", "METTL_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def server() -> AsyncIterator[FakeMettlServer]:
    """A fake Mettl on a free loopback port."""
    async with FakeMettlServer() as running:
        yield running


@pytest.fixture
def fake(server: FakeMettlServer) -> FakeMettl:
    return server.fake


@pytest.fixture
async def client(server: FakeMettlServer) -> AsyncIterator[MettlClient]:
    """A client of the fake server, with instant retries."""
    async with server.client() as mettl:
        yield mettl


class _NullStreamWriter:
    """What aiohttp 3.14's ClientResponse wants from a writer, for a mocked answer."""

    output_size = 0


class _ShimResponse(ClientResponse):
    # aioresponses 0.7.9 builds ClientResponse without the stream_writer argument
    # aiohttp 3.14 added; supply a stand-in so its mocked answers can be built.
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NullStreamWriter())
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked() -> Iterator[Any]:
    """aioresponses, patched to build responses aiohttp 3.14 accepts."""
    import aioresponses.core as core

    original = core.ClientResponse
    core.ClientResponse = _ShimResponse  # type: ignore[misc]
    try:
        with core.aioresponses() as mock:
            yield mock
    finally:
        core.ClientResponse = original  # type: ignore[misc]
