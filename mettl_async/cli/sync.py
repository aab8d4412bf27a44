"""``sync``: every candidate result into a database (SQLite by default, or PostgreSQL).

The first run creates the tables; every later run updates what changed, marks
what disappeared, and records itself in ``sync_runs``. See
:mod:`mettl_async.sync`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import sys
from typing import Any, Final

from mettl_async.sync import (
    DEFAULT_DATABASE_URL,
    DatabaseTimeouts,
    SyncSummary,
    WalkProgress,
    sync_results,
)
from mettl_async.sync.base import DEFAULT_TIMEOUTS, redact_url
from mettl_async.sync.database import sqlite_path

from .common import (
    EXIT_DATABASE_FULL,
    EXIT_DATABASE_LOST,
    EXIT_DATABASE_UNAVAILABLE,
    EXIT_OK,
    EXIT_SPOOL_FULL,
    add_api_arguments,
    check_access_keys,
    client_from_args,
    finite_float,
)
from .export import ProgressLine, program

__all__ = [
    "DATABASE_EXIT_CODES_HELP",
    "add_timeout_arguments",
    "register",
    "summary_line",
    "timeouts_from_args",
]

#: The exit codes of a failed database, for the help of the commands that use one.
DATABASE_EXIT_CODES_HELP: Final = f"""\
  {EXIT_DATABASE_UNAVAILABLE}    the database is unreachable (refused, no answer, cannot be opened)
  {EXIT_DATABASE_LOST}    the database was lost mid-run (connection closed, a call timed out)
  {EXIT_DATABASE_FULL}    the database's disk is full
  {EXIT_SPOOL_FULL}    the spool directory (TMPDIR) is full"""

_seconds = finite_float("a number of seconds", "a finite number of seconds", positive=True)


#: Each timeout's option, the field of DatabaseTimeouts it sets, and its help.
_TIMEOUT_OPTIONS: Final = (
    ("--database-connect-timeout", "connect", "give up connecting to the database after SECONDS"),
    (
        "--database-timeout",
        "statement",
        "give up a database call (a query, a page of rows, the wait for another writer's "
        "lock) after SECONDS",
    ),
    ("--database-commit-timeout", "commit", "give up a database COMMIT after SECONDS"),
)


def add_timeout_arguments(
    parser: argparse.ArgumentParser, defaults: DatabaseTimeouts = DEFAULT_TIMEOUTS
) -> None:
    """``--database-connect-timeout``, ``--database-timeout``, ``--database-commit-timeout``."""
    for flag, field, text in _TIMEOUT_OPTIONS:
        parser.add_argument(
            flag, type=_seconds, default=getattr(defaults, field), metavar="SECONDS", help=text
        )


def timeouts_from_args(args: argparse.Namespace) -> DatabaseTimeouts:
    """The :class:`DatabaseTimeouts` of the options of :func:`add_timeout_arguments`."""
    return DatabaseTimeouts(
        **{
            field: getattr(args, flag.lstrip("-").replace("-", "_"))
            for flag, field, _ in _TIMEOUT_OPTIONS
        }
    )


def summary_line(summary: SyncSummary) -> str:
    gone = f", {summary.schedules_deleted:,} schedules gone" if summary.schedules_deleted else ""
    skipped = f", {summary.skipped:,} without an email skipped" if summary.skipped else ""
    return (
        f"synced {summary.records:,} results from {summary.schedules:,} schedules in "
        f"{summary.seconds:.1f} s into {summary.database} (run {summary.run_id}): "
        f"{summary.inserted:,} new, {summary.updated:,} updated, {summary.unchanged:,} unchanged, "
        f"{summary.deleted:,} deleted{gone}{skipped} ({summary.requests:,} requests, "
        f"{summary.retries:,} retries)"
    )


def register(commands: Any) -> None:
    """Add ``sync`` to the command line."""
    parser = commands.add_parser(
        "sync",
        help="mirror every candidate result into a database (SQLite or PostgreSQL)",
        description="Bring a database up to date with every candidate result of the account: "
        "new results inserted, changed ones updated (unchanged rows are not rewritten), "
        "results Mettl no longer lists marked deleted_at. Each schedule is committed in one "
        "transaction; after an interruption, run it again.",
        epilog=DATABASE_EXIT_CODES_HELP,
    )
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE_URL,
        metavar="URL",
        help=f"sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB (default: "
        f"{DEFAULT_DATABASE_URL}, a file in the current directory)",
    )
    parser.add_argument(
        "--access-key",
        action="append",
        metavar="KEY",
        dest="access_keys",
        help="only this schedule (repeatable; default: every schedule of the account)",
    )
    add_timeout_arguments(parser)
    parser.add_argument(
        "--writer",
        choices=("thread", "process"),
        default="thread",
        help="where the database's work runs: a thread of this process, or a process of "
        "its own beside the walk (POSIX only; it costs more CPU, and measured slower on "
        "two cores)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress, no summary")
    add_api_arguments(parser)
    parser.set_defaults(handler=_sync)


async def _sync(args: argparse.Namespace) -> int:
    check_access_keys(args.access_keys)
    writer = args.writer
    if sqlite_path(args.database) == ":memory:":
        writer = "thread"  # a database in memory lives in this process
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(client_from_args(args))
        line = ProgressLine(sys.stderr, client, enabled=not args.quiet)
        try:
            summary = await sync_results(
                client,
                args.database,
                timeouts=timeouts_from_args(args),
                writer=writer,
                access_keys=args.access_keys,
                concurrency=args.concurrency,
                progress=WalkProgress(),
                on_progress=line,
            )
        except asyncio.CancelledError as error:
            error.add_note(
                "every schedule committed so far is kept; run the same command again to "
                f"continue:\n  {program()} {shlex.join(_shown(args.argv))}"
            )
            raise
        finally:
            line.close()
    if not args.quiet:
        print(summary_line(summary), file=sys.stderr)
    return EXIT_OK


def _shown(argv: list[str]) -> list[str]:
    """``argv`` as it may be printed: a database URL's password hidden (``***``)."""
    return [redact_url(arg) if "://" in arg else arg for arg in argv]
