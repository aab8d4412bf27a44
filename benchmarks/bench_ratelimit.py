"""Rate-limited export: an account export against a fake Mettl that throttles.

    python -m benchmarks.bench_ratelimit [--quick]

The fake Mettl runs in its own process with 50 ms latency and a rate limit it
does not publish: a token bucket (5, 20 and 100 requests/s, burst half a
second's worth) or a fixed window (40 requests per 5 s), refusing with E509 in
an HTTP 200 body and HTTP 429 with ``Retry-After: 1``, half each. One export
per limit, as ``mettl-async export`` runs it (16 in flight, default retry
policy), to a JSONL file that is then checked against the fake's ground truth:
every record exactly once. Useful requests are those Mettl accepted; "after
learning" leaves out the first 5 s of a bucket, the first two windows of a
fixed window (a window is learned by living through it). A last table is the unlimited
case (raw export at C=16, 50 ms), against its latency bound, as in the
account-export section.

With matplotlib installed (``pip install -e '.[bench]'``) the 20 requests/s
run is plotted, requests/s over time against the limit, to
``benchmarks/ratelimit.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import tempfile
import time
from pathlib import Path

import attrs
import orjson

from mettl_async import MettlClient, RetryPolicy
from mettl_async.export import ExportOptions, export_results
from mettl_async.testing.data import FakeAccount

from ._harness import Server, fake_server, machine, median, table
from .bench_stream import _measure, account_walk

LATENCY_MS = 50.0
SAMPLE_EVERY = 0.25
PLOT = Path(__file__).parent / "ratelimit.png"


@attrs.frozen
class Case:
    name: str
    limit: float  # requests/s the server allows on average
    server_args: tuple[str, ...]
    schedules: int
    candidates: int
    learn: float = 5.0  # seconds of learning, left out of the "after learning" columns


@attrs.frozen
class Sample:
    at: float
    requests: int
    throttled: int
    allowed_rate: float | None


@attrs.frozen
class Outcome:
    case: Case
    seconds: float
    requests: int
    throttled: int
    records: int
    expected: int
    exact: bool
    samples: list[Sample]
    final_rate: float | None

    @property
    def useful(self) -> int:
        return self.requests - self.throttled

    def after(self, start: float) -> tuple[float, int, int]:
        """(seconds, requests, throttled) from ``start`` seconds on."""
        first = next((s for s in self.samples if s.at >= start), None)
        if first is None:
            return 0.0, 0, 0
        return (
            self.seconds - first.at,
            self.requests - first.requests,
            self.throttled - first.throttled,
        )


def _truth(schedules: int, candidates: int) -> set[tuple[str, str]]:
    account = FakeAccount(schedules, candidates, seed=0)
    return {
        (schedule.access_key, account.email(schedule, j))
        for schedule in account.schedules
        for j in schedule.order()
    }


async def _export(server: Server, case: Case, directory: Path) -> Outcome:
    output = directory / f"{case.name.replace(' ', '-').replace('/', '-')}.jsonl"
    samples: list[Sample] = []
    async with MettlClient(
        server.public_key,
        server.private_key,
        base_url=server.base_url,
        max_in_flight=16,
        retry=RetryPolicy(),
    ) as client:
        stats = client.stats
        t0 = time.perf_counter()

        async def sample() -> None:
            while True:
                samples.append(
                    Sample(
                        time.perf_counter() - t0,
                        stats.requests,
                        stats.throttled,
                        stats.allowed_rate,
                    )
                )
                await asyncio.sleep(SAMPLE_EVERY)

        sampler = asyncio.create_task(sample())
        try:
            await export_results(client, ExportOptions(output=output, format="jsonl"))
        finally:
            sampler.cancel()
        seconds = time.perf_counter() - t0
        samples.append(Sample(seconds, stats.requests, stats.throttled, stats.allowed_rate))
        requests, throttled, final_rate = stats.requests, stats.throttled, stats.allowed_rate
    got = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    keys = [(record["accessKey"], record["email"]) for record in got]
    truth = _truth(case.schedules, case.candidates)
    exact = len(keys) == len(truth) and set(keys) == truth
    return Outcome(
        case, seconds, requests, throttled, len(keys), len(truth), exact, samples, final_rate
    )


def _run(case: Case, directory: Path) -> Outcome:
    with fake_server(
        "--schedules",
        str(case.schedules),
        "--candidates",
        str(case.candidates),
        "--latency-ms",
        str(LATENCY_MS),
        *case.server_args,
    ) as server:
        return asyncio.run(_export(server, case, directory))


def _cases(quick: bool) -> list[Case]:
    if quick:
        return [
            Case("bucket 20/s", 20.0, ("--rate", "20", "--burst", "10"), 20, 300, learn=1.0),
            Case(
                "window 20 per 2 s", 10.0, ("--window-limit", "20", "--window", "2"), 10, 300,
                learn=2.0,
            ),
        ]  # fmt: skip
    # Sized for about 20 s each at the limit (3 pages per schedule of 300, 1 of 50), the
    # window for 40 s: two windows to learn it, then six.
    return [
        Case("bucket 5/s", 5.0, ("--rate", "5", "--burst", "3"), 32, 300),
        Case("bucket 20/s", 20.0, ("--rate", "20", "--burst", "10"), 130, 300),
        Case("bucket 100/s", 100.0, ("--rate", "100", "--burst", "50"), 1800, 50),
        Case(
            "window 40 per 5 s", 8.0, ("--window-limit", "40", "--window", "5"), 105, 300,
            learn=10.0,
        ),
    ]  # fmt: skip


def _plot(outcome: Outcome, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(no plot: matplotlib is not installed; `pip install -e '.[bench]'` brings it)"
    samples = outcome.samples
    times, useful, refused, allowed = [], [], [], []
    for before, after in itertools.pairwise(samples):
        span = after.at - before.at
        if span <= 0:
            continue
        done = (after.requests - after.throttled) - (before.requests - before.throttled)
        times.append(after.at)
        useful.append(done / span)
        refused.append((after.throttled - before.throttled) / span)
        allowed.append(after.allowed_rate)
    # A moving average over a second: per-quarter-second counts are too grainy to read.
    width = max(1, round(1.0 / SAMPLE_EVERY))

    def smooth(values: list[float]) -> list[float]:
        return [
            sum(values[max(0, i - width + 1) : i + 1]) / len(values[max(0, i - width + 1) : i + 1])
            for i in range(len(values))
        ]

    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=100)
    axes.plot(times, smooth(useful), label="accepted requests/s (1 s average)", color="tab:blue")
    axes.plot(times, smooth(refused), label="refused requests/s (1 s average)", color="tab:red")
    axes.step(
        times,
        [a if a is not None else float("nan") for a in allowed],
        where="post",
        label="client's allowed rate",
        color="tab:green",
        linewidth=1,
    )
    axes.axhline(outcome.case.limit, color="black", linestyle="--", label="server's limit")
    axes.axvline(outcome.case.learn, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("seconds since the export started")
    axes.set_ylabel("requests per second")
    axes.set_ylim(0, outcome.case.limit * 2.5)
    axes.set_title(f"Export under a {outcome.case.name} limit ({LATENCY_MS:g} ms latency)")
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return f"Plot of the {outcome.case.name} run: `{path.name}`."


def _unlimited(quick: bool) -> str:
    schedules, candidates, latency_ms = (20, 30, 10.0) if quick else (200, 300, LATENCY_MS)
    repeats = 1 if quick else 3
    body = account_walk(16, typed=False)
    with fake_server(
        "--schedules", str(schedules), "--candidates", str(candidates),
        "--latency-ms", str(latency_ms),
    ) as server:  # fmt: skip
        asyncio.run(_measure(server, 16, body))  # warm-up
        runs = [asyncio.run(_measure(server, 16, body)) for _ in range(repeats)]
    seconds = median([r.seconds for r in runs])
    requests = runs[0].requests
    bound = math.ceil(requests / 16) * latency_ms / 1000
    rows = [["raw C=16", requests, runs[0].records, seconds, bound, bound / seconds]]
    title = (
        f"### Unlimited server: {schedules} schedules x {candidates} candidates, "
        f"{latency_ms:g} ms latency (median of {repeats}; target >= 0.90 of the bound)"
    )
    headers = ["mode", "requests", "records", "seconds", "bound s", "share of bound"]
    return f"{title}\n\n{table(headers, rows)}\n"


def ratelimit_section(*, quick: bool) -> str:
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="mettl-bench-") as tmp:
        for case in _cases(quick):
            outcomes.append(_run(case, Path(tmp)))
    rows = []
    for o in outcomes:
        late_seconds, late_requests, late_throttled = o.after(o.case.learn)
        rows.append(
            [
                o.case.name,
                f"{o.records:,}/{o.expected:,}" + (" exact" if o.exact else " WRONG"),
                f"{o.case.learn:g} s",
                o.seconds,
                o.requests,
                o.useful / o.seconds,
                o.useful / o.seconds / o.case.limit,
                (late_requests - late_throttled) / late_seconds / o.case.limit
                if late_seconds > 0
                else float("nan"),
                f"{o.throttled / o.requests:.1%}",
                f"{late_throttled / late_requests:.1%}" if late_requests else "-",
                o.final_rate if o.final_rate is not None else "-",
            ]
        )
    headers = [
        "limit", "records (vs truth)", "learning", "seconds", "requests", "useful req/s",
        "useful / limit", "... after learning", "refused", "... after learning",
        "allowed rate at end",
    ]  # fmt: skip
    title = (
        f"### Rate-limited export: {LATENCY_MS:g} ms latency, 16 in flight, refusals half E509 "
        "in HTTP 200, half HTTP 429 with Retry-After: 1 (one run each)"
    )
    plotted = next((o for o in outcomes if o.case.name == "bucket 20/s"), outcomes[0])
    note = _plot(plotted, PLOT) if not quick else ""
    parts = [title, "", table(headers, rows), ""]
    if note:
        parts += [note, ""]
    parts.append(_unlimited(quick))
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(ratelimit_section(quick=args.quick))


if __name__ == "__main__":
    main()
