"""``mettl-async webhooks listen`` as a real process, for the tests that talk to it."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path


@asynccontextmanager
async def listening(
    output: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 60
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, str]]:
    """``python -m mettl_async webhooks listen --port 0``; yields the process, URL and banner.

    The banner must come within ``timeout`` seconds; a process still running at the
    end is killed.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mettl_async",
        "webhooks",
        "listen",
        "--port",
        "0",
        "--output",
        str(output),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        banner = ""
        async with asyncio.timeout(timeout):
            while "Press Ctrl+C" not in banner:
                line = await process.stdout.readline()
                assert line, "the listener exited before announcing itself"
                banner += line.decode()
        match = re.search(r"on (http://\S+) ", banner)
        assert match is not None, banner
        yield process, match.group(1), banner
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop(process: asyncio.subprocess.Process, sig: int) -> tuple[int, str]:
    """Send ``sig`` and wait (60 s at most) for the exit; the exit code and the stderr."""
    process.send_signal(sig)
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()
