"""Sync: ``sync_results`` into SQLite and PostgreSQL against the raw JSONL export, side by side.

    python -m benchmarks.bench_sync [--quick]

(1) Throughput: the benchmark account (200 schedules x 300 candidates, 50 ms
latency, C=16; the fake Mettl in its own process) exported to JSONL on the raw
path, synced into a new SQLite file, and synced into a new PostgreSQL schema,
interleaved, median of 3. PostgreSQL runs when ``METTL_TEST_POSTGRES_URL`` is
set (``eval "$(.ci/postgres.sh start)"``). (2) Rows rewritten: a re-sync of
the unchanged account, then one after 5 regraded, 5 graded, 4 deleted and 6
added results (the fake in-process, to change it). (3) Peak RSS of
``mettl-async sync`` in its own process at 100,000 and 1,000,000 results.
(4) The commands themselves: ``mettl-async sync`` into a new SQLite file (and
PostgreSQL schema) vs ``mettl-async export`` to JSONL, each in its own
process, interleaved, median of 3 (100 x 300, 20 ms latency).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from mettl_async import MettlClient
from mettl_async.export import ExportOptions, export_results
from mettl_async.sync import open_database, sync_results
from mettl_async.testing import FakeAccount, FakeMettl, FakeMettlServer

from ._harness import Server, fake_server, machine, median, table
from .bench_memory import _child_rss_mb

POSTGRES_ENV = "METTL_TEST_POSTGRES_URL"


Writer = Literal["thread", "process"]


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-synclock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _client_run(server: Server, body: Callable[[MettlClient], Awaitable[int]]) -> float:
    async with server.client(16) as client:
        started = time.perf_counter()
        records = await body(client)
        seconds = time.perf_counter() - started
    return records / seconds


async def _fresh_schema(base: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    import asyncpg  # type: ignore[import-untyped]

    schema = f"bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(base)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(base)
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()

    return f"{base}{'&' if '?' in base else '?'}search_path={schema}", drop


async def _throughput(server: Server, repeats: int, expected: int, tmp: Path) -> list[list[Any]]:
    postgres = os.environ.get(POSTGRES_ENV)
    rates: dict[str, list[float]] = {
        "export": [], "sqlite": [], "sqlite-process": [], "postgresql": [], "postgresql-process": []
    }  # fmt: skip

    async def export(client: MettlClient) -> int:
        output = tmp / "bench.jsonl"
        summary = await export_results(client, ExportOptions(output, mode="overwrite"))
        output.unlink()
        return summary.records

    async def to_sqlite(client: MettlClient, writer: Writer = "thread") -> int:
        path = tmp / f"bench-{secrets.token_hex(4)}.db"
        summary = await sync_results(client, f"sqlite:///{path}", writer=writer)
        _remove_sqlite(path)
        return summary.inserted

    async def to_postgres(client: MettlClient, writer: Writer = "thread") -> int:
        assert postgres is not None
        url, drop = await _fresh_schema(postgres)
        try:
            return (await sync_results(client, url, writer=writer)).inserted
        finally:
            await drop()

    modes: list[tuple[str, Callable[[MettlClient], Awaitable[int]]]] = [
        ("export", export),
        ("sqlite", to_sqlite),
        ("sqlite-process", functools.partial(to_sqlite, writer="process")),
    ]
    if postgres:
        modes.append(("postgresql", to_postgres))
        modes.append(("postgresql-process", functools.partial(to_postgres, writer="process")))
    await _client_run(server, export)  # warm-up
    for _ in range(repeats):
        for name, body in modes:
            counted: list[int] = []

            async def run(
                client: MettlClient, body: Any = body, counted: list[int] = counted
            ) -> int:
                counted.append(await body(client))
                return counted[-1]

            rates[name].append(await _client_run(server, run))
            if counted[-1] != expected:
                raise RuntimeError(f"{name}: {counted[-1]} records, expected {expected}")
    export_rate = median(rates["export"])
    rows = []
    labels = {
        "export": "raw JSONL export",
        "sqlite": "sync into SQLite (one process)",
        "sqlite-process": "sync into SQLite, writer process",
        "postgresql": "sync into PostgreSQL (one process)",
        "postgresql-process": "sync into PostgreSQL, writer process",
    }
    for name in labels:
        if rates[name]:
            rate = median(rates[name])
            rows.append([labels[name], rate, rate / export_rate])
        else:
            rows.append([labels[name], f"not run ({POSTGRES_ENV} unset)", "-"])
    return rows


def _mutate(fake: FakeMettl) -> None:
    keys = [s.access_key for s in fake.account.schedules]
    for n in range(5):
        key = keys[n]
        fake.mutate.change_marks(key, fake.mutate.emails(key, status="Completed")[0])
        fake.mutate.grade(key, fake.mutate.emails(key, status="InProgress")[0])
    for n in range(4):
        key = keys[5 + n]
        fake.mutate.delete(key, fake.mutate.emails(key, status="Completed")[0])
    for n in range(3):
        fake.mutate.add(keys[10 + n], 2)


async def _rewrites(url: str, schedules: int, candidates: int) -> list[list[Any]]:
    """Rows whose updated_at/deleted_at moved, per sync, and the run's counts."""
    fake = FakeMettl(account=FakeAccount(schedules, candidates, seed=17))
    rows = []
    async with FakeMettlServer(fake) as server, server.client(max_in_flight=16) as client:

        async def state() -> dict[tuple[str, str], tuple[Any, Any]]:
            async with await open_database(url) as db:
                found = await db.fetch_all(
                    "SELECT access_key, email, updated_at, deleted_at FROM candidate_results"
                )
            return {(k, e): (u, d) for k, e, u, d in found}

        await sync_results(client, url)
        for label, change in (("unchanged account", None), ("5 + 5 + 4 + 6 changes", _mutate)):
            before = await state()
            if change is not None:
                change(fake)
            summary = await sync_results(client, url)
            after = await state()
            moved = sum(1 for key, value in after.items() if before.get(key) != value)
            rows.append(
                [
                    label,
                    summary.inserted,
                    summary.updated,
                    summary.deleted,
                    summary.unchanged,
                    moved,
                ]
            )
    return rows


