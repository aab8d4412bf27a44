"""Serving the fake Mettl: over loopback in a test, or standalone from the command line.

:class:`FakeMettlServer` runs a :class:`~mettl_async.testing.app.FakeMettl` on
127.0.0.1 while in use; :func:`main` is ``python -m mettl_async.testing``, whose
options (:func:`add_fake_server_arguments`) ``mettl-async fake-server`` shares.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import socket
from collections.abc import Callable
from typing import Any, Self, get_args

from aiohttp import web

from mettl_async._client import MettlClient
from mettl_async._numbers import is_finite_number
from mettl_async._retry import RetryPolicy
from mettl_async.testing.app import FAULT_KINDS, FakeMettl
from mettl_async.testing.callbacks import add_callback_arguments, configure_callbacks
from mettl_async.testing.data import FakeAccount
from mettl_async.testing.state import LinkStyle

__all__ = [
    "FakeMettlServer",
    "add_fake_server_arguments",
    "fake_from_arguments",
    "free_port",
    "main",
    "serve_until_stopped",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeMettlServer:
    """Runs a :class:`FakeMettl` on 127.0.0.1 (a free port unless given) while in use."""

    def __init__(
        self,
        fake: FakeMettl | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 1.0,
        **fake_options: Any,
    ) -> None:
        self.fake = fake if fake is not None else FakeMettl(**fake_options)
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def public_key(self) -> str:
        return next(iter(self.fake.keys))

    @property
    def private_key(self) -> str:
        return self.fake.keys[self.public_key]

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        runner = web.AppRunner(
            self.fake.app(),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,  # a client that hung up cancels its handler
            shutdown_timeout=self.shutdown_timeout,
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def client(self, **options: Any) -> MettlClient:
        """A :class:`MettlClient` for this server.

        Unless given ``retry=``, it retries at once and never slows down to a
        learned rate: ``RetryPolicy(instant=True, learn_rate=False)``.
        """
        options.setdefault("base_url", self.base_url)
        options.setdefault("retry", RetryPolicy(instant=True, learn_rate=False))
        return MettlClient(self.public_key, self.private_key, **options)


# -- running the fake standalone (``python -m mettl_async.testing``) -------------------


def add_fake_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a standalone fake Mettl (shared with ``mettl-async fake-server``)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--schedules", type=int, default=20, help="schedules in the account")
    parser.add_argument("--candidates", type=int, default=300, help="candidates per schedule")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument("--no-total-records", action="store_true", help="omit paging.totalRecords")
    parser.add_argument(
        "--link-style",
        default="absolute-stale",
        choices=get_args(LinkStyle),
        help="shape of paging.next/previous links",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"inject a fault at random, e.g. E509=0.02 (kinds: {', '.join(FAULT_KINDS)}); "
        "repeatable",
    )
    parser.add_argument("--warm", action="store_true", help="generate every record before serving")
    busy = parser.add_argument_group(
        "a busy account",
        "records arrive and leave while a listing is walked, on every paged listing "
        "(candidates, schedules, assessments), and pages come back out of order",
    )
    busy.add_argument(
        "--arrival-every",
        type=int,
        default=0,
        metavar="N",
        help="a new record at the front of the listing asked for, before every N-th listing "
        "request (all listings counted together)",
    )
    busy.add_argument(
        "--deletion-every",
        type=int,
        default=0,
        metavar="M",
        help="a record of the listing asked for, chosen at random, deleted before every M-th "
        "listing request",
    )
    busy.add_argument(
        "--late-share",
        type=float,
        default=0.0,
        metavar="X",
        help="share of listing requests answered late, read after the wait (0..1)",
    )
    busy.add_argument(
        "--late-ms",
        type=float,
        default=250.0,
        metavar="D",
        help="how late those answers are, in milliseconds (default: 250)",
    )
    limits = parser.add_argument_group(
        "rate limits",
        "refuse requests beyond a rate as Mettl does: E509 in an HTTP 200 body, or HTTP 429 "
        "with Retry-After: 1 (half each by default)",
    )
    limits.add_argument(
        "--rate", type=float, metavar="R", help="token bucket: R requests a second (default: none)"
    )
    limits.add_argument(
        "--burst",
        type=float,
        metavar="B",
        help="token bucket: up to B requests at once (default: half a second's worth)",
    )
    limits.add_argument(
        "--window-limit",
        type=int,
        metavar="N",
        help="fixed window: at most N requests per window (default: none)",
    )
    limits.add_argument(
        "--window", type=float, default=1.0, metavar="S", help="fixed window length in seconds"
    )
    limits.add_argument(
        "--http429-share",
        type=float,
        default=0.5,
        metavar="X",
        help="share of refusals answered HTTP 429 rather than E509 in a 200 (0..1)",
    )
    add_callback_arguments(parser)


def _check_finite(args: argparse.Namespace) -> None:
    """Refuse ``nan`` and ``inf`` (and a negative latency), which argparse's ``float`` takes.

    ``--latency-ms nan`` was taken as no latency at all and ``inf`` as never answering.
    """
    if not is_finite_number(args.latency_ms) or args.latency_ms < 0:
        raise ValueError(f"--latency-ms expects finite milliseconds >= 0, got {args.latency_ms!r}")
    for flag, every in (
        ("--arrival-every", args.arrival_every),
        ("--deletion-every", args.deletion_every),
    ):
        if every < 0:
            raise ValueError(f"{flag} expects an integer >= 0 (0: never), got {every!r}")
    if not is_finite_number(args.late_ms) or args.late_ms < 0:
        raise ValueError(f"--late-ms expects finite milliseconds >= 0, got {args.late_ms!r}")
    if not is_finite_number(args.late_share) or not 0 <= args.late_share <= 1:
        raise ValueError(f"--late-share expects a share from 0 to 1, got {args.late_share!r}")
    for flag, value in (
        ("--rate", args.rate),
        ("--burst", args.burst),
        ("--window", args.window),
        ("--http429-share", args.http429_share),
    ):
        if value is not None and not is_finite_number(value):
            raise ValueError(f"{flag} expects a finite number, got {value!r}")


def fake_from_arguments(args: argparse.Namespace) -> FakeMettl:
    """A :class:`FakeMettl` configured from :func:`add_fake_server_arguments` options.

    Raises ``ValueError`` naming the option for a value it cannot take.
    """
    _check_finite(args)
    account = FakeAccount(args.schedules, args.candidates, seed=args.seed)
    fake = FakeMettl(
        account=account,
        latency=args.latency_ms / 1000.0,
        total_records=not args.no_total_records,
        link_style=args.link_style,
        seed=args.seed,
        record=0,
        arrival_every=args.arrival_every,
        deletion_every=args.deletion_every,
        late_share=args.late_share,
        late_delay=args.late_ms / 1000.0,
    )
    rates: dict[str, float] = {}
    for item in args.fault:
        kind, _, text = item.partition("=")
        try:
            rate = float(text)
        except ValueError:
            rate = math.nan
        if kind not in FAULT_KINDS or not 0 <= rate <= 1:
            raise ValueError(
                f"--fault expects KIND=RATE with KIND one of {', '.join(FAULT_KINDS)} "
                f"and RATE from 0 to 1, got {item!r}"
            )
        rates[kind] = rate
    fake.set_fault_rates(rates)  # type: ignore[arg-type]
    if args.burst is not None and args.rate is None:
        raise ValueError("--burst needs --rate")
    if args.rate is not None or args.window_limit is not None:
        fake.set_rate_limit(
            args.rate,
            args.burst,
            window_limit=args.window_limit,
            window=args.window,
            http429_share=args.http429_share,
        )
    configure_callbacks(fake.callbacks, args)
    if args.warm:
        for schedule in account.schedules:
            for j in schedule.order():
                account.candidate_bytes(schedule, j, ir=False, qr=False)
    return fake


async def serve_until_stopped(server: FakeMettlServer, *, announce: Callable[[str], None]) -> None:
    """Run ``server`` until SIGINT or SIGTERM, after announcing where it listens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        announce(server.base_url)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mettl_async.testing", description="Run a fake Mettl server."
    )
    add_fake_server_arguments(parser)
    args = parser.parse_args(argv)
    try:
        fake = fake_from_arguments(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits 2 with the usage line
    server = FakeMettlServer(fake, host=args.host, port=args.port)

    def announce(base_url: str) -> None:
        print(f"READY {base_url} {server.public_key} {server.private_key}", flush=True)

    asyncio.run(serve_until_stopped(server, announce=announce))


if __name__ == "__main__":
    main()
