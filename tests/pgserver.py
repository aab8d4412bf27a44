"""The test PostgreSQL of ``.ci/postgres.sh`` (``METTL_TEST_POSTGRES_DIR``), frozen, stopped
and started again by the tests of a server's faults."""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

URL_ENV = "METTL_TEST_POSTGRES_URL"
DIR_ENV = "METTL_TEST_POSTGRES_DIR"
#: The cluster's owner when the tests run as root (as in .ci/postgres.sh).
OWNER = "mettlpg"


def cluster() -> tuple[str, Path]:
    """The test server's URL and data directory, or skip the test."""
    url, directory = os.environ.get(URL_ENV), os.environ.get(DIR_ENV)
    if not url or not directory:
        pytest.skip(f'{URL_ENV} and {DIR_ENV} are not set (eval "$(.ci/postgres.sh start)")')
    return url, Path(directory) / "data"


def pg_ctl(data: Path, *args: str) -> None:
    """``pg_ctl -D data ARGS`` as the cluster's owner (the server's log to its file, so
    that it keeps no pipe of ours open)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    log = ["-l", str(data.parent / "server.log")]
    command = [found[-1] if found else "pg_ctl", "-D", str(data), *log, *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", OWNER, "--", *command]
    subprocess.run(command, check=True, cwd="/", capture_output=True, timeout=120)


def server_pids(data: Path) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rpartition(")")[2].split()
            if int(fields[1]) == postmaster:
                pids.append(int(stat.split("/")[2]))
    return pids


@contextlib.contextmanager
def frozen(data: Path) -> Iterator[None]:
    """Every process of the server stopped (SIGSTOP) for the block, continued after."""
    pids = server_pids(data)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def stopped(data: Path) -> Iterator[None]:
    """The server stopped for the block (fast shutdown), started again after, with the
    options it ran with (its port among them)."""
    words = shlex.split((data / "postmaster.opts").read_text())[1:]
    options = [w for i, w in enumerate(words) if w != "-D" and (i == 0 or words[i - 1] != "-D")]
    pg_ctl(data, "-m", "fast", "-w", "stop")
    try:
        yield
    finally:
        pg_ctl(data, "-w", "-t", "60", "-o", shlex.join(options), "start")
