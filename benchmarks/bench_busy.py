"""A busy account: ``export --all`` while candidates arrive or are deleted, pages late.

    python -m benchmarks --only busy [--quick]

The acceptance shape of issue 23: 6 schedules x 700 candidates, page size 100,
candidates arriving before every 3rd or 8th listing request, or one deleted
before every 4th, a fifth of the listing pages answered 250 ms late (each read
from the account after the wait), with and without ``totalRecords``; beside it
the same account not changing. ``mettl-async export --all`` runs in its own
process, as users run it; the fake Mettl runs in this one, which knows what
existed throughout. Each row: the listing requests the export made against the
requests that following the links through the final listings needs (target:
at most 2x), and whether the file holds every candidate that existed
throughout exactly once and nothing else. Repeated with different seeds (the
order in which pages are answered differs run to run); the worst ratio counts.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import attrs
import orjson

from mettl_async.testing import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

from ._harness import against, median, table

__all__ = ["busy_section"]

CHURN: dict[str, dict[str, int]] = {
    "no change": {},
    "arrival every 3rd": {"arrival_every": 3},
    "arrival every 8th": {"arrival_every": 8},
    "deletion every 4th": {"deletion_every": 4},
}


@attrs.frozen
class Run:
    requests: int
    sequential: int
    seconds: float
    exit_code: int
    lost: int
    twice: int
    unknown: int
    changes: int
    late: int

    @property
    def ratio(self) -> float:
        return self.requests / self.sequential


def sequential_requests(fake: FakeMettl, *, total_records: bool) -> int:
    """Listing requests that following the links through the final listings needs."""
    requests = len(fake.account.schedules) // 100 + 1  # article 11: a short page ends
    for schedule in fake.account.schedules:
        size = schedule.candidate_count
        requests += max(1, -(-size // 100)) if total_records else size // 100 + 1
    return requests


async def _export(
    sizes: list[int], churn: dict[str, int], *, total_records: bool, latency: float, late: float,
    seed: int,
) -> Run:  # fmt: skip
    fake = FakeMettl(
        account=FakeAccount(sizes, seed=seed),
        total_records=total_records,
        latency=latency,
        late_share=0.2 if churn else 0.0,
        late_delay=late,
        seed=seed,
        record=0,
        **churn,  # type: ignore[arg-type]
    )
    at_start = {s.access_key: set(fake.mutate.emails(s.access_key)) for s in fake.account.schedules}
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "all.jsonl"
        async with FakeMettlServer(fake) as server:
            env = {
                **os.environ,
                "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
                "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
                "METTL_BASE_URL": server.base_url,
            }
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mettl_async", "export", "--all", "--format", "jsonl",
                "--output", str(output), "--quiet", env=env,
            )  # fmt: skip
            exit_code = await process.wait()
            seconds = time.perf_counter() - started
        got: dict[str, list[str]] = {}
        if output.exists():
            for line in output.read_bytes().splitlines():
                record = orjson.loads(line)
                got.setdefault(record["accessKey"], []).append(record["email"])
    lost = twice = unknown = 0
    for schedule in fake.account.schedules:
        key, account = schedule.access_key, fake.account
        emails = got.get(key, [])
        ever = at_start[key] | {account.email(schedule, j) for j in schedule.arrivals}
        throughout = at_start[key] - {account.email(schedule, j) for j in schedule.deleted}
        lost += len(throughout - set(emails))
        twice += len(emails) - len(set(emails))
        unknown += len(set(emails) - ever)
    return Run(
        requests=sum(fake.listing_requests.values()),
        sequential=sequential_requests(fake, total_records=total_records),
        seconds=seconds,
        exit_code=exit_code,
        lost=lost,
        twice=twice,
        unknown=unknown,
        changes=fake.arrivals + fake.deletions,
        late=fake.late_pages,
    )


def busy_section(*, quick: bool) -> str:
    schedules, candidates = (2, 250) if quick else (6, 700)
    latency_ms, late_ms = (5.0, 40.0) if quick else (50.0, 250.0)
    seeds = [1] if quick else [1, 2, 3]
    rows = []
    verdicts = []
    for total_records in (True, False):
        for name, churn in CHURN.items():
            runs = [
                asyncio.run(
                    _export(
                        [candidates] * schedules, churn, total_records=total_records,
                        latency=latency_ms / 1000, late=late_ms / 1000, seed=seed,
                    )
                )
                for seed in seeds
            ]  # fmt: skip
            worst = max(runs, key=lambda run: run.ratio)
            complete = all(r.exit_code == 0 and not (r.lost or r.twice or r.unknown) for r in runs)
            rows.append(
                [
                    name, "yes" if total_records else "no", worst.requests, worst.sequential,
                    worst.ratio, median([r.ratio for r in runs]),
                    median([r.seconds for r in runs]), sum(r.changes for r in runs),
                    sum(r.late for r in runs), sum(r.lost for r in runs),
                    sum(r.twice for r in runs), "yes" if complete else "NO",
                ]
            )  # fmt: skip
            if churn:
                verdicts.append(
                    f"{name}, totals {'yes' if total_records else 'no'}: worst "
                    f"{worst.ratio:.2f}x ({against(worst.ratio, 2.0, at_most=True, unit='x')})"
                    f"{'' if complete else '; INCOMPLETE'}"
                )
    title = (
        f"### Busy account: export --all of {schedules} schedules x {candidates} candidates, "
        f"page size 100, {latency_ms:g} ms latency, a fifth of the listing pages {late_ms:g} ms "
        f"late ({len(seeds)} seed{'s' if len(seeds) > 1 else ''} each)"
    )
    columns = (
        "account", "totals", "requests (worst)", "sequential", "ratio (worst)", "ratio (median)",
        "seconds", "changes", "late pages", "lost", "twice", "complete, exit 0",
    )  # fmt: skip
    return "\n\n".join([title, table(columns, rows), "\n".join(verdicts)]) + "\n"
