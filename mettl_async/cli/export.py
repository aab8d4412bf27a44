"""``export`` and ``demo``: every candidate result to a file, with a progress line.

``demo`` is ``export`` against a fake Mettl started in-process.

The format follows the extension of ``--output`` when ``--format`` is not
given (``.csv`` is CSV, anything else JSONL), and a ``--format`` that
contradicts the extension is refused. ``--output -`` writes JSONL to standard
output. An export that stops before its end (an error, Ctrl+C, SIGTERM) with
records on disk says how many, and the exact command that continues it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import sys
from pathlib import Path
from typing import IO, Any, Final

from mettl_async._client import MettlClient
from mettl_async._retry import RetryPolicy
from mettl_async.export import (
    FORMATS,
    ExportOptions,
    ExportProgress,
    ExportSummary,
    Mode,
    export_results,
    stream_results,
)
from mettl_async.testing.data import FakeAccount

from .common import EXIT_API, EXIT_OK, UsageError, add_api_arguments, client_from_args, positive_int

__all__ = ["ProgressLine", "register", "run_export", "summary_line"]


_positive_int = positive_int()

#: ``--output -``: standard output.
STDOUT: Final = "-"
#: Extensions that name a format (besides ``.<format name>`` of any registered format).
_EXTENSIONS: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected finite milliseconds >= 0, got {text!r}")
    return value


def _format_for(output: Path, given: str | None, *, flag: str = "--output") -> str:
    """The format named by ``--format``, else by the extension of the output (else JSONL)."""
    suffix = output.suffix.lower()
    implied = _EXTENSIONS.get(suffix) or (suffix[1:] if suffix[1:] in FORMATS else None)
    if given is None:
        return implied or "jsonl"
    if implied is not None and implied != given:
        raise UsageError(
            f"--format {given} does not match {flag} {output} (a .{suffix[1:]} file is "
            f"{implied}): give a matching file name, or leave out --format"
        )
    return given


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
        f"{resumed}) to {'standard output' if str(summary.output) == STDOUT else summary.output}"
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
    parser.add_argument(
        "--format",
        choices=list(FORMATS),
        default=None,
        help="default: by the extension of PATH (.csv: csv), else jsonl",
    )
    parser.add_argument(
        "--output", "-o", type=Path, required=True, metavar="PATH",
        help="the file to write, in an existing directory; '-' writes JSONL to standard output",
    )  # fmt: skip
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted export")
    again.add_argument("--overwrite", action="store_true", help="replace PATH / start over")
    parser.add_argument("--include-recommendation", action="store_true", help="ask for ir")
    parser.add_argument("--include-essay-responses", action="store_true", help="ask for qr")
    parser.add_argument(
        "--csv-raw",
        action="store_true",
        help="CSV: write cells as they are; by default a cell starting with = + - @ (a "
        "spreadsheet formula) gets a leading '",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress, no summary")
    add_api_arguments(parser)
    parser.set_defaults(handler=_export)


def _export_options(args: argparse.Namespace) -> ExportOptions:
    if args.access_keys and not all(key.strip() for key in args.access_keys):
        raise UsageError("--access-key needs a schedule's access key, not an empty string")
    to_stdout = str(args.output) == STDOUT
    if to_stdout:
        if args.resume or args.overwrite:
            raise UsageError("--output - (standard output) cannot be resumed or overwritten")
        if args.format not in (None, "jsonl"):
            raise UsageError(
                f"--output - writes JSONL only ({args.format} is made whole at the end: "
                "write it to a file)"
            )
    fmt = "jsonl" if to_stdout else _format_for(args.output, args.format)
    if args.csv_raw and fmt != "csv":
        raise UsageError("--csv-raw is for CSV exports")
    return ExportOptions(
        output=args.output,
        format=fmt,
        access_keys=tuple(args.access_keys) if args.access_keys else None,
        concurrency=args.concurrency,
        include_recommendation=args.include_recommendation,
        include_essay_responses=args.include_essay_responses,
        mode="resume" if args.resume else "overwrite" if args.overwrite else "new",
        csv_raw=args.csv_raw,
    )


async def run_export(
    client: MettlClient,
    options: ExportOptions,
    *,
    quiet: bool,
    progress: ExportProgress | None = None,
) -> ExportSummary:
    display = ProgressLine(sys.stderr, client, enabled=not quiet)
    progress = progress if progress is not None else ExportProgress()
    try:
        if str(options.output) == STDOUT:
            summary = await _to_stdout(client, options, progress, display)
        else:
            summary = await export_results(client, options, progress=progress, on_progress=display)
    finally:
        display.close()
    if not quiet:
        print(summary_line(summary), file=sys.stderr)
    return summary


async def _to_stdout(
    client: MettlClient, options: ExportOptions, progress: ExportProgress, display: ProgressLine
) -> ExportSummary:
    stdout = sys.stdout.buffer
    try:
        return await stream_results(client, options, stdout, progress=progress, on_progress=display)
    except BrokenPipeError:
        # The reader stopped reading (``| head``): not an error of the export's. Further
        # writes to the closed pipe (at exit) would fail too: point stdout elsewhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise _ReaderGone from None


class _ReaderGone(Exception):
    """The reader of ``--output -`` closed its end of the pipe."""


async def _export(args: argparse.Namespace) -> int:
    options = _export_options(args)
    progress = ExportProgress()
    try:
        async with client_from_args(args) as client:
            await run_export(client, options, quiet=args.quiet, progress=progress)
    except _ReaderGone:
        return EXIT_OK
    except (Exception, asyncio.CancelledError) as error:
        note = _resume_note(args, options, progress)
        if note:
            error.add_note(note)
        raise
    return EXIT_OK


def _program() -> str:
    """How this command was started: ``mettl-async``, or ``python -m mettl_async``."""
    if Path(sys.argv[0]).name == "__main__.py":
        return f"{shlex.quote(Path(sys.executable).name)} -m mettl_async"
    return "mettl-async"


def resume_command(args: argparse.Namespace, options: ExportOptions) -> str:
    """The command that continues the export ``args`` asked for."""
    parts = ["export"]
    if options.access_keys is None:
        parts.append("--all")
    for key in options.access_keys or ():
        parts += ["--access-key", key]
    parts += ["--format", options.format, "--output", str(options.output)]
    flags = {
        "--include-recommendation": options.include_recommendation,
        "--include-essay-responses": options.include_essay_responses,
        "--csv-raw": options.csv_raw,
        "--quiet": args.quiet,
    }
    parts += [flag for flag, on in flags.items() if on]
    if getattr(args, "base_url", None):
        parts += ["--base-url", args.base_url]
    if getattr(args, "concurrency", None) not in (None, 16):
        parts += ["--concurrency", str(args.concurrency)]
    parts.append("--resume")
    return f"{_program()} {shlex.join(parts)}"


def _resume_note(args: argparse.Namespace, options: ExportOptions, progress: ExportProgress) -> str:
    """What to say about the files an export that stopped leaves (empty: nothing to say)."""
    if not progress.resumable:
        return ""
    kept = progress.records_kept + progress.records
    return (
        f"{options.partial} holds the {kept:,} records written so far; to continue:\n"
        f"  {resume_command(args, options)}"
    )


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
    parser.add_argument("--latency-ms", type=_milliseconds, default=30.0)
    parser.add_argument(
        "--format", choices=list(FORMATS), default=None,
        help="default: by the extension of PATH (.csv: csv), else jsonl",
    )  # fmt: skip
    parser.add_argument(
        "--output", "-o", type=Path, default=None, metavar="PATH",
        help="default: mettl-demo-results.jsonl (or .csv) here, replaced if present; "
        "a PATH you name is refused if it exists, unless --overwrite",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")
    parser.add_argument("--concurrency", type=_positive_int, default=16, metavar="N")
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.set_defaults(handler=_demo)


def _refuse_existing(output: Path) -> None:
    if os.path.lexists(output):
        raise UsageError(f"{output} exists: use --overwrite to replace it")


async def _demo(args: argparse.Namespace) -> int:
    from mettl_async.testing import FakeMettl, FakeMettlServer

    mode: Mode
    if args.output is None:
        fmt = args.format or "jsonl"
        output = Path(f"mettl-demo-results.{fmt}")  # the demo's own file: replaced
        mode = "overwrite"
    else:
        if str(args.output) == STDOUT:
            raise UsageError("demo writes a file: give --output a file name")
        fmt = _format_for(args.output, args.format)
        output = args.output
        mode = "overwrite" if args.overwrite else "new"  # as export: never replaced unasked
        if mode == "new":
            _refuse_existing(output)
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
                output=output, format=fmt, concurrency=args.concurrency, mode=mode
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
