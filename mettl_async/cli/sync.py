"""``sync``: every candidate result into a database (SQLite by default, or PostgreSQL).

The first run creates the tables; every later run updates what changed, marks
what disappeared, and records itself in ``sync_runs``. See
:mod:`mettl_async.sync`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mettl_async.sync import DEFAULT_DATABASE_URL, SyncSummary, WalkProgress, sync_results

from .common import EXIT_OK, add_api_arguments, check_access_keys, client_from_args
from .export import ProgressLine

__all__ = ["register", "summary_line"]


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
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress, no summary")
    add_api_arguments(parser)
    parser.set_defaults(handler=_sync)


async def _sync(args: argparse.Namespace) -> int:
    check_access_keys(args.access_keys)
    async with client_from_args(args) as client:
        line = ProgressLine(sys.stderr, client, enabled=not args.quiet)
        try:
            summary = await sync_results(
                client,
                args.database,
                access_keys=args.access_keys,
                concurrency=args.concurrency,
                progress=WalkProgress(),
                on_progress=line,
            )
        finally:
            line.close()
    if not args.quiet:
        print(summary_line(summary), file=sys.stderr)
    return EXIT_OK
