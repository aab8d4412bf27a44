"""Streaming benchmarks: an account export and one large schedule against the latency bound.

    python -m benchmarks.bench_stream [--quick]

The fake Mettl runs in its own process with injected latency. Every mode is
measured in the same run, interleaved, after a warm-up, and reported as the
median of the repeats. The bound of a run is ceil(requests / C) x latency:
no client can do better with C requests in flight. Beside the library's walks,
``bare aiohttp`` fetches the same result pages with aiohttp and parses each with
``orjson.loads``, nothing else (bench_overhead's floor): what this machine
allows any asyncio client that reads the pages.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Awaitable, Callable

import attrs

from mettl_async import MettlClient

from ._harness import Server, against, cpu_seconds, fake_server, machine, median, table
from .bench_overhead import _schedules, _signed_urls, bare_loop


@attrs.frozen
class Run:
    seconds: float
    requests: int
    records: int
    cpu: float


async def _measure(
    server: Server, concurrency: int, body: Callable[[MettlClient], Awaitable[int]]
) -> Run:
    async with server.client(concurrency) as client:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        records = await body(client)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        return Run(seconds, client.stats.requests, records, cpu)


async def follow_links(client: MettlClient) -> int:
    """How existing Mettl clients work: one request at a time, following next links."""
    count = 0
    async for schedule in client.iter_schedules(window=1).raw():
        async for _ in client.iter_candidate_results(schedule["accessKey"], window=1).raw():
            count += 1
    return count


def account_walk(concurrency: int, *, typed: bool) -> Callable[[MettlClient], Awaitable[int]]:
    """Every result of the account; a typed walk reads each result's total marks."""

    async def body(client: MettlClient) -> int:
        count = 0
        if not typed:
            async for _ in client.iter_all_results(concurrency=concurrency).raw():
                count += 1
            return count
        total = 0.0
        async for _, result in client.iter_all_results(concurrency=concurrency):
            marks = result.test_status.result
            total += marks.total_marks if marks is not None else 0.0
            count += 1
        return count

    return body


def bare_walk(urls: list[str], concurrency: int) -> Callable[[MettlClient], Awaitable[int]]:
    """The floor for any aiohttp client: the same result pages fetched and parsed, nothing else.

    The URLs are listed and signed once, before any measure (the walks list the
    schedules inside theirs: a few requests more), so no signing is measured either.
    """

    async def body(client: MettlClient) -> int:  # the client stays unused: aiohttp alone
        records, _ = await bare_loop(urls, concurrency)
        return records

    return body


def _run_account(
    schedules: int,
    candidates: int,
    latency_ms: float,
    modes: dict[str, tuple[int, Callable[[MettlClient], Awaitable[int]]]],
    urls: list[str],
    repeats: int,
    slow: set[str],
) -> dict[str, list[Run]]:
    """``modes`` against a fake account, interleaved; ``urls`` (the bare loops') filled first."""
    with fake_server(
        "--schedules",
        str(schedules),
        "--candidates",
        str(candidates),
        "--latency-ms",
        str(latency_ms),
    ) as server:
        urls += _signed_urls(server, asyncio.run(_schedules(server)), candidates)
        return _repeat(server, modes, repeats, slow)


def _requests(name: str, run: Run, urls: list[str]) -> int:
    """Requests of a run: the client's count, or the bare loop's pages."""
    return len(urls) if name.startswith("bare") else run.requests


def one_schedule(window: int) -> Callable[[MettlClient], Awaitable[int]]:
    async def body(client: MettlClient) -> int:
        schedule = await anext(aiter(client.iter_schedules(page_size=1).raw()))
        count = 0
        async for _ in client.iter_candidate_results(schedule["accessKey"], window=window).raw():
            count += 1
        return count

    return body


