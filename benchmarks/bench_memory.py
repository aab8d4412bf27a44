"""Memory: peak RSS of a JSONL export of 100,000 and 1,000,000 records.

    python -m benchmarks.bench_memory [--quick]

The export runs as ``mettl-async export`` in its own process, against the
fake Mettl in another; its peak resident set size is read from the kernel's
accounting of that process alone (``os.wait4``). A flat curve means records
stream from the API to the file: RSS(1M) / RSS(100k) near 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._harness import Server, fake_server, machine, table

_PEAK_REPORTER = """
import atexit, runpy, sys

def _report():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                sys.stderr.write("PEAK_RSS_KB " + line.split()[1] + "\\n")

atexit.register(_report)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _child_rss_mb(module_and_args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit status) of ``python -m MODULE ARGS`` in a child.

    The child reports its own ``VmHWM`` (the peak of its address space) as it
    exits: the kernel's per-process ``ru_maxrss`` would include the peak of the
    process that spawned it, this benchmark's own.
    """
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_REPORTER, *module_and_args],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    peaks = [
        line.split()[1] for line in result.stderr.splitlines() if line.startswith("PEAK_RSS_KB ")
    ]
    if not peaks:
        raise RuntimeError(f"no peak RSS reported: {result.stderr[-500:]}")
    return seconds, int(peaks[-1]) / 1024.0, result.returncode


def export_rss(server: Server, records: int, directory: Path) -> tuple[float, float, int]:
    output = directory / f"export-{records}.jsonl"
    env = {
        "METTL_BASE_URL": server.base_url,
        "METTL_PUBLIC_KEY": server.public_key,
        "METTL_PRIVATE_KEY": server.private_key,
    }
    seconds, rss, status = _child_rss_mb(
        ["mettl_async", "export", "--all", "--output", str(output), "--quiet", "--overwrite"], env
    )
    if status != 0:
        raise RuntimeError(f"export of {records} records failed with exit code {status}")
    with output.open("rb") as stream:
        lines = sum(1 for _ in stream)
    output.unlink()
    if lines != records:
        raise RuntimeError(f"exported {lines} lines, expected {records}")
    return seconds, rss, lines


def memory_section(*, quick: bool) -> str:
    sizes = [(20, 100), (200, 100)] if quick else [(100, 1000), (1000, 1000)]
    _, baseline_rss, _ = _child_rss_mb(["mettl_async", "--version"], {})
    rows = []
    rss_by_size = []
    with tempfile.TemporaryDirectory(prefix="mettl-bench-") as tmp:
        for schedules, candidates in sizes:
            records = schedules * candidates
            with fake_server(
                "--schedules", str(schedules), "--candidates", str(candidates), "--no-warm"
            ) as server:
                seconds, rss, lines = export_rss(server, records, Path(tmp))
            rss_by_size.append(rss)
            rows.append(
                [f"{records:,}", f"{schedules} x {candidates}", seconds, lines / seconds, rss]
            )
    ratio = rss_by_size[-1] / rss_by_size[0]
    title = (
        "### Memory: peak RSS of `mettl-async export --all` to JSONL (its own process; "
        f"`mettl-async --version` alone: {baseline_rss:.1f} MB)"
    )
    headers = ["records", "schedules x candidates", "seconds", "records/s", "peak RSS MB"]
    return (
        f"{title}\n\n{table(headers, rows)}\n\nRSS({rows[-1][0]}) / RSS({rows[0][0]}) = "
        f"{ratio:.2f}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(memory_section(quick=args.quick))


if __name__ == "__main__":
    main()
