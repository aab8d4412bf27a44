"""The ``mettl-async`` command line.

Credentials come from ``METTL_PUBLIC_KEY`` and ``METTL_PRIVATE_KEY`` only (a
flag would sit in shell history); the base URL from ``--base-url`` or
``METTL_BASE_URL``. Exit codes: 0 success, 1 other API errors, 2 usage errors,
3 authentication or timestamp errors, 4 network failure after retries, 5-8 the
database of ``sync`` or ``webhooks listen`` (unreachable, lost, full; the spool
full), 130 interrupted (Ctrl+C), 143 terminated (SIGTERM). A failure prints one line on
stderr; ``--debug`` adds the traceback and a DEBUG log of every request.
SIGINT and SIGTERM stop a command cleanly: the running task is cancelled, so an
export commits what it wrote and says how to resume; a second signal stops at once.

Commands register themselves with :func:`build_parser` through a
``register(subcommands)`` function; each sets ``handler``, an async function
of the parsed arguments returning the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from mettl_async import __version__
from mettl_async._errors import (
    AuthenticationError,
    ConfigurationError,
    DecodeError,
    IncompleteListingError,
    MettlError,
    PermissionDeniedError,
    RequestError,
    TimestampError,
    TransportError,
    ValidationError,
)
from mettl_async.export import (
    ExportError,
)
from mettl_async.sync import (
    DatabaseFullError,
    DatabaseLostError,
    DatabaseUnavailableError,
    SpoolFullError,
)

from . import api, export, fake_server, sync, webhooks
from .common import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_DATABASE_FULL,
    EXIT_DATABASE_LOST,
    EXIT_DATABASE_UNAVAILABLE,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_SPOOL_FULL,
    EXIT_USAGE,
    UsageError,
    client_from_args,
    silence_stdout,
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
    for kind, code in _DATABASE_EXIT_CODES:
        if isinstance(cause, kind):
            return code
    return EXIT_API


_DATABASE_EXIT_CODES: Final = (
    (DatabaseUnavailableError, EXIT_DATABASE_UNAVAILABLE),
    (DatabaseLostError, EXIT_DATABASE_LOST),
    (DatabaseFullError, EXIT_DATABASE_FULL),
    (SpoolFullError, EXIT_SPOOL_FULL),
)


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
    if isinstance(cause, RequestError) and cause.status == 404 and cause.url:
        path = urlsplit(cause.url).path
        if not re.match(r"/v[123]/", path):
            # The base URL has a path of its own: Mettl's API is at its host's root.
            prefix = re.sub(r"/v[123]/.*$", "", path) or path
            return (
                f"hint: the base URL has a path ({prefix}); Mettl's API answers at the root "
                "of its host, as in https://api.mettl.com: check METTL_BASE_URL / --base-url"
            )
    if isinstance(cause, DecodeError):
        return "hint: that answer was not Mettl's: check METTL_BASE_URL / --base-url"
    return ""


def describe(error: BaseException) -> str:
    """One line for stderr (validation errors keep their list of problems)."""
    text = str(error) if isinstance(error, MettlError) else f"{type(error).__name__}: {error}"
    cause = _root_cause(error)
    already = isinstance(cause, RequestError) and cause.hint is not None and cause.hint in text
    hint = _hint(error)
    if hint and not already:
        text = f"{text}\n{hint}"
    for note in getattr(error, "__notes__", ()):
        text = f"{text}\n{note}"  # what a command adds, such as how to resume an export
    return text


# -- the parser and main -----------------------------------------------------------------------


EXIT_CODES_HELP: Final = """\
exit codes:
  0    success
  1    an API error (Mettl refused or failed the request)
  2    a usage error: bad flags, missing keys, an invalid base URL, an existing or
       unwritable output
  3    authentication or timestamp error (check the keys, or this machine's clock)
  4    network failure after retries
  130  interrupted (Ctrl+C)
  143  terminated (SIGTERM)"""

#: What a newcomer types first; shown by ``mettl-async`` alone and its --help.
EXAMPLES_HELP: Final = """\
examples:
  mettl-async demo                                   a fake account exported end to end
  mettl-async export --all --output results.jsonl    every result of the account
  mettl-async sync --database results.db             mirror them into SQLite
  mettl-async webhooks listen --output events.jsonl  receive Mettl's webhooks
  mettl-async COMMAND --help                         a command's options"""

#: An example for each command that needs arguments, shown when they are missing.
COMMAND_EXAMPLES: Final = {
    "export": "mettl-async export --all --output results.jsonl",
    "account": "mettl-async account show",
    "assessments": "mettl-async assessments list",
    "schedules": "mettl-async schedules list",
    "result": "mettl-async result show --access-key KEY --email someone@example.com",
    "result show": "mettl-async result show --access-key KEY --email someone@example.com",
    "candidates": "mettl-async candidates register --access-key KEY --email someone@example.com",
    "webhooks": "mettl-async webhooks listen --output events.jsonl",
}


class Parser(argparse.ArgumentParser):
    """An argument parser that says what is missing, with an example, instead of only
    ``the following arguments are required``.

    A command group run without its command (``mettl-async``, ``mettl-async webhooks``)
    prints its whole help: every command with one line, and examples. A command missing
    its required options names all of them (argparse names only the first kind: the
    options, not a required choice such as ``--all`` or ``--access-key``), then an example.
    """

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required"):
            example = COMMAND_EXAMPLES.get(self.prog.removeprefix("mettl-async").strip())
            shown = f"\nexample: {example}" if example else ""
            if _subcommands(self) is not None and not _given_options(self, message):
                self.print_help(sys.stderr)
                self.exit(EXIT_USAGE, shown.lstrip("\n") + "\n" if shown else None)
            needs = _needs(self)
            if needs:
                message = f"{message}\n{self.prog} needs {needs}"
            message += shown
        super().error(message)


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _given_options(parser: argparse.ArgumentParser, message: str) -> bool:
    """Whether the missing argument is an option rather than the command itself."""
    action = _subcommands(parser)
    return action is None or str(action.metavar) not in message


def _shown(action: argparse.Action) -> str:
    flag = action.option_strings[0] if action.option_strings else str(action.metavar)
    if action.nargs == 0 or not action.option_strings:
        return flag
    return f"{flag} {action.metavar or action.dest.upper()}"


def _needs(parser: argparse.ArgumentParser) -> str:
    """Every requirement of ``parser``: required choices (``--all or --access-key KEY``)
    and required options, in the order of its usage line."""
    parts = [
        " or ".join(_shown(action) for action in group._group_actions)
        for group in parser._mutually_exclusive_groups
        if group.required
    ]
    parts += [
        _shown(action) for action in parser._actions if action.required and action.option_strings
    ]
    if len(parts) < 2:
        return ""  # argparse's message already names the one requirement
    return ", and ".join(parts)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, unless the help already tells it in words.

    Flags (off unless given) and options without a default say nothing more. A
    description or epilog laid out in lines (the exit codes) keeps its lines.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
            or not action.option_strings
        ):
            return text
        return super()._get_help_string(action)