def _repeat(
    server: Server,
    modes: dict[str, tuple[int, Callable[[MettlClient], Awaitable[int]]]],
    repeats: int,
    slow: set[str],
) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {name: [] for name in modes}
    for name, (concurrency, body) in modes.items():  # warm-up: connections, caches
        if name not in slow:
            asyncio.run(_measure(server, concurrency, body))
    for round_number in range(repeats):
        for name, (concurrency, body) in modes.items():  # interleaved
            if name in slow and round_number >= max(1, repeats // 3):
                continue
            runs[name].append(asyncio.run(_measure(server, concurrency, body)))
    return runs


def account_section(*, quick: bool) -> str:
    schedules, candidates, latency_ms = (20, 30, 10.0) if quick else (200, 300, 50.0)
    repeats = 1 if quick else 3
    latency = latency_ms / 1000
    levels = [8, 16] if quick else [8, 16, 32, 64]
    modes: dict[str, tuple[int, Callable[[MettlClient], Awaitable[int]]]] = {
        "following links (C=1)": (1, follow_links)
    }
    for c in levels:
        modes[f"raw C={c}"] = (c, account_walk(c, typed=False))
        modes[f"typed C={c}"] = (c, account_walk(c, typed=True))
    urls: list[str] = []
    for c in (16, 32) if not quick else (16,):
        modes[f"bare aiohttp C={c}"] = (c, bare_walk(urls, c))
    runs = _run_account(
        schedules, candidates, latency_ms, modes, urls, repeats, slow={"following links (C=1)"}
    )
    sequential = median([r.seconds for r in runs["following links (C=1)"]])
    rows = []
    efficiency: dict[str, float] = {}
    for name, (c, _) in modes.items():
        seconds = median([r.seconds for r in runs[name]])
        requests = _requests(name, runs[name][0], urls)
        bound = math.ceil(requests / c) * latency
        records = runs[name][0].records
        efficiency[name] = bound / seconds
        rows.append(
            [
                name, c, requests, records, seconds, bound, bound / seconds, sequential / seconds,
                0.9 * c, records / seconds, median([r.cpu for r in runs[name]]) / requests * 1e6,
            ]
        )  # fmt: skip
    headers = [
        "mode", "C", "requests", "records", "seconds", "bound s", "efficiency", "speed-up",
        "0.9 x C", "records/s", "client CPU µs/request",
    ]  # fmt: skip
    # The targets of the typed walk, judged beside the raw walk and the bare loop on the
    # same pages: what the library without models, and any aiohttp client, reach here.
    verdicts = []
    for c, target in ((16, 0.9), (32, 0.8)):
        if f"typed C={c}" in efficiency:
            typed, raw = efficiency[f"typed C={c}"], efficiency[f"raw C={c}"]
            verdicts.append(
                f"typed C={c}: {typed:.2f} of the latency bound "
                f"({against(typed, target, at_most=False)}); the raw walk {raw:.2f}, "
                f"typed/raw {typed / raw:.2f}; a bare aiohttp + orjson.loads loop "
                f"{efficiency[f'bare aiohttp C={c}']:.2f} on the same pages"
            )
    title = (
        f"### Account export: {schedules} schedules x {candidates} candidates, page size 100, "
        f"{latency_ms:g} ms latency (median of {repeats}; following links: "
        f"{len(runs['following links (C=1)'])} run)"
    )
    return f"{title}\n\n{table(headers, rows)}\n\n" + "\n".join(verdicts) + "\n"


def typed_walk_section(*, quick: bool) -> str:
    """The typed walk against the raw walk on the same pages: CPU, and wall time to the bound."""
    schedules, candidates, latency_ms = (10, 300, 10.0) if quick else (100, 300, 50.0)
    repeats = 1 if quick else 5
    latency = latency_ms / 1000
    modes: dict[str, tuple[int, Callable[[MettlClient], Awaitable[int]]]] = {}
    urls: list[str] = []
    for c in (16,) if quick else (16, 32):
        modes[f"bare aiohttp C={c}"] = (c, bare_walk(urls, c))
        modes[f"raw C={c}"] = (c, account_walk(c, typed=False))
        modes[f"typed C={c}"] = (c, account_walk(c, typed=True))
    runs = _run_account(schedules, candidates, latency_ms, modes, urls, repeats, slow=set())
    rows = []
    verdicts = []
    efficiency: dict[str, float] = {}
    for name, (c, _) in modes.items():  # bare, raw, typed: the first two judged before typed
        cpu = median([r.cpu for r in runs[name]])
        seconds = median([r.seconds for r in runs[name]])
        requests = _requests(name, runs[name][0], urls)
        bound = math.ceil(requests / c) * latency
        raw_cpu = median([r.cpu for r in runs[f"raw C={c}"]])
        records = runs[name][0].records
        efficiency[name] = bound / seconds
        rows.append(
            [name, requests, records, cpu, cpu / records * 1e6, cpu / raw_cpu, seconds, bound,
             bound / seconds]
        )  # fmt: skip
        if name.startswith("typed"):
            raw_efficiency = efficiency[f"raw C={c}"]
            bare_efficiency = efficiency[f"bare aiohttp C={c}"]
            verdicts.append(
                f"{name}: CPU {cpu / raw_cpu:.2f}x the raw walk's "
                f"({against(cpu / raw_cpu, 1.6, at_most=True, unit='x')}); "
                f"{bound / seconds:.2f} of the latency bound, the raw walk "
                f"{raw_efficiency:.2f} and a bare aiohttp + orjson.loads loop "
                f"{bare_efficiency:.2f} on the same pages"
            )
    headers = [
        "walk", "requests", "records", "CPU s", "CPU µs/record", "CPU vs raw", "seconds",
        "bound s", "efficiency",
    ]  # fmt: skip
    title = (
        f"### Typed walk vs raw walk: {schedules} schedules x {candidates} candidates, "
        f"{latency_ms:g} ms latency, the typed walk reading each result's total marks "
        f"(median of {repeats}, interleaved)"
    )
    return f"{title}\n\n{table(headers, rows)}\n\n" + "\n".join(verdicts) + "\n"


def large_schedule_section(*, quick: bool) -> str:
    candidates, latency_ms = (1_000, 10.0) if quick else (10_000, 50.0)
    repeats = 1 if quick else 3
    latency = latency_ms / 1000
    modes: dict[str, tuple[int, Callable[[MettlClient], Awaitable[int]]]] = {
        "following links": (16, one_schedule(1)),
        "concurrent window 8": (16, one_schedule(8)),
        "concurrent window 16": (16, one_schedule(16)),
    }
    with fake_server(
        "--schedules", "1", "--candidates", str(candidates), "--latency-ms", str(latency_ms)
    ) as server:
        runs = _repeat(server, modes, repeats, slow=set())
    following = median([r.seconds for r in runs["following links"]])
    rows = []
    for name in modes:
        seconds = median([r.seconds for r in runs[name]])
        requests = runs[name][0].requests
        window = 1 if name == "following links" else int(name.rsplit(" ", 1)[1])
        # one request finds the schedule, the first page goes alone, then W at a time
        bound = (2 + math.ceil((requests - 2) / window)) * latency
        rows.append([name, requests, seconds, bound, seconds / bound, following / seconds])
    title = (
        f"### One large schedule: {candidates:,} candidates, page size 100, {latency_ms:g} ms "
        f"latency (median of {repeats})"
    )
    headers = ["mode", "requests", "seconds", "bound s", "x bound", "speed-up"]
    return f"{title}\n\n{table(headers, rows)}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(account_section(quick=args.quick))
    print(typed_walk_section(quick=args.quick))
    print(large_schedule_section(quick=args.quick))


if __name__ == "__main__":
    main()
