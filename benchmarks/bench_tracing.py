"""What tracing costs: the account walk's client CPU with tracing off, no-op and recording.

    python -m benchmarks.bench_tracing [--quick]

The raw account walk (``iter_all_results().raw()``: the least CPU per request
of the library's walks, so the largest share for tracing), no injected
latency, against the fake Mettl in its own process. Modes, interleaved:

- ``off``: ``tracer_provider=NoOpTracerProvider()``, the path of a client
  without ``opentelemetry-api`` installed (no span, no hook);
- ``no-op provider``: opentelemetry-api installed and no SDK set up, the
  default of a service that has not configured tracing (each call asks the
  global provider, and gets a non-recording span);
- ``SDK, in-memory``: an SDK ``TracerProvider`` with a ``SimpleSpanProcessor``
  into an ``InMemorySpanExporter``: every span recorded and exported.

The target: the no-op provider within 5% of ``off``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from ._harness import Server, against, cpu_seconds, fake_server, machine, median, table

CONCURRENCY = 16


async def _walk(server: Server, options: dict[str, Any]) -> tuple[float, int, int]:
    """CPU seconds, requests and records of one raw account walk."""
    async with server.client(CONCURRENCY, **options) as client:
        cpu0 = cpu_seconds()
        records = 0
        async for _ in client.iter_all_results(concurrency=CONCURRENCY).raw():
            records += 1
        return cpu_seconds() - cpu0, client.stats.requests, records


def tracing_section(*, quick: bool) -> str:
    try:  # the SDK is the test extra's, not the library's
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.trace import NoOpTracerProvider
    except ImportError:
        return "### Tracing\n\nskipped: needs opentelemetry-sdk (pip install -e '.[test]')\n"
    schedules, candidates = (20, 300) if quick else (100, 300)
    repeats = 2 if quick else 7
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    modes: dict[str, dict[str, Any]] = {
        "off": {"tracer_provider": NoOpTracerProvider()},
        "no-op provider": {},
        "SDK, in-memory": {"tracer_provider": sdk},
    }
    cpu: dict[str, list[float]] = {name: [] for name in modes}
    spans: dict[str, int] = {}
    requests = records = 0
    with fake_server("--schedules", str(schedules), "--candidates", str(candidates)) as server:
        for options in modes.values():  # warm-up: connections, caches, imports
            asyncio.run(_walk(server, options))
        for _ in range(repeats):
            for name, options in modes.items():  # interleaved
                exporter.clear()
                seconds, requests, records = asyncio.run(_walk(server, options))
                cpu[name].append(seconds)
                spans[name] = len(exporter.get_finished_spans())
    base = median(cpu["off"])
    rows = [
        [name, requests, records, spans[name], median(cpu[name]),
         median(cpu[name]) / requests * 1e6, f"{median(cpu[name]) / base - 1:+.1%}"]
        for name in modes
    ]  # fmt: skip
    headers = ["mode", "requests", "records", "spans", "CPU s", "CPU µs/request", "vs off"]
    noop = median(cpu["no-op provider"]) / base - 1
    title = (
        f"### Tracing: raw account walk, {schedules} schedules x {candidates} candidates, "
        f"no latency, C={CONCURRENCY} (median of {repeats}, interleaved)"
    )
    verdict = (
        f"no-op provider: {noop:+.1%} client CPU against off "
        f"({against(noop * 100, 5, at_most=True, unit='%')})"
    )
    return f"{title}\n\n{table(headers, rows)}\n\n{verdict}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"Machine: {machine()}\n")
    print(tracing_section(quick=args.quick))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
