"""``fake-server``: serve a fake Mettl with a generated account until Ctrl+C.

``mettl_async.testing`` is imported when the command runs, so that the other
commands start without loading the server side of aiohttp.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import EXIT_OK, UsageError

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``fake-server`` to the command line."""
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

    limit = fake.rate_limit
    limits = []
    if limit.rate is not None:
        burst = limit.burst if limit.burst is not None else max(1.0, limit.rate / 2)
        limits.append(f"{limit.rate:g} requests/s, burst {burst:g}")
    if limit.window_limit is not None:
        limits.append(f"{limit.window_limit} requests per {limit.window:g} s window")
    limited = f"; rate limit: {' and '.join(limits)}" if limits else ""
    every = fake.callbacks.activity_every
    if every is not None:
        limited += f"; a webhook step every {every:g} s on schedules with webhook URLs"

    def announce(base_url: str) -> None:
        print(
            f"Fake Mettl listening on {base_url} "
            f"({args.schedules:,} schedules x {args.candidates:,} candidates{limited})\n"
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
