"""Processes sharing one key: several ``mettl-async export`` against one throttling fake.

    python -m benchmarks --only sharedkey [--quick]

A service, a nightly export and a webhook listener may use one API key: Mettl's
one limit. The fake Mettl runs in its own process (50 ms latency, a token bucket
of 20 requests/s, burst 10, refusals half E509, half HTTP 429); the exports
are ``python -m mettl_async export`` processes with the same key, each to its
own JSONL file, checked against the fake's ground truth. Each configuration
runs with the shared rate file (the default: the clients of a key on one
machine tell each other their rates, ``_keyshare``) and without it
(``METTL_ASYNC_SHARE_RATE=0``: independent limiters), in a cache directory of
its own. (1) Three exports of the whole account started together; (2) a short
export (a fifth of the schedules) started while a whole-account export runs;
(3) a short export started after another one ended (the key's limit learned).
The ideal time (for exports started together) is every accepted request at
the limit's rate, the actual time from the first start to the last end,
process start-up included; refused requests are the exports' retries (no
other fault is injected). A second table runs
the same on a virtual clock (``benchmarks/virtual.py``), three jitter seeds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

from mettl_async.testing.data import FakeAccount
from mettl_async.testing.state import FakeRateLimit

from ._harness import Server, fake_server, table
from .virtual import Run, simulate

LATENCY_MS = 50.0
RATE, BURST = 20, 10
SUMMARY = re.compile(r"exported ([\d,]+) records .*\(([\d,]+) requests, ([\d,]+) retries")


@attrs.frozen
class Export:
    """One ``mettl-async export`` process: what it was asked, when it ran, what it did."""

    keys: tuple[str, ...]  # access keys (empty: --all)
    start: float  # seconds after the first process started
    started: float = 0.0
    ended: float = 0.0
    records: int = 0
    requests: int = 0
    refused: int = 0
    exact: bool = False

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _truth(schedules: int, candidates: int, keys: tuple[str, ...]) -> int:
    account = FakeAccount(schedules, candidates, seed=0)
    return sum(len(s.order()) for s in account.schedules if not keys or s.access_key in set(keys))


def _launch(
    server: Server, job: Export, output: Path, env: dict[str, str]
) -> subprocess.Popen[str]:
    selection = ["--all"] if not job.keys else [a for k in job.keys for a in ("--access-key", k)]
    return subprocess.Popen(
        [sys.executable, "-m", "mettl_async", "export", *selection, "--output", str(output)],
        env={
            **os.environ,
            **env,
            "METTL_BASE_URL": server.base_url,
            "METTL_PUBLIC_KEY": server.public_key,
            "METTL_PRIVATE_KEY": server.private_key,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(
    jobs: list[Export], schedules: int, candidates: int, *, shared: bool, directory: Path
) -> list[Export]:
    """Run ``jobs`` (each at its ``start``) against one fake; what each did."""
    with (
        tempfile.TemporaryDirectory(prefix="mettl-bench-cache-") as cache,
        fake_server(
            "--schedules", str(schedules), "--candidates", str(candidates),
            "--latency-ms", str(LATENCY_MS), "--rate", str(RATE), "--burst", str(BURST),
        ) as server,
    ):  # fmt: skip
        env = {"METTL_ASYNC_CACHE_DIR": cache, "METTL_ASYNC_SHARE_RATE": "1" if shared else "0"}
        t0 = time.perf_counter()
        pending = sorted(enumerate(jobs), key=lambda item: item[1].start)
        running: dict[int, tuple[subprocess.Popen[str], float]] = {}
        done: dict[int, Export] = {}
        while pending or running:
            now = time.perf_counter() - t0
            while pending and pending[0][1].start <= now:
                index, job = pending.pop(0)
                output = directory / f"export-{index}.jsonl"
                output.unlink(missing_ok=True)
                running[index] = (_launch(server, job, output, env), now)
            for index, (process, began) in list(running.items()):
                if process.poll() is None:
                    continue
                ended = time.perf_counter() - t0
                text = process.stdout.read() if process.stdout is not None else ""
                if process.stdout is not None:
                    process.stdout.close()
                match = SUMMARY.search(text)
                if process.returncode != 0 or match is None:
                    raise RuntimeError(f"export {index} failed: {text[-800:]}")
                records, requests, retries = (int(g.replace(",", "")) for g in match.groups())
                job = jobs[index]
                output = directory / f"export-{index}.jsonl"
                with output.open("rb") as stream:
                    lines = sum(1 for _ in stream)
                exact = lines == records == _truth(schedules, candidates, job.keys)
                done[index] = attrs.evolve(
                    job, started=began, ended=ended, records=records,
                    requests=requests, refused=retries, exact=exact,
                )  # fmt: skip
                del running[index]
            time.sleep(0.02)
    return [done[index] for index in range(len(jobs))]


def _row(name: str, shared: bool, runs: list[Export]) -> list[object]:
    useful = sum(r.requests - r.refused for r in runs)
    requests = sum(r.requests for r in runs)
    refused = sum(r.refused for r in runs)
    wall = max(r.ended for r in runs) - min(r.started for r in runs)
    return [
        name,
        "shared file" if shared else "independent",
        " / ".join(f"{r.records:,}" + ("" if r.exact else " WRONG") for r in runs),
        " / ".join(f"{r.seconds:.1f}" for r in runs),
        f"{refused}/{requests} ({refused / requests:.1%})",
        " / ".join(f"{r.refused}" for r in runs),
        useful / RATE / wall if len({r.start for r in runs}) == 1 else "-",
    ]


def _configurations(quick: bool) -> tuple[int, int, list[tuple[str, list[Export]]]]:
    schedules, candidates = (6, 300) if quick else (40, 500)
    account = FakeAccount(schedules, candidates, seed=0)
    short = tuple(s.access_key for s in account.schedules[: max(1, schedules // 5)])
    together = [Export((), 0.0) for _ in range(2 if quick else 3)]
    configurations = [(f"{len(together)} whole-account exports at once", together)]
    if not quick:
        configurations += [
            ("a short export joins a running one", [Export((), 0.0), Export(short, 5.0)]),
            ("a short export after another ended", [Export((), 0.0), Export(short, 14.0)]),
        ]
    return schedules, candidates, configurations


def _simulated(quick: bool) -> str:
    limit = lambda: FakeRateLimit(rate=RATE, burst=BURST)  # noqa: E731
    rows = []
    cases: list[tuple[str, list[int], list[float] | None]] = [
        ("3 exports at once", [201, 201, 201], None),
        ("a newcomer at 6 s and another at 9 s", [201, 201, 201], [0.0, 6.0, 9.0]),
        ("a short export after another ended", [201, 41], [0.0, 14.0]),
    ]
    for name, sizes, starts in cases[:1] if quick else cases:
        for shared in (False, True):
            results: list[list[Run]] = [
                simulate(limit, sizes, starts=starts, shared=shared, seed=seed)
                for seed in range(1 if quick else 3)
            ]
            efficiency = min(
                sum(r.useful for r in runs)
                / RATE
                / (max(r.finished for r in runs) - min(r.started for r in runs))
                for runs in results
            )
            refused = max(
                sum(r.refused for r in runs) / sum(r.requests for r in runs) for runs in results
            )
            spread = max(
                max(r.seconds for r in runs) / min(r.seconds for r in runs) for runs in results
            )
            bursts = max(sum(r.first_burst for r in runs[1:]) for runs in results)
            rows.append(
                [
                    name,
                    "shared board" if shared else "independent",
                    f"{refused:.1%}",
                    bursts if starts else "-",
                    efficiency if not starts else "-",
                    spread if not starts else "-",
                ]
            )
    headers = [
        "configuration", "rates", "refused (worst)", "first bursts of the later ones",
        "ideal / actual (worst)", "slowest / fastest",
    ]  # fmt: skip
    title = (
        f"### The same on a virtual clock ({RATE}/s burst {BURST}, 40 x 500 each = 201 requests, "
        f"{LATENCY_MS:g} ms; worst of {1 if quick else 3} seeds)"
    )
    return f"{title}\n\n{table(headers, rows)}\n"


def sharedkey_section(*, quick: bool) -> str:
    schedules, candidates, configurations = _configurations(quick)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mettl-bench-") as tmp:
        for name, jobs in configurations:
            for shared in (True, False):
                runs = _run(jobs, schedules, candidates, shared=shared, directory=Path(tmp))
                rows.append(_row(name, shared, runs))
    headers = [
        "configuration", "rates", "records each", "seconds each", "refused in all",
        "refused each", "ideal / actual (together)",
    ]  # fmt: skip
    title = (
        f"### Processes sharing one key: `mettl-async export` processes against {RATE}/s burst "
        f"{BURST}, {schedules} schedules x {candidates} candidates, {LATENCY_MS:g} ms "
        f"(load average {os.getloadavg()[0]:.2f} at the end)"
    )
    return "\n".join([title, "", table(headers, rows), "", _simulated(quick)])
