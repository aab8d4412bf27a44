"""``export`` and ``demo``: every candidate result to a file, with a progress line.

``demo`` is ``export`` against a fake Mettl started in-process.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

from mettl_async._client import MettlClient
from mettl_async._retry import RetryPolicy
from mettl_async.export import FORMATS, ExportOptions, ExportProgress, ExportSummary, export_results
from mettl_async.testing.data import FakeAccount

if TYPE_CHECKING:
    from tqdm import tqdm

from .common import EXIT_API, EXIT_OK, UsageError, add_api_arguments, client_from_args, positive_int

__all__ = ["ProgressLine", "register", "run_export", "summary_line"]


_positive_int = positive_int()


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
    parser.add_argument(
        "--format",
        choices=list(FORMATS),
        default="jsonl",
        help="jsonl: one line per result, as Mettl sent it; csv: one row per result, "
        "a column per field",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        required=True,
        metavar="PATH",
        help="the file to write (PATH.partial and PATH.checkpoint until it is complete)",
    )
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
    display = ProgressLine(sys.stderr, client, enabled=not quiet)
    progress = ExportProgress()
    try:
        summary = await export_results(client, options, progress=progress, on_progress=display)
    except BaseException:
        display.close()
        raise
    display.close(progress)
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
    parser.add_argument(
        "--schedules", type=_positive_int, default=40, help="schedules in the fake account"
    )
    parser.add_argument(
        "--candidates", type=_positive_int, default=500, help="candidates per schedule"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=30.0, help="the fake's delay before each answer"
    )
    parser.add_argument("--format", choices=list(FORMATS), default="jsonl", help="output format")
    parser.add_argument(
        "--output", "-o", type=Path, default=None, metavar="PATH",
        help="default: mettl-demo-results.jsonl (or .csv) here, replaced if present",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=_positive_int, default=16, metavar="N",
        help="requests in flight at once",
    )  # fmt: skip
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress, no summary")
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
