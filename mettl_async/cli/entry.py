"""The ``mettl-async`` command line.

Credentials come from ``METTL_PUBLIC_KEY`` and ``METTL_PRIVATE_KEY`` only (a
flag would sit in shell history); the base URL from ``--base-url`` or
``METTL_BASE_URL``. Exit codes: 0 success, 1 other API errors, 2 usage errors,
3 authentication or timestamp errors, 4 network failure after retries, 130
interrupted. A failure prints one line on stderr; ``--debug`` adds the
traceback and a DEBUG log of every request.

Commands register themselves with :func:`build_parser` through a
``register(subcommands)`` function; each sets ``handler``, an async function
of the parsed arguments returning the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import IO, Any

from mettl_async import __version__
from mettl_async._client import MettlClient
from mettl_async._errors import (
    AuthenticationError,
    ConfigurationError,
    IncompleteListingError,
    MettlError,
    PermissionDeniedError,
    RequestError,
    TimestampError,
    TransportError,
    ValidationError,
)
from mettl_async._retry import RetryPolicy
from mettl_async.export import (
    FORMATS,
    ExportError,
    ExportOptions,
    ExportProgress,
    ExportSummary,
    export_results,
)
from mettl_async.testing.data import FakeAccount

from . import webhooks as _cli_webhooks
from .api import register as _register_api_commands
from .common import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_api_arguments,
    client_from_args,
    positive_int,
)

__all__ = [
    "EXIT_API",
    "EXIT_AUTH",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "client_from_args",
    "exit_code_for",
    "main",
]


Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


# -- errors -> one line and an exit code ------------------------------------------------


def _root_cause(error: BaseException) -> BaseException:
    """An incomplete listing is reported by what made it incomplete."""
    if isinstance(error, IncompleteListingError) and isinstance(error.__cause__, RequestError):
        return error.__cause__
    return error


def exit_code_for(error: BaseException) -> int:
    """The documented exit code of a failure."""
    cause = _root_cause(error)
    if isinstance(cause, AuthenticationError | TimestampError | PermissionDeniedError):
        return EXIT_AUTH
    if isinstance(cause, TransportError):
        return EXIT_NETWORK
    if isinstance(cause, ConfigurationError | ValidationError | ExportError | UsageError):
        return EXIT_USAGE
    return EXIT_API


def _hint(error: BaseException) -> str:
    cause = _root_cause(error)
    if isinstance(cause, AuthenticationError):
        return "hint: Mettl could not verify the signature: check METTL_PRIVATE_KEY"
    if isinstance(cause, PermissionDeniedError):
        return "hint: Mettl does not know this key or forbids the action: check METTL_PUBLIC_KEY"
    if isinstance(cause, TimestampError):
        return (
            "hint: Mettl refused the timestamp: check this machine's clock (it must be within 24 h)"
        )
    if isinstance(cause, TransportError):
        return "hint: check the network and METTL_BASE_URL / --base-url"
    return ""


def describe(error: BaseException) -> str:
    """One line for stderr (validation errors keep their list of problems)."""
    text = str(error) if isinstance(error, MettlError) else f"{type(error).__name__}: {error}"
    cause = _root_cause(error)
    already = isinstance(cause, RequestError) and cause.hint is not None and cause.hint in text
    hint = _hint(error)
    if hint and not already:
        text = f"{text}\n{hint}"
    return text


# -- shared helpers for commands -------------------------------------------------------------


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


# -- fake-server and demo --------------------------------------------------------------------


def _register_fake_server(commands: Any) -> None:
    from mettl_async.testing import add_fake_server_arguments

    parser = commands.add_parser(
        "fake-server",
        help="run a fake Mettl server with a generated account",
        description="Serve a fake Mettl (signature checks, paging, faults) until Ctrl+C.",
    )
    add_fake_server_arguments(parser)
    parser.set_defaults(handler=_fake_server)


async def _fake_server(args: argparse.Namespace) -> int:
    from mettl_async.testing import FakeMettlServer, fake_from_arguments, serve_until_stopped

    try:
        fake = fake_from_arguments(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    server = FakeMettlServer(fake, host=args.host, port=args.port)

    def announce(base_url: str) -> None:
        print(
            f"Fake Mettl listening on {base_url} "
            f"({args.schedules:,} schedules x {args.candidates:,} candidates)\n"
            "Use it with these demo keys (they are not secrets):\n"
            f"  export METTL_BASE_URL={base_url}\n"
            f"  export METTL_PUBLIC_KEY={server.public_key}\n"
            f"  export METTL_PRIVATE_KEY={server.private_key}\n"
            "  mettl-async export --all --format jsonl --output results.jsonl\n"
            "Press Ctrl+C to stop.",
            flush=True,
        )

    await serve_until_stopped(server, announce=announce)
    return EXIT_OK


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


# -- the parser and main -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mettl-async",
        description="Command line of mettl-async, the async client for the Mettl Examine API. "
        "Credentials come from METTL_PUBLIC_KEY and METTL_PRIVATE_KEY.",
        epilog="exit codes: 0 success, 1 API error, 2 usage error, 3 authentication or "
        "timestamp error, 4 network failure after retries",
    )
    parser.add_argument("--version", action="version", version=f"mettl-async {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="log every request and show tracebacks"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _COMMANDS:
        register(commands)
    return parser


_COMMANDS: list[Callable[[Any], None]] = [
    _register_export,
    _register_demo,
    _register_fake_server,
    _register_api_commands,
    _cli_webhooks.register,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    # argparse reports usage errors itself, with exit code 2.
    args = parser.parse_args(argv)
    if args.debug:
        logging.basicConfig(
            level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )
    handler: Handler = args.handler
    started = time.monotonic()
    try:
        return asyncio.run(handler(args))
    except KeyboardInterrupt:
        print(
            f"\nmettl-async: interrupted after {time.monotonic() - started:.1f} s", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(f"mettl-async: error: {describe(error)}", file=sys.stderr)
        return exit_code_for(error)


def main_entry() -> None:
    """The ``mettl-async`` console script."""
    raise SystemExit(main())
