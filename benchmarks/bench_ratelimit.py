"""Rate-limited export: an account export against a fake Mettl that throttles.

    python -m benchmarks.bench_ratelimit [--quick]

The fake Mettl runs in its own process with 50 ms latency and a rate limit it
does not publish: a token bucket (5/s burst 5, 20/s burst 10, 100/s burst 50)
or a fixed window (40 requests per 5 s), refusing with E509 in an HTTP 200
body and HTTP 429 with ``Retry-After: 1``, half each. One export per limit
(issue 26's shape: 40 schedules x 500 candidates, 200 x 500 at 100/s), as
``mettl-async export`` runs it (16 in flight, default retry policy), to a JSONL
file then checked against the fake's ground truth: every record exactly once.

Each attempt is recorded (when it went, whether it was refused). The first
burst is the refusals of requests sent before the first refusal came back (no
client knows the limit before it meets it); "after the limit was met" is every
request sent after that; the window's own column leaves out its first two
windows (a window is learned by living through it). The ideal time is the
useful (accepted) requests at the limit's rate. A second table runs the same
exports on a virtual clock (``benchmarks/virtual.py``: the library's own
transport and pacer against the fake's own limit, three jitter seeds, the
worst of each figure): deterministic and CPU-cheap, so each design was tried
there first. A last table is the unlimited case (raw export at C=16, 50 ms),
against its latency bound, as in the account-export section.

With matplotlib installed (``pip install -e '.[bench]'``) the 20 requests/s
run is plotted, requests/s over time against the limit, to
``benchmarks/ratelimit.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import orjson

from mettl_async import MettlClient, RetryPolicy
from mettl_async.export import ExportOptions, export_results
from mettl_async.testing.data import FakeAccount
from mettl_async.testing.state import FakeRateLimit

from ._harness import Server, fake_server, machine, median, table
from .bench_stream import _measure, account_walk
from .virtual import Exchange, Run, simulate

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
    #: seconds left out of the window's "after its first two windows" column
    learn: float = 0.0
    #: the limit as the fake's own, for the simulated table
    model: FakeRateLimit = attrs.field(factory=FakeRateLimit, eq=False)


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
    attempts: Run

    @property
    def useful(self) -> int:
        return self.requests - self.throttled


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
    exchanges: list[Exchange] = []
    async with MettlClient(
        server.public_key,
        server.private_key,
        base_url=server.base_url,
        max_in_flight=16,
        retry=RetryPolicy(),
    ) as client:
        stats = client.stats
        pacer = client._transport._pacer
        told = pacer.answered

        def answered(sent_at: float, received_at: float, *, throttled: bool) -> None:
            exchanges.append(Exchange(0, sent_at, received_at, throttled))
            told(sent_at, received_at, throttled=throttled)

        pacer.answered = answered  # type: ignore[method-assign]
        t0 = time.perf_counter()
        begun = pacer.clock()

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
        attempts = Run(exchanges, begun, pacer.clock(), 0)
    got = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    keys = [(record["accessKey"], record["email"]) for record in got]
    truth = _truth(case.schedules, case.candidates)
    exact = len(keys) == len(truth) and set(keys) == truth
    return Outcome(
        case,
        seconds,
        requests,
        throttled,
        len(keys),
        len(truth),
        exact,
        samples,
        final_rate,
        attempts,
    )


def _run(case: Case, directory: Path) -> Outcome:
    with (
        tempfile.TemporaryDirectory(prefix="mettl-bench-cache-") as cache,
        _environment(METTL_ASYNC_CACHE_DIR=cache),
        fake_server(
            "--schedules",
            str(case.schedules),
            "--candidates",
            str(case.candidates),
            "--latency-ms",
            str(LATENCY_MS),
            *case.server_args,
        ) as server,
    ):
        return asyncio.run(_export(server, case, directory))


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables for the time of a block (a cache of its own: no rate
    learned by an earlier run, of this benchmark or of the user's, is shared)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _cases(quick: bool) -> list[Case]:
    def bucket(rate: int, burst: int, schedules: int, candidates: int) -> Case:
        return Case(
            f"bucket {rate}/s burst {burst}",
            float(rate),
            ("--rate", str(rate), "--burst", str(burst)),
            schedules,
            candidates,
            model=FakeRateLimit(rate=rate, burst=burst),
        )

    def window(limit: int, seconds: int, schedules: int, candidates: int) -> Case:
        return Case(
            f"window {limit} per {seconds} s",
            limit / seconds,
            ("--window-limit", str(limit), "--window", str(seconds)),
            schedules,
            candidates,
            learn=2.0 * seconds,
            model=FakeRateLimit(window_limit=limit, window=seconds),
        )

    if quick:
        return [bucket(20, 10, 6, 300), window(10, 1, 8, 300)]
    # Issue 26's shape: 40 schedules x 500 candidates (201 requests at page size 100),
    # and five times that at 100/s (about 10 s each at 20/s, 40 s at 5/s).
    return [
        bucket(5, 5, 40, 500),
        bucket(20, 10, 40, 500),
        bucket(100, 50, 200, 500),
        window(40, 5, 40, 500),
    ]


def _figures(case: Case, run: Run, *, records: str, final: float | None) -> list[object]:
    """One row: what a run did, as the issue's targets read it."""
    after, refused_after = run.after()
    window_late = [e for e in run.exchanges if e.sent >= run.started + case.learn]
    late = (
        f"{sum(e.refused for e in window_late) / len(window_late):.1%}"
        if case.learn and window_late
        else "-"
    )
    return [
        case.name,
        records,
        run.seconds,
        run.requests,
        f"{run.refused} ({run.refused / run.requests:.1%})",
        run.first_burst,
        f"{refused_after}/{after} ({refused_after / after:.1%})" if after else "-",
        late,
        run.useful / case.limit / run.seconds,
        final if final is not None else "-",
    ]


