"""Shared benchmark plumbing: the fake server in its own process, timing, tables."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from typing import Any

import attrs

from mettl_async import MettlClient, RetryPolicy


@attrs.frozen
class Server:
    base_url: str
    public_key: str
    private_key: str

    def client(self, max_in_flight: int, **options: Any) -> MettlClient:
        """A client of this server that retries without waiting (no sleep inside a measure)."""
        return MettlClient(
            self.public_key,
            self.private_key,
            base_url=self.base_url,
            max_in_flight=max_in_flight,
            retry=RetryPolicy(instant=True, learn_rate=False),
            **options,
        )


@contextlib.contextmanager
def fake_server(*args: str) -> Iterator[Server]:
    """Run ``python -m mettl_async.testing --warm ARGS`` in a child process.

    ``--no-warm`` among ARGS serves records as they are first asked for (for
    accounts too big to generate up front).

    A separate process, so that the client's CPU (``getrusage``) is the
    client's alone and the two share the machine's cores as a client and a
    remote server would not: the figures are conservative.
    """
    warm = [] if "--no-warm" in args else ["--warm"]
    args = tuple(a for a in args if a != "--no-warm")
    process = subprocess.Popen(
        [sys.executable, "-m", "mettl_async.testing", *warm, *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        _, base_url, public, private = line.split()
        yield Server(base_url, public, private)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
        if process.stdout is not None:
            process.stdout.close()


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MB (Linux reports kilobytes)."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpus = os.cpu_count()
    return (
        f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, "
        f"aiohttp {version('aiohttp')}, cattrs {version('cattrs')}, attrs {version('attrs')}, "
        f"orjson {version('orjson')}, msgspec {version('msgspec')}, {time.strftime('%Y-%m-%d')}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, numbers formatted for reading."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value >= 100:
                return f"{value:,.0f}"
            if value >= 10:
                return f"{value:.1f}"
            return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join(lines)


def against(value: float, target: float, *, at_most: bool, unit: str = "") -> str:
    """``"target <= 2x: met"`` or ``"target >= 0.8: MISSED"``: a figure judged where printed."""
    met = value <= target if at_most else value >= target
    return f"target {'<=' if at_most else '>='} {target:g}{unit}: {'met' if met else 'MISSED'}"