def _with_exit_codes(own: str | None) -> str:
    """The exit codes, with a command's own (its epilog, lines like those) before 130."""
    if not own:
        return EXIT_CODES_HELP
    head, interrupted, last = EXIT_CODES_HELP.partition("\n  130 ")
    return f"{head}\n{own.rstrip()}{interrupted}{last}"


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every parser of its subcommands, at any depth."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found.extend(_parsers(sub))
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mettl-async",
        description="Command line of mettl-async, the async client for the Mettl Examine API. "
        "Credentials come from METTL_PUBLIC_KEY and METTL_PRIVATE_KEY; the host from "
        "--base-url or METTL_BASE_URL.",
        epilog=f"{EXAMPLES_HELP}\n\n{EXIT_CODES_HELP}",
    )
    parser.add_argument("--version", action="version", version=f"mettl-async {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="log every request and show tracebacks"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _COMMANDS:
        register(commands)
    for each in _parsers(parser):
        each.formatter_class = HelpFormatter
        if each is not parser:
            # --debug after the subcommand too; SUPPRESS keeps a --debug given before it.
            each.add_argument(
                "--debug",
                action="store_true",
                default=argparse.SUPPRESS,
                help="log every request and show tracebacks",
            )
            each.epilog = _with_exit_codes(each.epilog)
    return parser


_COMMANDS: list[Callable[[Any], None]] = [
    export.register,
    fake_server.register,
    api.register,
    webhooks.register,
    sync.register,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    # argparse reports usage errors itself, with exit code 2.
    args = parser.parse_args(argv)
    # What was typed, for the commands that print how to run them again.
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.debug:
        logging.basicConfig(
            level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )
    handler: Handler = args.handler
    started = time.monotonic()
    try:
        return asyncio.run(_stoppable(handler, args))
    except (KeyboardInterrupt, _Stopped) as error:
        signum = error.signum if isinstance(error, _Stopped) else signal.SIGINT
        name = "terminated" if signum == signal.SIGTERM else "interrupted"
        notes = "".join(f"\n{note}" for note in getattr(error, "__notes__", ()))
        print(
            f"\nmettl-async: {name} after {time.monotonic() - started:.1f} s{notes}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED if signum == signal.SIGINT else 128 + signum
    except Exception as error:
        if _reader_left(error):
            silence_stdout()  # `mettl-async ... | head`: the reader has what it wanted
            return EXIT_OK
        if args.debug:
            traceback.print_exc()
        print(f"mettl-async: error: {describe(error)}", file=sys.stderr)
        return exit_code_for(error)


class _Stopped(Exception):
    """A command cancelled by SIGINT or SIGTERM (the notes of its cancellation kept)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


async def _stoppable(handler: Handler, args: argparse.Namespace) -> int:
    """Run ``handler``; SIGINT or SIGTERM cancels it (once: a second signal ends the process)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    stopped: list[int] = []

    def on_signal(signum: int) -> None:
        if stopped:  # asked twice: stop now, the default way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stopped.append(signum)
        if task is not None:
            # The reason travels with the cancellation: a sync records it in sync_runs.
            name = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (SIGINT)"
            task.cancel(name)

    installed = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, on_signal, signum)
                installed.append(signum)
    try:
        return await handler(args)
    except asyncio.CancelledError as error:
        if not stopped or task is None:
            raise
        task.uncancel()
        stop = _Stopped(stopped[0])
        for note in getattr(error, "__notes__", ()):
            stop.add_note(note)
        raise stop from None
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _reader_left(error: BaseException | None) -> bool:
    """Whether a write to stdout failed because its reader closed the pipe (``| head``)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, BrokenPipeError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def main_entry() -> None:
    """The ``mettl-async`` console script (and ``python -m mettl_async``).

    A reader that leaves (``mettl-async account show | head -1``) ends the command
    quietly with its own exit code (0 when it succeeded): the interpreter's last flush
    of stdout would otherwise print a BrokenPipeError at exit.
    """
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    raise SystemExit(code)
