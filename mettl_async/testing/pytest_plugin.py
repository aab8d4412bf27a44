"""The pytest plugin of mettl-async: a running fake Mettl as the ``fake_mettl`` fixture.

Installed with the package (the ``pytest11`` entry point), so a test needs no
``conftest.py``::

    import pytest


    @pytest.mark.asyncio  # or asyncio_mode = "auto" in your pytest configuration
    async def test_every_result_arrives(fake_mettl):
        async with fake_mettl.client() as mettl:
            results = [result async for _, result in mettl.iter_all_results()]
        assert len(results) == fake_mettl.fake.account.total_candidates

``fake_mettl`` is a :class:`~mettl_async.testing.FakeMettlServer` listening on
a free loopback port for the test's duration: ``.client()`` (a
:class:`~mettl_async.MettlClient` for it, retrying instantly and never slowing
down to a learned rate), ``.base_url``,
``.public_key``, ``.private_key`` and ``.fake``, the
:class:`~mettl_async.testing.FakeMettl` to inspect or to make misbehave
(``fake_mettl.fake.add_fault("E509")``). Override the ``fake_mettl_options``
fixture in a test module to configure it (``FakeMettl``'s keyword arguments:
``account=FakeAccount([50, 200])``, ``latency=0.01``, ...).

The fixture is asynchronous, so it needs pytest-asyncio (``pip install
pytest-asyncio``), which runs it in the test's own event loop. Without it the
fixture fails with that advice; nothing else in pytest is affected. The
server side is imported only when a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mettl_async.testing import FakeMettlServer

__all__ = ["fake_mettl", "fake_mettl_options"]


@pytest.fixture
def fake_mettl_options() -> dict[str, Any]:
    """Keyword arguments of the :class:`~mettl_async.testing.FakeMettl` behind ``fake_mettl``.

    Empty by default (3 schedules of 10 candidates, no latency, no faults);
    override this fixture in a test module to change them.
    """
    return {}


async def _fake_mettl(fake_mettl_options: dict[str, Any]) -> AsyncIterator[FakeMettlServer]:
    """A fake Mettl running on a free loopback port for the test (see the module)."""
    from mettl_async.testing import FakeMettl, FakeMettlServer

    async with FakeMettlServer(FakeMettl(**fake_mettl_options)) as server:
        yield server


def _needs_pytest_asyncio(fake_mettl_options: dict[str, Any]) -> None:
    """A running fake Mettl; needs pytest-asyncio, which is not installed here."""
    pytest.fail(
        "the fake_mettl fixture is asynchronous and needs pytest-asyncio: "
        "pip install pytest-asyncio",
        pytrace=False,
    )


fake_mettl: Any
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - tested in a subprocess that hides it
    fake_mettl = pytest.fixture(_needs_pytest_asyncio, name="fake_mettl")
else:
    fake_mettl = pytest_asyncio.fixture(_fake_mettl, name="fake_mettl")
