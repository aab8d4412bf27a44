"""``mettl-async webhooks listen``: capture Mettl's webhook calls to a JSONL file.

For an integration: run it behind an https tunnel or proxy, point a schedule's
four URLs at it, take a test, and read what Mettl really sent. Each accepted
event is one line, flushed as soon as it is written::

    {"received_at": "2024-05-01T09:27:01.123456+00:00", "event_type": "finishTest",
     "key": "finishTest:99999999:0x0x0x0x0x:Fri, 29 Oct 2021 09%3A27%3A01 GMT",
     "payload": {... the JSON as Mettl sent it ...}}

The listener is :class:`mettl_async.webhooks.WebhookReceiver`, with its
answers (401, 400, 413, duplicates); the file is appended to, never replaced.
With ``--database`` it outlives its database: while the database is away
(restarting, frozen, full) deliveries are answered 503 with ``Retry-After``,
the outage is logged once and its end once, and the connection is made again
when it is back; ``GET /healthz`` answers 200, or 503 with the reason.
The credentials come from ``--basic-auth USER:PASS`` or, to keep them out of
shell history, ``METTL_WEBHOOK_BASIC_AUTH``; they are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson
from aiohttp import web

from mettl_async._errors import ConfigurationError
from mettl_async._models import ScheduleSettings, wire_names
from mettl_async.sync import DatabaseTimeouts, ResultUpdater, open_database
from mettl_async.sync.live import OutageLogFilter
from mettl_async.webhooks import WebhookEvent, WebhookReceiver, event_key, webhook_urls
from mettl_async.webhooks._schedule import URL_FIELDS

from .common import EXIT_OK, UsageError, client_from_args, finite_float
from .sync import DATABASE_EXIT_CODES_HELP, add_timeout_arguments, timeouts_from_args
from .webhooks_trigger import register_trigger

__all__ = ["BASIC_AUTH_ENV", "HEALTH_PATH", "LISTENER_TIMEOUTS", "register"]

#: Where ``webhooks listen`` reads ``USER:PASS`` when ``--basic-auth`` is not given.
BASIC_AUTH_ENV: Final = "METTL_WEBHOOK_BASIC_AUTH"
#: ``GET`` here: 200 when the listener (and its database) can take deliveries, else 503.
HEALTH_PATH: Final = "/healthz"
#: The listener's database timeouts: a delivery is answered (503 at worst) well within
#: the time a sender waits for it.
LISTENER_TIMEOUTS: Final = DatabaseTimeouts(connect=5.0, statement=5.0, commit=10.0)


def register(commands: Any) -> None:
    """Add ``webhooks`` (with its ``listen`` subcommand) to the command line."""
    parser = commands.add_parser(
        "webhooks",
        help="receive Mettl's schedule webhooks",
        description="Tools for Mettl's schedule webhooks (article 13).",
    )
    subcommands = parser.add_subparsers(dest="webhooks_command", metavar="SUBCOMMAND")
    subcommands.required = True
    listen = subcommands.add_parser(
        "listen",
        help="capture webhook calls to a JSONL file",
        description="Listen for Mettl's webhook calls, verify them, and append one JSON line "
        "per accepted event (the payload as received, plus the time it arrived) to OUTPUT, "
        "and/or store the result each event is about in a synced DATABASE, until Ctrl+C or "
        f"SIGTERM. GET {HEALTH_PATH} answers 200, or 503 with the reason while the database "
        "is unavailable (deliveries are then answered 503 with Retry-After).",
        epilog=DATABASE_EXIT_CODES_HELP.split("\n", 1)[0],
    )
    listen.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    listen.add_argument(
        "--port", type=_port, default=8080, help="port (default: 8080; 0: a free one)"
    )
    listen.add_argument(
        "--basic-auth",
        metavar="USER:PASS",
        help=f"require these credentials (default: {BASIC_AUTH_ENV}, else none); the schedule's "
        "testNotificationBasicAuthHeader must be base64(USER:PASS)",
    )
    listen.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="PATH",
        help="append one JSON line per accepted event to this file",
    )
    listen.add_argument(
        "--database",
        metavar="URL",
        help="keep this synced database current (see `mettl-async sync`): on finishTest, "
        "gradedAssessment and candidateTestResumed, fetch the candidate's result and store it "
        "before answering 200 (503 if the fetch or the database fails; reconnects when the "
        "database is back)",
    )
    add_timeout_arguments(listen, LISTENER_TIMEOUTS)
    listen.add_argument(
        "--base-url",
        metavar="URL",
        help="Mettl API host for --database's fetches (default: METTL_BASE_URL, else "
        "https://api.mettl.com)",
    )
    listen.add_argument("--path", default="/", help="URL path to answer on (default: /)")
    listen.add_argument(
        "--public-url",
        metavar="URL",
        help="the https address that forwards to this listener (a tunnel or proxy), "
        "to print the URLs to configure",
    )
    listen.add_argument(
        "--header-timeout",
        type=_seconds,
        default=15.0,
        metavar="SECONDS",
        help="close a connection whose request headers are not complete within SECONDS "
        "of connecting or of the previous answer (default: 15)",
    )
    listen.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="write every delivery, even of an event already written",
    )
    listen.set_defaults(handler=_listen)
    register_trigger(subcommands)  # `webhooks trigger`: cli/webhooks_trigger.py


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


_seconds = finite_float("a number of seconds", "a finite number of seconds", positive=True)


def _credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    text = args.basic_auth if args.basic_auth is not None else os.environ.get(BASIC_AUTH_ENV)
    if not text:
        return None
    username, colon, password = text.partition(":")
    if not colon or not username or not password:
        source = "--basic-auth" if args.basic_auth is not None else BASIC_AUTH_ENV
        raise UsageError(f"{source} wants USER:PASS, both non-empty")
    return username, password


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    return sock


class _JsonlSink:
    """The application callback of ``listen``: one flushed line per event."""

    def __init__(self, file: IO[bytes], *, echo: IO[str]) -> None:
        self.file = file
        self.echo = echo
        self.written = 0

    async def __call__(self, event: WebhookEvent) -> None:
        received = datetime.now(UTC)
        key = event_key(event)
        line = {
            "received_at": received.isoformat(),
            "event_type": key.partition(":")[0],
            "key": key,
            "payload": event.raw,
        }
        self.file.write(orjson.dumps(line) + b"\n")
        self.file.flush()
        self.written += 1
        print(f"{received:%H:%M:%S} {key}", file=self.echo, flush=True)


def _announce(
    local_url: str,
    args: argparse.Namespace,
    *,
    authenticated: bool,
    output: Path | None,
    database: str | None = None,
) -> None:
    names = wire_names(ScheduleSettings)
    path = args.path if args.path != "/" else ""
    base = args.public_url.rstrip("/") + path if args.public_url else local_url
    urls = webhook_urls(base, separate_paths=True)
    auth_note = "on" if authenticated else "off"
    targets = []
    if output is not None:
        targets.append(f"appending events to {output}")
    if database is not None:
        targets.append(f"storing results in {database}")
    lines = [
        f"Listening for Mettl webhooks on {local_url} (Basic auth {auth_note}); "
        + " and ".join(targets),
        "Set these as the schedule's webhook URLs (from Python, "
        "mettl_async.webhooks.with_webhooks(settings, URL) sets them):",
    ]
    width = max(len(names[field]) for field in URL_FIELDS.values()) + 2
    lines += [f"  {names[URL_FIELDS[kind]]:<{width}}{url}" for kind, url in urls.items()]
    if authenticated:
        header = names["test_notification_basic_auth_header"]
        lines.append(f"  {header:<{width}}base64 of USER:PASS (not shown)")
    if not args.public_url:
        lines.append(
            "Mettl calls from the internet: expose this port through an https tunnel or "
            "proxy and pass its address as --public-url to print the URLs to give Mettl."
        )
    lines.append("Press Ctrl+C to stop.")
    print("\n".join(lines), flush=True)


class _Callbacks:
    """Each event to the database first (a 503 writes no line), then to the file."""

    def __init__(self, *callbacks: Any) -> None:
        self.callbacks = [callback for callback in callbacks if callback is not None]

    async def __call__(self, event: WebhookEvent) -> None:
        for callback in self.callbacks:
            await callback(event)


async def _listen(args: argparse.Namespace) -> int:
    if args.output is None and args.database is None:
        raise UsageError("give --output PATH, --database URL, or both")
    async with contextlib.AsyncExitStack() as stack:
        updater = None
        if args.database is not None:
            database = await open_database(
                args.database, timeouts=timeouts_from_args(args), reconnect=True
            )
            stack.push_async_callback(database.close)
            client = await stack.enter_async_context(client_from_args(args))
            updater = ResultUpdater(client, database)
        code = await _serve(args, updater)
    return code


async def _serve(args: argparse.Namespace, updater: ResultUpdater | None) -> int:
    credentials = _credentials(args)
    if args.public_url:
        webhook_urls(args.public_url)  # refuse a bad URL before listening
    output: Path | None = args.output.resolve() if args.output is not None else None
    if output is not None and not output.parent.is_dir():
        raise UsageError(f"--output: no directory {output.parent}")
    with contextlib.ExitStack() as files:
        sink = (
            _JsonlSink(files.enter_context(output.open("ab")), echo=sys.stderr)
            if output is not None
            else None
        )
        try:
            receiver = WebhookReceiver(
                _Callbacks(updater, sink),
                username=credentials[0] if credentials else None,
                password=credentials[1] if credentials else None,
                deduplicate=not args.keep_duplicates,
            )
            app = web.Application()
            receiver.add_routes(app, args.path, separate_paths=True)
            app.router.add_get(HEALTH_PATH, _health_handler(updater))
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
        sock = _bind(args.host, args.port)
        port = int(sock.getsockname()[1])
        local_url = f"http://{_url_host(args.host)}:{port}{args.path}"
        # aiohttp closes a connection idle for keepalive_timeout, counted from the connection
        # or the last answer, and a request whose headers are not complete is idle: this is
        # the time a client has to send its headers.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
            keepalive_timeout=args.header_timeout,
        )
        await runner.setup()
        quiet = OutageLogFilter()  # the outage is logged once, not once per delivery
        if not args.debug:
            logging.getLogger("mettl_async.webhooks").addFilter(quiet)
        try:
            await web.SockSite(runner, sock).start()
            _announce(
                local_url,
                args,
                authenticated=credentials is not None,
                output=output,
                database=updater.database.url if updater is not None else None,
            )
            await _until_stopped()
        finally:
            logging.getLogger("mettl_async.webhooks").removeFilter(quiet)
            await runner.cleanup()
    stats = receiver.stats
    refused = stats.unauthorized + stats.malformed + stats.too_large
    done = []
    if sink is not None:
        done.append(f"{counted(sink.written, 'event')} written to {output}")
    if updater is not None:
        kept = updater.stats
        outages = updater.health.outages
        done.append(
            f"{counted(kept.inserted + kept.updated, 'result')} stored in "
            f"{updater.database.url} ({kept.unchanged:,} unchanged, "
            f"{counted(kept.failed_fetches, 'failed fetch', 'failed fetches')}, "
            f"{counted(kept.failed_stores, 'failed store')}, "
            f"{counted(outages, 'database outage')})"
        )
    print(
        f"webhooks listen: {'; '.join(done)} ({counted(stats.duplicates, 'duplicate')}, "
        f"{refused:,} refused, {stats.failed:,} failed)",
        file=sys.stderr,
    )
    return EXIT_OK


def _health_handler(
    updater: ResultUpdater | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /healthz``: 200 ``{"status": "ok"}``, or 503 with the database's reason."""

    async def health(request: web.Request) -> web.Response:
        if updater is None:
            return web.json_response({"status": "ok"}, dumps=_dumps)
        reason = await updater.health.check()
        if reason is None:
            return web.json_response(
                {"status": "ok", "database": updater.database.url}, dumps=_dumps
            )
        return web.json_response(
            {"status": "unavailable", "database": updater.database.url, "reason": reason},
            status=503,
            headers={"Retry-After": str(updater.retry_after)},
            dumps=_dumps,
        )

    return health


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


async def _until_stopped() -> None:
    """Return on SIGINT or SIGTERM (or Ctrl+C where signal handlers are unavailable)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def counted(count: int, one: str, many: str | None = None) -> str:
    """``1 result``, ``2 results``: a count with its noun in the right number."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"
