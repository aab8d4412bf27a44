"""Shared fixtures: the fake Mettl server over loopback, and the aioresponses shim."""

from __future__ import annotations

import json
import os
import socket
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
    """Tests see no METTL_* variable of the shell that runs them (say, after fake-server,
    or METTL_WEBHOOK_BASIC_AUTH), but for the suite's own METTL_TEST_* settings."""
    for name in list(os.environ):
        if name.startswith("METTL_") and not name.startswith("METTL_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _private_rate_cache(
    _no_mettl_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Each test's clients share their learned rates (``_keyshare``) in a directory of
    their own: nothing from the user's cache, nothing left there, nothing between tests."""
    monkeypatch.setenv("METTL_ASYNC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL whose connections are refused: its port is held by a socket that is
    bound and never listens, so no other process can take it while the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


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
    """A client of the fake server, with instant retries and no rate learning."""
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
