"""Client overhead: the library's CPU per request against a bare aiohttp loop.

    python -m benchmarks.bench_overhead [--quick]

No injected latency, 32 requests in flight, the same pages fetched by both:
the bare loop gets every page's URL signed before its clock starts and does
nothing but ``session.get`` and ``orjson.loads`` (no signing, no envelope
check, no retries, no paging logic); the library walks the same schedules with
``iter_all_results``: its raw path (pages scanned, records kept as sent), the
raw path with every record then parsed (the bare loop's parsing, plus the
library's), and its typed path. CPU is this process's user + system time
(``getrusage``); the fake Mettl runs in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from yarl import URL

from mettl_async import MettlClient
from mettl_async._protocol import Request, prepare
from mettl_async._signing import SigningKey

from ._harness import Server, cpu_seconds, fake_server, machine, median, table

CONCURRENCY = 32


async def _schedules(server: Server) -> list[dict[str, Any]]:
    async with MettlClient(
        server.public_key, server.private_key, base_url=server.base_url
    ) as client:
        return [dict(s) async for s in client.iter_schedules().raw()]


def _signed_urls(server: Server, schedules: list[dict[str, Any]], candidates: int) -> list[str]:
    key = SigningKey(server.private_key)
    ts = int(time.time())
    urls = []
    for schedule in schedules:
        url = f"{server.base_url}/v2/schedules/{schedule['accessKey']}/candidates"
        for offset in range(0, candidates, 100):
            request = Request("GET", url, {"limit": "100", "offset": str(offset)})
            urls.append(prepare(request, public_key=server.public_key, key=key, ts=ts).url)
    return urls


async def bare_loop(urls: list[str], concurrency: int = CONCURRENCY) -> tuple[int, int]:
    """The floor: fetch and parse each page, nothing else."""
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    records = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(url: str) -> None:
            nonlocal records
            async with gate, session.get(URL(url, encoded=True)) as response:
                data = orjson.loads(await response.read())
            records += len(data["candidates"])

        await asyncio.gather(*(fetch(url) for url in urls))
    return records, len(urls)


def library(
    server: Server, schedules: list[dict[str, Any]], *, typed: bool, parse: bool = False
) -> Callable[[], Awaitable[tuple[int, int]]]:
    """The library's walk: typed, raw, or raw with every record parsed as it comes."""

    async def run() -> tuple[int, int]:
        async with server.client(CONCURRENCY) as client:
            walk: Any = client.iter_all_results(schedules=schedules, concurrency=CONCURRENCY)
            if not typed:
                walk = walk.raw()
            records = 0
            async for _, record in walk:
                if parse:
                    record.to_dict()  # the bare loop's work: every record parsed
                records += 1
            return records, client.stats.requests

    return run


def overhead_section(*, quick: bool) -> str:
    schedules_count, candidates = (10, 300) if quick else (100, 300)
    repeats = 2 if quick else 7
    with fake_server(
        "--schedules", str(schedules_count), "--candidates", str(candidates), "--latency-ms", "0"
    ) as server:
        schedules = asyncio.run(_schedules(server))
        urls = _signed_urls(server, schedules, candidates)
        modes: dict[str, Callable[[], Awaitable[tuple[int, int]]]] = {
            "bare aiohttp + orjson.loads": lambda: bare_loop(urls),
            "library, raw path": library(server, schedules, typed=False),
            "library, raw path, every record parsed": library(
                server, schedules, typed=False, parse=True
            ),
            "library, typed path": library(server, schedules, typed=True),
        }
        samples: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in modes}
        for run in modes.values():  # warm-up
            asyncio.run(run())
        for _ in range(repeats):
            for name, run in modes.items():
                cpu0, t0 = cpu_seconds(), time.perf_counter()
                records, requests = asyncio.run(run())
                samples[name].append(
                    (cpu_seconds() - cpu0, time.perf_counter() - t0, records, requests)
                )
    bare = median(
        [cpu / requests for cpu, _, _, requests in samples["bare aiohttp + orjson.loads"]]
    )
    rows = []
    for name, runs in samples.items():
        per_request = median([cpu / requests for cpu, _, _, requests in runs])
        records, requests = runs[0][2], runs[0][3]
        rows.append(
            [
                name,
                requests,
                records,
                median([w for _, w, _, _ in runs]),
                per_request * 1e6,
                per_request / bare,
            ]
        )
    title = (
        f"### Client overhead: {schedules_count} schedules x {candidates} candidates, no latency, "
        f"{CONCURRENCY} in flight (median of {repeats}, interleaved)"
    )
    headers = ["client", "requests", "records", "seconds", "CPU µs/request", "ratio to bare"]
    assert math.isfinite(bare)
    return f"{title}\n\n{table(headers, rows)}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(overhead_section(quick=args.quick))


if __name__ == "__main__":
    main()
