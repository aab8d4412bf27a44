"""`mettl-async sync` against a real PostgreSQL that misbehaves: frozen (SIGSTOP), its
connection killed mid-run. Needs the server of ``.ci/postgres.sh`` (skipped without it)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from mettl_async.sync.postgres import SYNC_LOCK
from mettl_async.testing import (
    DEMO_PRIVATE_KEY,
    DEMO_PUBLIC_KEY,
    FakeAccount,
    FakeMettl,
    FakeMettlServer,
)

from .pgserver import cluster, frozen
from .test_sync import assert_mirrors, committed_one, runs, stored, sync_once_unlocked

pytestmark = pytest.mark.slow


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh schema of the test server."""
    base, _ = cluster()
    import asyncpg  # type: ignore[import-untyped]

    schema = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}search_path={schema}"
    conn = await asyncpg.connect(base)  # a new one: the test may have restarted the server
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def slow_server() -> AsyncIterator[FakeMettlServer]:
    """20 schedules served slowly: a sync one page at a time takes a few seconds."""
    fake = FakeMettl(account=FakeAccount(20, 40, seed=11))
    fake.latency = 0.05
    async with FakeMettlServer(fake) as running:
        yield running


@asynccontextmanager
async def sync_committed_one(server: FakeMettlServer, url: str, *extra: str) -> AsyncIterator[Any]:
    """`mettl-async sync` as a process, once it has committed a schedule (killed at the end
    if still running)."""
    env = {
        **os.environ,
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
        "METTL_BASE_URL": server.base_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mettl_async", "sync", "--database", url, "--concurrency", "1",
        "--quiet", *extra, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await committed_one(url, lambda: process.returncode is not None)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def finish(process: Any, seconds: float = 60) -> tuple[int, str]:
    async with asyncio.timeout(seconds):
        _, err = await process.communicate()
    return int(process.returncode), err.decode()


def failure_line(code: int, err: str, expected: int) -> str:
    """The one line a failed sync printed (its exit code checked)."""
    assert code == expected, err
    line = err.strip()
    assert "\n" not in line, line
    return line


async def assert_a_rerun_converges(server: FakeMettlServer, url: str) -> None:
    async with server.client() as client:
        summary = await sync_once_unlocked(client, url)
    assert summary.complete
    assert_mirrors(await stored(url), server.fake)


async def test_a_frozen_server_fails_the_sync_naming_it_and_the_timeout(
    slow_server: FakeMettlServer, pg_url: str
) -> None:
    """The server stops answering mid-run: the sync fails after --database-timeout with
    one line naming the database (password hidden) and the timeout, exit code 6."""
    _, data = cluster()
    async with sync_committed_one(slow_server, pg_url, "--database-timeout", "2") as process:
        with frozen(data):
            line = failure_line(*await finish(process), expected=6)
    # the call stuck, or one waiting its turn behind it (the writer process reads one
    # schedule while it commits another): either names the database and the 2 s
    assert re.search(r"(did not answer within|was busy with another call for more than) 2 s", line)
    assert ":***@127.0.0.1" in line
    assert pg_url.split("@")[0].rpartition(":")[2] not in line  # the password
    await assert_a_rerun_converges(slow_server, pg_url)


async def test_the_first_ctrl_c_ends_a_sync_stuck_on_a_frozen_server(
    slow_server: FakeMettlServer, pg_url: str
) -> None:
    """Ctrl+C while the server is frozen (a long timeout): the run ends with the usual
    message and 130, without a second Ctrl+C and without waiting for the server."""
    _, data = cluster()
    async with sync_committed_one(slow_server, pg_url, "--database-timeout", "600") as process:
        with frozen(data):
            await asyncio.sleep(1)  # the sync's next call is sent, and waits
            process.send_signal(signal.SIGINT)
            code, err = await finish(process, 45)  # not the 600 s of the timeout
    assert code == 130, err
    assert "mettl-async: interrupted after" in err
    assert "Traceback" not in err


async def test_a_connection_killed_mid_run_is_named_and_the_run_closed(
    slow_server: FakeMettlServer, pg_url: str
) -> None:
    """pg_terminate_backend of the sync's connection: one line "lost the connection",
    exit 6, the run's row closed with the error; a rerun ends equal."""
    import asyncpg

    async with sync_committed_one(slow_server, pg_url) as process:
        admin = await asyncpg.connect(pg_url.split("?")[0])
        try:
            killed = await admin.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = $1 AND objid = $2 AND objsubid = 1",
                SYNC_LOCK >> 32,
                SYNC_LOCK & 0xFFFFFFFF,
            )
        finally:
            await admin.close()
        assert killed
        line = failure_line(*await finish(process), expected=6)
    assert "lost the connection to postgresql://mettl:***@" in line
    assert "InterfaceError" not in line.partition("):")[0]
    last = (await runs(pg_url))[-1]
    assert last[7] is not None  # finished, with its error
    assert "lost the connection" in last[8]
    await assert_a_rerun_converges(slow_server, pg_url)
