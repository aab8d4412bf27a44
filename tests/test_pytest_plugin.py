"""The pytest plugin: a user's test gets a running fake Mettl with no conftest of its own."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from mettl_async.testing import FakeMettlServer
from mettl_async.testing.data import FakeAccount

USER_TESTS = """\
import pytest

from mettl_async.testing.data import FakeAccount


@pytest.mark.asyncio
async def test_every_result_arrives(fake_mettl):
    fake_mettl.fake.add_fault("E509")  # the first request is rate limited, then retried
    async with fake_mettl.client() as mettl:
        results = [result async for _, result in mettl.iter_all_results()]
    assert len(results) == fake_mettl.fake.account.total_candidates == 30
    assert fake_mettl.fake.bad_signatures == 0
    assert fake_mettl.base_url.startswith("http://127.0.0.1:")
    assert fake_mettl.public_key and fake_mettl.private_key


class TestWithMyAccount:
    @pytest.fixture
    def fake_mettl_options(self):
        return {"account": FakeAccount([7, 0, 120], seed=1)}

    @pytest.mark.asyncio
    async def test_my_account(self, fake_mettl):
        async with fake_mettl.client() as mettl:
            schedules = [s async for s in mettl.iter_schedules()]
        assert len(schedules) == 3
"""


def test_the_plugin_is_registered_with_pytest() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("mettl_async") == "mettl_async.testing.pytest_plugin"


@pytest.mark.slow
def test_a_user_test_needs_no_conftest(tmp_path: Path) -> None:
    """Plain ``python -m pytest`` in a directory holding one test file and nothing else."""
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    left = sorted(path.name for path in tmp_path.iterdir() if path.name != "__pycache__")
    assert left == ["test_user.py"]  # the fake wrote nothing beside the test


async def test_the_fixture_in_this_suite_too(fake_mettl: FakeMettlServer) -> None:
    async with fake_mettl.client() as mettl:
        account = await mettl.get_account()
    assert account is not None
    assert fake_mettl.fake.requests == 1


@pytest.fixture
def fake_mettl_options() -> dict[str, object]:
    return {"account": FakeAccount([3], seed=2), "latency": 0.0}


async def test_options_shape_the_fake(fake_mettl: FakeMettlServer) -> None:
    async with fake_mettl.client() as mettl:
        results = await mettl.iter_all_results().raw().__aiter__().__anext__()
    assert results[0]["accessKey"] == fake_mettl.fake.account.schedules[0].access_key
    assert fake_mettl.fake.account.total_candidates == 3


@pytest.mark.slow
def test_without_pytest_asyncio_the_fixture_says_what_is_missing(tmp_path: Path) -> None:
    """The plugin loads in any pytest; only a test asking for the fixture is told to install."""
    (tmp_path / "test_user.py").write_text(
        "def test_sync_tests_still_run():\n    assert True\n\n\n"
        "def test_asks_for_the_fixture(fake_mettl):\n    pass\n"
    )
    # As if pytest-asyncio were not installed: importing it fails, its plugin is not loaded.
    (tmp_path / "without_asyncio.py").write_text(
        "import sys\n"
        "import pytest\n\n\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pytest_asyncio':\n"
        "            raise ImportError(name)\n\n\n"
        "sys.meta_path.insert(0, Hide())\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:asyncio', "
        "'--assert=plain', 'test_user.py']))\n"  # (the rewriting importer would find it)
    )
    result = subprocess.run(
        [sys.executable, "without_asyncio.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "1 passed" in output, output
    assert "1 failed" in output or "1 error" in output, output
    assert "pip install pytest-asyncio" in output, output
