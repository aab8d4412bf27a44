"""What the export's integrity and the hostile-answer guards cost, and what they bound.

    python -m benchmarks.bench_integrity [--quick]

(1) Page decode: ``decode_listing`` as it is (each record checked to be UTF-8)
against the same scan without the check, interleaved in one process, on pages
of the fake account (names from many languages, so most records are not ASCII).
(2) The export's checkpoint: CRC-32 of every byte written, against writing them.
(3) Peak RSS of a child process receiving a hostile answer (200 MB declared,
endless chunked, a 96 MiB gzip bomb) under the default 32 MiB cap, against the
same child receiving a small answer.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import sys
import tempfile
import time
import zlib

from aiohttp import web

from mettl_async._paging import RawRecord, _keys_decoder, _page_decoder, decode_listing
from mettl_async.testing import FakeMettl
from mettl_async.testing.data import FakeAccount

from ._harness import machine, median, table

MiB = 1024 * 1024
CHUNK = b"x" * (64 * 1024)


def _pages(count: int) -> list[bytes]:
    fake = FakeMettl(account=FakeAccount([100] * count, seed=7))
    pages = []
    for schedule in fake.account.schedules:
        bytes_of = fake.account.candidate_bytes
        records = [bytes_of(schedule, j, ir=False, qr=False) for j in range(100)]
        pages.append(
            b'{"status":"SUCCESS","candidates":['
            + b",".join(records)
            + b'],"paging":{"totalRecords":100}}'
        )
    return pages


def _scan_unchecked(body: bytes) -> list[RawRecord]:
    """The scan as it was before the UTF-8 check (the baseline)."""
    page = _page_decoder("candidates").decode(body)
    holders = _keys_decoder("candidates", "email").decode(body).candidates
    return [
        RawRecord(bytes(raw), getattr(holder, "email", None))
        for raw, holder in zip(page.candidates, holders, strict=True)
    ]


def _scan_checked(body: bytes) -> list[RawRecord]:
    envelope = decode_listing(
        200, body, items_key="candidates", key_field="email", method="GET", url="http://h/v2/x"
    )
    records: list[RawRecord] = envelope["candidates"]
    return records


def decode_cost(quick: bool) -> list[list[str]]:
    pages = _pages(4 if quick else 20)
    ascii_share = sum(
        bytes(r).isascii() for p in pages for r in _page_decoder("candidates").decode(p).candidates
    ) / (100 * len(pages))
    rounds = 5 if quick else 31
    timings: dict[str, list[float]] = {"unchecked": [], "checked": []}
    for _ in range(rounds):
        for name, scan in (("unchecked", _scan_unchecked), ("checked", _scan_checked)):
            started = time.perf_counter()
            for body in pages:
                scan(body)
            timings[name].append((time.perf_counter() - started) / len(pages) * 1e6)
    base, checked = median(timings["unchecked"]), median(timings["checked"])
    return [
        ["scan, no UTF-8 check (before)", f"{base:,.0f}", "1.00"],
        ["scan + UTF-8 check per record (now)", f"{checked:,.0f}", f"{checked / base:.2f}"],
        ["records that are pure ASCII (checked at no cost)", f"{ascii_share:.0%}", ""],
    ]


def crc_cost(quick: bool) -> list[list[str]]:
    page = _pages(1)[0]
    data = page * (50 if quick else 600)  # ~8 / ~100 MB
    rounds = 3 if quick else 7
    crc_times, write_times = [], []
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "data")
        for _ in range(rounds):
            started = time.perf_counter()
            zlib.crc32(data)
            crc_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                for at in range(0, len(data), len(page)):
                    os.write(fd, view[at : at + len(page)])
                os.fsync(fd)
            finally:
                os.close(fd)
            write_times.append(time.perf_counter() - started)
    size = len(data) / MiB
    crc, write = median(crc_times), median(write_times)
    return [
        [f"write + fsync {size:,.0f} MiB, a page at a time", f"{write * 1000:,.0f}", "1.00"],
        [f"CRC-32 of the same {size:,.0f} MiB", f"{crc * 1000:,.0f}", f"{crc / write:.2f}"],
    ]


@functools.cache
def _bomb() -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    return b"".join(compressor.compress(CHUNK) for _ in range(1536)) + compressor.flush()


async def _hostile_app() -> tuple[web.AppRunner, str]:
    async def pour(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        await response.prepare(request)
        try:
            for _ in range(2048 * MiB // len(CHUNK)):
                await response.write(CHUNK)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def declared(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 200 * MiB
        return await pour(request, response)

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        return await pour(request, response)

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=_bomb(), headers={"Content-Encoding": "gzip"})

    async def small(request: web.Request) -> web.Response:
        return web.json_response({"status": "SUCCESS"})

    app = web.Application()
    for path, handler in (("declared", declared), ("endless", endless), ("bomb", bomb),
                          ("small", small)):  # fmt: skip
        app.router.add_get(f"/v2/{path}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


_CHILD = """
import asyncio, sys
from mettl_async import MettlClient, ResponseTooLargeError, RetryPolicy
async def main(url, path):
    async with MettlClient("p", "q", base_url=url, retry=RetryPolicy.never()) as client:
        try:
            await client.request("GET", path)
        except ResponseTooLargeError:
            pass
asyncio.run(main(sys.argv[1], sys.argv[2]))
print([l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1])
"""


async def _peaks() -> dict[str, float]:
    runner, url = await _hostile_app()
    peaks = {}
    try:
        for path in ("small", "declared", "endless", "bomb"):
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _CHILD, url, f"/{path}", stdout=asyncio.subprocess.PIPE
            )
            out, _ = await child.communicate()
            match = re.search(rb"(\d+)\s*$", out)
            peaks[path] = int(match.group(1)) / 1024 if match else float("nan")
    finally:
        await runner.cleanup()
    return peaks


def memory_cost() -> list[list[str]]:
    peaks = asyncio.run(_peaks())
    base = peaks["small"]
    rows = [["a small answer (baseline)", f"{base:,.1f}", ""]]
    names = {
        "declared": "200 MB declared (refused at the header)",
        "endless": "endless chunked body (read to the cap)",
        "bomb": "96 MiB gzip bomb (inflated to the cap)",
    }
    for path, label in names.items():
        rows.append([label, f"{peaks[path]:,.1f}", f"+{peaks[path] - base:,.1f}"])
    return rows


def integrity_section(*, quick: bool = False) -> str:
    parts = [
        "### Integrity costs (issue 14)",
        "",
        "Page decode, µs per 100-record page (median of interleaved rounds):",
        "",
        table(["how", "µs per page", "ratio"], decode_cost(quick)),
        "",
        "The export's checkpoint checksum against the writes it covers (ms, median):",
        "",
        table(["what", "ms", "ratio"], crc_cost(quick)),
        "",
        "Peak RSS of a client process (MiB, default cap of 32 MiB):",
        "",
        table(["answer", "peak RSS MiB", "over baseline"], memory_cost()),
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_integrity")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start\n")
    print(integrity_section(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
