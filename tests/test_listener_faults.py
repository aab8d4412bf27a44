"""`webhooks listen --database` outliving its database: PostgreSQL stopped, started and
restarted under it; the SQLite file moved away and back, or locked by another writer.
While the database is away deliveries answer 503 with Retry-After (never 500), the
outage is logged once and its end once, and GET /healthz tells."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mettl_async.sync import sync_results
from mettl_async.testing import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, FakeMettlServer

from .listener import listening, stop
from .pgserver import cluster, pg_ctl, stopped
from .test_sync import graded_payload, server  # noqa: F401 (fixture)
from .test_sync_postgres_faults import pg_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def env_of(fake_server: FakeMettlServer) -> dict[str, str]:
    return {
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
        "METTL_BASE_URL": fake_server.base_url,
    }


class Deliveries:
    """POSTs of gradedAssessment webhooks (each a new event) and GETs of /healthz."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, key: str, emails: list[str]):
        self.http, self.key, self.emails = http, key, emails
        self.sent = 0
        self.url = base_url.rstrip("/") + "/graded"
        self.health_url = "/".join(base_url.split("/", 3)[:3]) + "/healthz"

    async def deliver(self, n: int = 0) -> tuple[int, dict[str, str]]:
        body = graded_payload(self.key, self.emails[n % len(self.emails)])
        # a new event each time (another candidate_instance_id), not a duplicate
        self.sent += 1
        body = body.replace(b":99999999,", f":{10**8 + self.sent},".encode())
        async with self.http.post(self.url, data=body, timeout=aiohttp.ClientTimeout(60)) as got:
            await got.read()
            return got.status, dict(got.headers)

    async def health(self) -> tuple[int, dict[str, str]]:
        async with self.http.get(self.health_url, timeout=aiohttp.ClientTimeout(60)) as got:
            return got.status, await got.json()

    async def until_ok(self, tries: int = 60) -> None:
        for n in range(tries):
            if (await self.deliver(n))[0] == 200:
                return
            await asyncio.sleep(0.5)
        pytest.fail("no delivery answered 200 once the database was back")


@pytest.fixture
async def listened(
    server: FakeMettlServer,  # noqa: F811
    tmp_path: Path,
    db: str,
) -> AsyncIterator[tuple[Deliveries, asyncio.subprocess.Process]]:
    """A synced database (``db``: PostgreSQL, or the SQLite file of TestSQLite), a
    listener on it, and a session to talk to it."""
    url = db
    async with server.client() as client:
        await sync_results(client, url)
    key = server.fake.account.schedules[0].access_key
    emails = server.fake.mutate.emails(key)
    async with (
        listening(
            tmp_path / "events.jsonl",
            "--database",
            url,
            "--database-timeout",
            "2",
            env=env_of(server),
        ) as (process, base_url, _),
        aiohttp.ClientSession() as http,
    ):
        yield Deliveries(http, base_url, key, emails), process


async def outage_lines(process: asyncio.subprocess.Process, outages: int = 1) -> None:
    """Stop the listener: each outage made one line when it began and one when it ended
    (up to ``outages`` of them), never a traceback."""
    code, err = await stop(process, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    said = [
        "down" if "is unavailable" in line else "back"
        for line in err.splitlines()
        if "is unavailable" in line or "is back after" in line
    ]
    assert 1 <= len(said) // 2 <= outages, err
    assert said == ["down", "back"] * (len(said) // 2), err


@pytest.fixture
def db(pg_url: str) -> str:  # noqa: F811
    return pg_url


async def test_the_listener_outlives_a_postgres_restart(
    listened: tuple[Deliveries, asyncio.subprocess.Process],
) -> None:
    """Stopped: 503 with Retry-After, /healthz 503 with the reason. Started again: 200
    without restarting the listener. Restarted under 12 deliveries at a time: each 200
    or 503, and the last ones 200."""
    hooks, process = listened
    _, data = cluster()
    assert (await hooks.deliver())[0] == 200
    assert (await hooks.health())[0] == 200
    with stopped(data):
        for n in range(3):
            status, headers = await hooks.deliver(n)
            assert status == 503
            assert int(headers["Retry-After"]) > 0
        status, body = await hooks.health()
        assert status == 503
        assert body["status"] == "unavailable"
        assert "cannot connect" in body["reason"] or "lost" in body["reason"]
    await hooks.until_ok()
    assert (await hooks.health())[0] == 200

    answers: list[int] = []

    async def load() -> None:
        n = 0
        while not done.is_set():
            batch = await asyncio.gather(*(hooks.deliver(n + i) for i in range(12)))
            answers.extend(status for status, _ in batch)
            n += 12

    done = asyncio.Event()
    loader = asyncio.create_task(load())
    await asyncio.sleep(0.5)
    await asyncio.to_thread(pg_ctl, data, "-m", "fast", "-w", "restart")
    await asyncio.sleep(1.5)
    done.set()
    await loader
    assert set(answers) <= {200, 503}, answers
    await hooks.until_ok()
    assert [(await hooks.deliver(n))[0] for n in range(5)] == [200] * 5
    await outage_lines(process, outages=2)


class TestSQLite:
    @pytest.fixture
    def db(self, tmp_path: Path) -> str:
        (tmp_path / "data").mkdir()
        return f"sqlite:///{tmp_path / 'data' / 'mettl.db'}"

    async def test_the_listener_outlives_its_file_moved_away(
        self, listened: tuple[Deliveries, asyncio.subprocess.Process], tmp_path: Path
    ) -> None:
        """The database's directory renamed away: 503 and /healthz 503 (no new empty
        file is made); renamed back: 200 again, the file reopened."""
        hooks, process = listened
        assert (await hooks.deliver())[0] == 200
        (tmp_path / "data").rename(tmp_path / "away")
        try:
            status, headers = await hooks.deliver(1)
            assert status == 503
            assert headers["Retry-After"]
            status, body = await hooks.health()
            assert status == 503
            assert "cannot reopen" in body["reason"]
            assert not (tmp_path / "data").exists()
        finally:
            (tmp_path / "away").rename(tmp_path / "data")
        await hooks.until_ok()
        assert (await hooks.health())[0] == 200
        await outage_lines(process)

    async def test_a_lock_held_too_long_answers_503_in_time(
        self, listened: tuple[Deliveries, asyncio.subprocess.Process], tmp_path: Path
    ) -> None:
        """Another writer holds the lock past --database-timeout: 503, not a hang; the
        lock released, 200."""
        import sqlite3

        hooks, process = listened
        other = sqlite3.connect(tmp_path / "data" / "mettl.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            status, _ = await hooks.deliver(1)
            assert status == 503
            assert (await hooks.health())[0] == 503  # reads work, but writes do not
        finally:
            other.execute("ROLLBACK")
            other.close()
        await hooks.until_ok()
        assert (await hooks.health())[0] == 200
        await outage_lines(process)
