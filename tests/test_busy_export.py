"""``export --all`` against a busy account: candidates arriving or deleted while the export
walks, some pages answered late, with and without ``totalRecords``.

The export runs as users run it (``python -m mettl_async export --all``, its own process)
against the fake Mettl in this process, which knows what existed throughout. Every such
candidate must be in the file exactly once, nothing that never existed may be, and the
export may make at most twice the listing requests that following the links through the
final listings would. (``benchmarks/bench_busy.py`` measures the same at full size.)
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
from pathlib import Path

import orjson
import pytest

from mettl_async.testing import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

SIZES = [700] * 6
CHURN = {
    "an arrival every 3rd request": {"arrival_every": 3},
    "an arrival every 8th request": {"arrival_every": 8},
    "a deletion every 4th request": {"deletion_every": 4},
}


def sequential_requests(fake: FakeMettl, *, total_records: bool) -> int:
    """Listing requests that following the links through the final listings needs."""
    schedules = len(fake.account.schedules) // 100 + 1  # article 11: no totals, a short page ends
    pages = 0
    for schedule in fake.account.schedules:
        size = schedule.candidate_count
        pages += max(1, -(-size // 100)) if total_records else size // 100 + 1
    return schedules + pages


def exported(path: Path) -> dict[str, list[str]]:
    by_schedule: dict[str, list[str]] = collections.defaultdict(list)
    for line in path.read_bytes().splitlines():
        record = orjson.loads(line)
        by_schedule[record["accessKey"]].append(record["email"])
    return by_schedule


@pytest.mark.slow
@pytest.mark.parametrize("total_records", [True, False], ids=["totals", "no totals"])
@pytest.mark.parametrize("churn", list(CHURN))
async def test_export_all_of_a_busy_account_has_everyone_once(
    tmp_path: Path, churn: str, total_records: bool
) -> None:
    fake = FakeMettl(
        account=FakeAccount(SIZES, seed=23),
        total_records=total_records,
        latency=0.002,
        late_share=0.2,
        late_delay=0.05,
        seed=23,
        **CHURN[churn],  # type: ignore[arg-type]
    )
    at_start = {s.access_key: set(fake.mutate.emails(s.access_key)) for s in fake.account.schedules}
    output = tmp_path / "all.jsonl"
    async with FakeMettlServer(fake) as server:
        env = {
            **os.environ,
            "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
            "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
            "METTL_BASE_URL": server.base_url,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mettl_async", "export", "--all", "--format", "jsonl",
            "--output", str(output), "--quiet",
            env=env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, stderr.decode()
    assert fake.late_pages > 0
    assert fake.arrivals + fake.deletions > 0
    got = exported(output)
    for schedule in fake.account.schedules:
        key = schedule.access_key
        emails = got[key]
        ever = at_start[key] | {fake.account.email(schedule, j) for j in schedule.arrivals}
        throughout = at_start[key] - {fake.account.email(schedule, j) for j in schedule.deleted}
        assert len(emails) == len(set(emails)), f"{key}: a candidate twice"
        assert throughout <= set(emails), f"{key}: lost {sorted(throughout - set(emails))}"
        assert set(emails) <= ever, f"{key}: a candidate that never existed"
    requests = sum(fake.listing_requests.values())
    assert requests <= 2 * sequential_requests(fake, total_records=total_records)
