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
import collections
import io
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

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

if TYPE_CHECKING:
    from tqdm import tqdm

from .common import (
    DEFAULT_CONCURRENCY,
    EXIT_API,
    EXIT_OK,
    UsageError,
    add_api_arguments,
    check_access_keys,
    client_from_args,
    finite_float,
    positive_int,
    silence_stdout,
)

__all__ = ["ProgressLine", "register", "run_export", "summary_line"]


_positive_int = positive_int()
_milliseconds = finite_float("milliseconds", "finite milliseconds", positive=False)

#: ``--output -``: standard output.
STDOUT: Final = "-"
#: Extensions that name a format (besides ``.<format name>`` of any registered format).
_EXTENSIONS: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


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


#: Seconds of history behind the records-per-second figure (and so the ETA).
RATE_WINDOW: Final = 10.0
#: Seconds between two plain progress lines when stderr is not a terminal.
PLAIN_INTERVAL: Final = 10.0


class ProgressLine:
    """The export's progress on ``stream``: a bar on a terminal, plain lines elsewhere.

    On a terminal, a tqdm bar redrawn at each report: the percentage of the
    records Mettl's ``totalRecords`` announced (``~`` while some schedules
    have not begun, their size estimated from the others), records per
    second over the last :data:`RATE_WINDOW` seconds, the ETA at that rate,
    schedules, requests, retries and, once Mettl has refused a request for
    its rate, the rate the client allows itself. Elsewhere (a log, CI), the
    same figures as one plain line every ``interval`` seconds. Nothing when
    not ``enabled`` (``--quiet``).
    """

    def __init__(
        self,
        stream: IO[str],
        client: MettlClient,
        *,
        enabled: bool,
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.client = client
        self.enabled = enabled
        self.terminal = enabled and stream.isatty()
        self.interval = interval
        self.shown = False
        self._clock = clock
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._lines = 0  # plain lines written
        self._bar: tqdm[NoReturn] | None = None

    def rate(self, progress: ExportProgress) -> float:
        """Records per second over the last :data:`RATE_WINDOW` seconds (at first: so far)."""
        now, seen = self._clock(), progress.records_seen
        samples = self._samples
        samples.append((now, seen))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()
        then, seen_then = samples[0]
        if now - then >= 1.0:
            return (seen - seen_then) / (now - then)
        elapsed = progress.elapsed
        return seen / elapsed if elapsed > 0 else 0.0

    def describe(self, progress: ExportProgress, rate: float) -> str:
        """The figures, most useful first: records, ETA, rate, schedules, requests, retries."""
        stats = self.client.stats
        expected = progress.records_expected()
        seen = progress.records_seen
        if expected is None:
            records = f"{seen:,} records"
        else:
            exact = progress.schedules_total is not None and progress.schedules_begun >= (
                progress.schedules_total - progress.schedules_skipped
            )
            records = f"{seen:,}/{'' if exact else '~'}{expected:,} records"
        eta = progress.eta(rate)
        schedules = progress.schedules_total or progress.schedules_reported
        done = progress.schedules_done + progress.schedules_skipped
        parts = [
            records,
            f"ETA {_duration(eta) if eta is not None else '?'}",
            f"{rate:,.0f} records/s",
            f"schedules {done:,}/{f'{schedules:,}' if schedules is not None else '?'}",
            f"requests {stats.requests:,}",
            f"retries {stats.retries:,}",
        ]
        if stats.throttled:
            if stats.allowed_rate is not None:
                parts.append(f"throttled: {stats.allowed_rate:,.1f} req/s")
            else:
                parts.append(f"throttled: {stats.throttled:,}x")
        return " | ".join(parts)

    def __call__(self, progress: ExportProgress) -> None:
        if not self.enabled:
            return
        rate = self.rate(progress)
        if self.terminal:
            self._draw(progress, rate)
        elif progress.elapsed >= (self._lines + 1) * self.interval:
            self._lines = int(progress.elapsed // self.interval)
            expected = progress.records_expected()
            percent = (
                f"{min(100.0, 100.0 * progress.records_seen / expected):.0f}% | "
                if expected
                else ""
            )
            self.stream.write(f"progress: {percent}{self.describe(progress, rate)}\n")
            self.stream.flush()
            self.shown = True

    def _draw(self, progress: ExportProgress, rate: float) -> None:
        expected = progress.records_expected()
        text = self.describe(progress, rate)
        bar_format = _BAR_FORMAT if expected else "{desc}"
        bar = self._bar
        if bar is None:
            # Imported here: a quiet or non-terminal export does not pay for it.
            from tqdm import tqdm

            class _Bar(tqdm):  # type: ignore[type-arg]
                monitor_interval = 0  # redrawn by us at each report: no monitor thread

            sized = _terminal_sized(self.stream)
            self._bar = _Bar(
                desc=text,
                total=expected,
                initial=progress.records_seen,
                file=self.stream,
                # Follow the terminal's size; one that reports none (some pseudo-terminals
                # say 0 x 0, where tqdm would draw nothing) gets a fixed 160 columns.
                dynamic_ncols=sized,
                ncols=None if sized else 160,
                nrows=None if sized else 20,
                mininterval=0,
                leave=True,
                bar_format=bar_format,
            )  # drawn as it is made
        else:
            bar.total = expected
            bar.bar_format = bar_format
            bar.n = progress.records_seen
            bar.set_description_str(text, refresh=False)
            bar.refresh()
        self.shown = True

    def close(self, progress: ExportProgress | None = None) -> None:
        """End the display; with ``progress``, draw the final figures first."""
        if self._bar is not None:
            if progress is not None:
                self._draw(progress, self.rate(progress))
            self._bar.close()
            self._bar = None


_BAR_FORMAT: Final = "{percentage:3.0f}%|{bar}| {desc}"


def _terminal_sized(stream: IO[str]) -> bool:
    """Whether the terminal behind ``stream`` tells its columns and lines."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return size.columns > 0 and size.lines > 0


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
        help="jsonl: one line per result, as Mettl sent it; csv: one row per result, a column "
        "per field (default: by the extension of PATH, .csv: csv, else jsonl)",
    )
    parser.add_argument(
        "--output", "-o", type=Path, required=True, metavar="PATH",
        help="the file to write, in an existing directory (PATH.partial and PATH.checkpoint "
        "until it is complete); '-' writes JSONL to standard output",
    )  # fmt: skip
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted export")
    again.add_argument("--overwrite", action="store_true", help="replace PATH / start over")
    parser.add_argument(
        "--include-recommendation",
        action="store_true",
        help="ask Mettl for each result's recommendation too (the parameter "
        'ir={"recommendation":true}); it comes in the result\'s JSON',
    )
    parser.add_argument(
        "--include-essay-responses",
        action="store_true",
        help="ask Mettl for the candidates' answers to essay questions too (qr=true)",
    )
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
    check_access_keys(args.access_keys)
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
    except BaseException:
        display.close()
        raise
    display.close(progress)
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
        silence_stdout()
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


def program() -> str:
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
    if getattr(args, "concurrency", None) not in (None, DEFAULT_CONCURRENCY):
        parts += ["--concurrency", str(args.concurrency)]
    parts.append("--resume")
    return f"{program()} {shlex.join(parts)}"


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
    parser.add_argument(
        "--schedules", type=_positive_int, default=40, help="schedules in the fake account"
    )
    parser.add_argument(
        "--candidates", type=_positive_int, default=500, help="candidates per schedule"
    )
    parser.add_argument(
        "--latency-ms", type=_milliseconds, default=30.0, help="the fake's delay before each answer"
    )
    parser.add_argument(
        "--format", choices=list(FORMATS), default=None,
        help="output format (default: by the extension of PATH, .csv: csv, else jsonl)",
    )  # fmt: skip
    parser.add_argument(
        "--output", "-o", type=Path, default=None, metavar="PATH",
        help="default: mettl-demo-results.jsonl (or .csv) here, replaced if present; "
        "a PATH you name is refused if it exists, unless --overwrite",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")
    parser.add_argument(
        "--concurrency", type=_positive_int, default=DEFAULT_CONCURRENCY, metavar="N",
        help="requests in flight at once",
    )  # fmt: skip
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress, no summary")
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
