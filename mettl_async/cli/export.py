"""``export`` and ``demo``: every candidate result to a file, with a progress line.

``demo`` is ``export`` against a fake Mettl started in-process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

from mettl_async._client import MettlClient
from mettl_async._retry import RetryPolicy
from mettl_async.export import FORMATS, ExportOptions, ExportProgress, ExportSummary, export_results
from mettl_async.testing.data import FakeAccount

from .common import EXIT_API, EXIT_OK, UsageError, add_api_arguments, client_from_args, positive_int

__all__ = ["ProgressLine", "register", "run_export", "summary_line"]


_positive_int = positive_int()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """A one-line progress display on a terminal (nothing when not a terminal)."""

    def __init__(self, stream: IO[str], client: MettlClient, *, enabled: bool) -> None:
        self.stream = stream
        self.client = client
        self.enabled = enabled and stream.isatty()
        self.shown = False

    def __call__(self, progress: ExportProgress) -> None:
        if not self.enabled:
            return
        elapsed = max(progress.elapsed, 1e-9)
        total = "?" if progress.schedules_total is None else f"{progress.schedules_total:,}"
        done = progress.schedules_done + progress.schedules_skipped
        eta = progress.eta()
        line = (
            f"schedules {done:,}/{total} | records {progress.records:,} "
            f"| {progress.records / elapsed:,.0f}/s | retries {self.client.stats.retries:,} "
            f"| ETA {_duration(eta) if eta is not None else '?'}"
        )
        self.stream.write("\r" + line.ljust(79)[:120])
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def summary_line(summary: ExportSummary) -> str:
    resumed = f", {summary.resumed_records:,} kept from before" if summary.resumed_records else ""
    return (
        f"exported {summary.records:,} records from {summary.schedules:,} schedules in "
        f"{summary.seconds:.1f} s ({summary.requests:,} requests, {summary.retries:,} retries"
        f"{resumed}) to {summary.output}"
    )


# -- export ----------------------------------------------------------------------------------


def _register_export(commands: Any) -> None:
    parser = commands.add_parser(
        "export",
        help="export every candidate result to JSONL or CSV",
        description="Export candidate results to a file, safely: the file appears at OUTPUT "
        "only when complete, and --resume continues an interrupted export.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every schedule of the account")
    which.add_argument(
        "--access-key",
        action="append",
        metavar="KEY",
        dest="access_keys",
        help="a schedule's access key (repeatable)",
    )
    parser.add_argument("--format", choices=list(FORMATS), default="jsonl")
    parser.add_argument("--output", "-o", type=Path, required=True, metavar="PATH")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted export")
    again.add_argument("--overwrite", action="store_true", help="replace PATH / start over")
    parser.add_argument("--include-recommendation", action="store_true", help="ask for ir")
    parser.add_argument("--include-essay-responses", action="store_true", help="ask for qr")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress, no summary")
    add_api_arguments(parser)
    parser.set_defaults(handler=_export)


def _export_options(args: argparse.Namespace) -> ExportOptions:
    if args.access_keys and not all(key.strip() for key in args.access_keys):
        raise UsageError("--access-key needs a schedule's access key, not an empty string")
    return ExportOptions(
        output=args.output,
        format=args.format,
        access_keys=tuple(args.access_keys) if args.access_keys else None,
        concurrency=args.concurrency,
        include_recommendation=args.include_recommendation,
        include_essay_responses=args.include_essay_responses,
        mode="resume" if args.resume else "overwrite" if args.overwrite else "new",
    )


async def run_export(client: MettlClient, options: ExportOptions, *, quiet: bool) -> ExportSummary:
    progress = ProgressLine(sys.stderr, client, enabled=not quiet)
    try:
        summary = await export_results(client, options, on_progress=progress)
    finally:
        progress.close()
    if not quiet:
        print(summary_line(summary), file=sys.stderr)
    return summary


async def _export(args: argparse.Namespace) -> int:
    options = _export_options(args)
    async with client_from_args(args) as client:
        await run_export(client, options, quiet=args.quiet)
    return EXIT_OK


# -- demo ---------------------------------------------------------------------------------------


def _register_demo(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="export a fake account end to end, no Mettl account needed",
        description="Start a fake Mettl in-process with a realistic account (latency and a "
        "few faults included), export every result with progress, and print the summary.",
    )
    parser.add_argument("--schedules", type=_positive_int, default=40)
    parser.add_argument("--candidates", type=_positive_int, default=500, help="per schedule")
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--format", choices=list(FORMATS), default="jsonl")
    parser.add_argument(
        "--output", "-o", type=Path, default=None, metavar="PATH",
        help="default: mettl-demo-results.jsonl (or .csv) here, replaced if present",
    )  # fmt: skip
    parser.add_argument("--concurrency", type=_positive_int, default=16, metavar="N")
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.set_defaults(handler=_demo)


async def _demo(args: argparse.Namespace) -> int:
    from mettl_async.testing import FakeMettl, FakeMettlServer

    output = args.output or Path(f"mettl-demo-results.{args.format}")
    account = FakeAccount(args.schedules, args.candidates, seed=2022)
    fake = FakeMettl(account=account, latency=args.latency_ms / 1000.0, record=0)
    fake.set_fault_rates(E509=0.01, http429=0.005, drop=0.005)  # a bad day, survived
    async with FakeMettlServer(fake) as server:
        if not args.quiet:
            print(
                f"demo: a fake Mettl at {server.base_url} with {args.schedules:,} schedules x "
                f"{args.candidates:,} candidates, {args.latency_ms:g} ms latency and a few "
                "injected faults",
                file=sys.stderr,
            )
        retry = RetryPolicy(backoff_initial=0.05, backoff_max=1.0)
        async with server.client(max_in_flight=args.concurrency, retry=retry) as client:
            options = ExportOptions(
                output=output, format=args.format, concurrency=args.concurrency, mode="overwrite"
            )
            summary = await run_export(client, options, quiet=args.quiet)
    expected = account.total_candidates
    if summary.records != expected:
        print(f"demo: expected {expected:,} records, got {summary.records:,}", file=sys.stderr)
        return EXIT_API
    print(str(output.resolve()))
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``export`` and ``demo`` to the command line."""
    _register_export(commands)
    _register_demo(commands)