def _sync_rss(schedules: int, candidates: int, tmp: Path) -> tuple[float, float]:
    with fake_server(
        "--schedules", str(schedules), "--candidates", str(candidates), "--no-warm"
    ) as server:
        path = tmp / f"rss-{schedules}.db"
        env = {
            "METTL_BASE_URL": server.base_url,
            "METTL_PUBLIC_KEY": server.public_key,
            "METTL_PRIVATE_KEY": server.private_key,
        }
        seconds, rss, status = _child_rss_mb(
            ["mettl_async", "sync", "--database", f"sqlite:///{path}", "--quiet"], env
        )
        if status != 0:
            raise RuntimeError(f"sync of {schedules} x {candidates} exited {status}")
        count = subprocess.run(
            [sys.executable, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
             ".execute('select count(*) from candidate_results').fetchone()[0])", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if int(count) != schedules * candidates:
            raise RuntimeError(f"synced {count} rows, expected {schedules * candidates}")
        _remove_sqlite(path)
    return seconds, rss


def _command(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``python -m mettl_async ARGV`` in a child process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "mettl_async", *argv], env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"mettl-async {argv[0]} exited {process.returncode}")
    return seconds, usage.ru_utime + usage.ru_stime


def _count_rows(url: str) -> int:
    async def count() -> int:
        async with await open_database(url) as db:
            found = await db.fetch_all("SELECT count(*) FROM candidate_results")
        return int(found[0][0])

    return asyncio.run(count())


def _commands(
    schedules: int, candidates: int, latency: int, repeats: int, tmp: Path
) -> list[list[Any]]:
    """``mettl-async export`` to JSONL vs ``mettl-async sync`` into a new database.

    The real commands, each in its own process, against the fake Mettl in
    another; interleaved (export, SQLite, PostgreSQL, export, ...), after one
    warm-up export; records/s of the whole command (start-up included, as a user
    times it), the median of ``repeats``, and the child's CPU per record. The
    children write their compiled bytecode under ``tmp`` (PYTHONPYCACHEPREFIX),
    so start-up is that of an installed package, whatever PYTHONDONTWRITEBYTECODE says.
    """
    expected = schedules * candidates
    postgres = os.environ.get(POSTGRES_ENV)
    with fake_server(
        "--schedules", str(schedules), "--candidates", str(candidates),
        "--latency-ms", str(latency),
    ) as server:  # fmt: skip
        env = {
            **os.environ,
            "METTL_BASE_URL": server.base_url,
            "METTL_PUBLIC_KEY": server.public_key,
            "METTL_PRIVATE_KEY": server.private_key,
            "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        output = tmp / "commands.jsonl"

        def export() -> tuple[float, float]:
            measured = _command(["export", "--all", "-o", str(output), "--overwrite", "-q"], env)
            with output.open("rb") as stream:
                lines = sum(1 for _ in stream)
            output.unlink()
            if lines != expected:
                raise RuntimeError(f"export: {lines} lines, expected {expected}")
            return measured

        def to_sqlite(*extra: str) -> tuple[float, float]:
            path = tmp / f"commands-{secrets.token_hex(4)}.db"
            measured = _command(["sync", "--database", f"sqlite:///{path}", "-q", *extra], env)
            stored = _count_rows(f"sqlite:///{path}")
            _remove_sqlite(path)
            if stored != expected:
                raise RuntimeError(f"sync into SQLite: {stored} rows, expected {expected}")
            return measured

        def to_postgres() -> tuple[float, float]:
            assert postgres is not None
            url, drop = asyncio.run(_fresh_schema(postgres))
            try:
                measured = _command(["sync", "--database", url, "-q"], env)
                stored = _count_rows(url)
            finally:
                asyncio.run(drop())
            if stored != expected:
                raise RuntimeError(f"sync into PostgreSQL: {stored} rows, expected {expected}")
            return measured

        modes: dict[str, Callable[[], tuple[float, float]]] = {
            "`mettl-async export --all` (JSONL)": export,
            "`mettl-async sync` (new SQLite file)": to_sqlite,
            "`sync --writer thread` (new SQLite file)": lambda: to_sqlite("--writer", "thread"),
        }
        if postgres:
            modes["`mettl-async sync` (new PostgreSQL schema)"] = to_postgres
        export()  # warm-up: fills the bytecode cache and the server's caches
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
        loads = []
        for _ in range(repeats):
            for name, run in modes.items():
                runs[name].append(run())
                loads.append(os.getloadavg()[0])
    rows: list[list[Any]] = []
    export_rate = median([expected / wall for wall, _ in next(iter(runs.values()))])
    for name, measured in runs.items():
        rate = median([expected / wall for wall, _ in measured])
        cpu = median([cpu * 1e6 / expected for _, cpu in measured])
        every = ", ".join(f"{expected / wall:,.0f}" for wall, _ in measured)
        rows.append([name, rate, rate / export_rate, cpu, every])
    if not postgres:
        rows.append(
            ["`mettl-async sync` (PostgreSQL)", f"not run ({POSTGRES_ENV} unset)"] + ["-"] * 3
        )
    rows.append(
        ["load average (1 min) during the runs", f"{min(loads):.1f}-{max(loads):.1f}", "", "", ""]
    )
    return rows


def sync_section(*, quick: bool) -> str:
    schedules, candidates, latency = (20, 100, 20) if quick else (200, 300, 50)
    repeats = 1 if quick else 3
    out = []
    with tempfile.TemporaryDirectory(prefix="mettl-bench-sync-") as directory:
        tmp = Path(directory)
        with fake_server(
            "--schedules", str(schedules), "--candidates", str(candidates),
            "--latency-ms", str(latency),
        ) as server:  # fmt: skip
            rows = asyncio.run(_throughput(server, repeats, schedules * candidates, tmp))
        out.append(
            f"### Sync throughput: {schedules} schedules x {candidates} candidates, "
            f"{latency} ms latency, C=16 (median of {repeats}; new database each run)\n\n"
            + table(["mode", "records/s", "x export"], rows)
        )
        size = (20, 100, 20) if quick else (100, 300, 20)
        out.append(
            f"### The commands: `mettl-async sync` vs `mettl-async export`, {size[0]} x "
            f"{size[1]}, {size[2]} ms latency (each in its own process; interleaved, "
            f"median of {repeats}; whole command, start-up included)\n\n"
            + table(
                ["command", "records/s", "x export", "CPU µs/record", "every run (records/s)"],
                _commands(*size, repeats, tmp),
            )
        )

        size = (15, 20) if quick else (40, 100)
        rewrite_rows = [["SQLite", *r] for r in asyncio.run(
            _rewrites(f"sqlite:///{tmp / 'rewrites.db'}", *size)
        )]  # fmt: skip
        postgres = os.environ.get(POSTGRES_ENV)
        if postgres:

            async def on_postgres() -> list[list[Any]]:
                url, drop = await _fresh_schema(postgres)
                try:
                    return await _rewrites(url, *size)
                finally:
                    await drop()

            rewrite_rows += [["PostgreSQL", *r] for r in asyncio.run(on_postgres())]
        out.append(
            f"### Rows rewritten by a re-sync ({size[0]} x {size[1]} account)\n\n"
            + table(
                [
                    "database",
                    "re-sync of",
                    "inserted",
                    "updated",
                    "deleted",
                    "unchanged",
                    "rows whose updated_at/deleted_at moved",
                ],
                rewrite_rows,
            )
        )

        sizes = [(20, 100), (200, 100)] if quick else [(100, 1000), (1000, 1000)]
        rss_rows = []
        for s, c in sizes:
            seconds, rss = _sync_rss(s, c, tmp)
            rss_rows.append([f"{s * c:,}", f"{s} x {c}", seconds, s * c / seconds, rss])
        ratio = rss_rows[-1][-1] / rss_rows[0][-1]
        out.append(
            "### Memory: peak RSS of `mettl-async sync` into SQLite (its own process)\n\n"
            + table(
                ["records", "schedules x candidates", "seconds", "records/s", "peak RSS MB"],
                rss_rows,
            )
            + f"\n\nRSS({rss_rows[-1][0]}) / RSS({rss_rows[0][0]}) = {ratio:.2f}"
        )
    return "\n\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(sync_section(quick=args.quick))


if __name__ == "__main__":
    main()