HEADERS = [
    "limit", "records (vs truth)", "seconds", "requests", "refused", "first burst",
    "refused after the limit was met", "... after 2 windows", "ideal / actual time",
    "allowed rate at end",
]  # fmt: skip


def _simulated(cases: list[Case], quick: bool) -> str:
    """The same exports on the virtual clock: three seeds, the worst figure of each."""
    rows = []
    for case in cases:
        requests = case.schedules * math.ceil(case.candidates / 100) + 1
        runs = [
            simulate(lambda model=case.model: attrs.evolve(model), requests, seed=seed)[0]
            for seed in range(1 if quick else 3)
        ]
        worst = max(runs, key=lambda run: run.refused / run.requests)
        slowest = min(run.useful / case.limit / run.seconds for run in runs)
        row = _figures(case, worst, records=f"{requests - 1} pages", final=None)
        row[-2] = slowest
        rows.append(row[:-1])
    title = (
        "### The same exports on a virtual clock (the library's transport and pacer, the "
        f"fake's limit, {LATENCY_MS:g} ms +-10%; worst of {1 if quick else 3} seeds)"
    )
    return f"{title}\n\n{table(HEADERS[:-1], rows)}\n"


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
    met = outcome.attempts.met - outcome.attempts.started
    axes.axvline(met, color="grey", linestyle=":", linewidth=1)
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
    cases = _cases(quick)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="mettl-bench-") as tmp:
        for case in cases:
            outcomes.append(_run(case, Path(tmp)))
    rows = [
        _figures(
            o.case,
            o.attempts,
            records=f"{o.records:,}/{o.expected:,}" + (" exact" if o.exact else " WRONG"),
            final=o.final_rate,
        )
        for o in outcomes
    ]
    title = (
        f"### Rate-limited export: {LATENCY_MS:g} ms latency, 16 in flight, refusals half E509 "
        "in HTTP 200, half HTTP 429 with Retry-After: 1 (one run each; "
        f"load average {os.getloadavg()[0]:.2f} at the end)"
    )
    plotted = next((o for o in outcomes if o.case.name.startswith("bucket 20/s")), outcomes[0])
    note = _plot(plotted, PLOT) if not quick else ""
    parts = [title, "", table(HEADERS, rows), ""]
    if note:
        parts += [note, ""]
    parts.append(_simulated(cases, quick))
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
