"""Every command ends quietly when the reader of its output leaves (``| head -1``).

The reader here has closed its end of the pipe before the command starts, so the
command's first write to stdout fails with EPIPE, every time: the worst case of
``mettl-async account show | head -1``, which used to print
``error: BrokenPipeError`` (or Python's "Exception ignored" at exit) and exit 1.
The command must print nothing about it and exit 0 (pipefail-friendly, as
``export -o -`` always did).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount


@pytest.fixture
async def served() -> FakeMettlServer:
    async with FakeMettlServer(FakeMettl(account=FakeAccount([12, 5], seed=3))) as running:
        yield running  # type: ignore[misc]


def first_candidate(fake: FakeMettl) -> tuple[str, str]:
    schedule = fake.account.schedules[0]
    record = next(iter(fake.account.candidates(schedule)))
    return schedule.access_key, record["email"]


async def run_into_a_closed_pipe(
    argv: list[str], server: FakeMettlServer, cwd: Path
) -> tuple[int, str]:
    """``python -m mettl_async ARGV`` with stdout a pipe whose reader has already left."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {
        **os.environ,
        "METTL_PUBLIC_KEY": server.public_key,
        "METTL_PRIVATE_KEY": server.private_key,
        "METTL_BASE_URL": server.base_url,
    }
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mettl_async",
            *argv,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
    finally:
        os.close(write_end)
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.mark.parametrize(
    "argv",
    [
        ["account", "show"],
        ["account", "show", "--json"],
        ["assessments", "list"],
        ["schedules", "list"],
        ["schedules", "list", "--format", "jsonl"],
    ],
    ids=" ".join,
)
async def test_a_listing_ends_quietly_when_its_reader_left(
    argv: list[str], served: FakeMettlServer, tmp_path: Path
) -> None:
    for _ in range(3):
        code, err = await run_into_a_closed_pipe(argv, served, tmp_path)
        assert "BrokenPipe" not in err
        assert "Traceback" not in err
        assert "Exception ignored" not in err
        assert code == 0, err


async def test_every_other_command_ends_quietly_when_its_reader_left(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    key, email = first_candidate(served.fake)
    csv = tmp_path / "new.csv"
    csv.write_text("Email Address,First Name,Last Name\nnew.person@example.com,New,Person\n")
    commands = [
        ["result", "show", "--access-key", key, "--email", email],
        ["result", "show", "--access-key", key, "--email", email, "--json"],
        ["export", "--all", "--output", "-", "--quiet"],
        ["export", "--access-key", key, "--output", "-"],
        ["candidates", "register", "--access-key", key, "--csv", str(csv)],
        ["demo", "--schedules", "2", "--candidates", "5", "--latency-ms", "0", "-q"],
        ["--version"],
        ["--help"],
        ["export", "--help"],
    ]
    for argv in commands:
        code, err = await run_into_a_closed_pipe(argv, served, tmp_path)
        assert "BrokenPipe" not in err, argv
        assert "Traceback" not in err, argv
        assert "Exception ignored" not in err, argv
        assert code == 0, (argv, err)
