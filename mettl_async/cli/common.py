"""What the command line's modules share: usage errors, argument types, the API client.

It imports none of them, so each command module imports it directly, without cycles.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Final

from mettl_async._client import MettlClient
from mettl_async._errors import ConfigurationError, MettlError
from mettl_async._numbers import is_finite_number

EXIT_OK: Final = 0
EXIT_API: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = 3
EXIT_NETWORK: Final = 4
#: The database commands' own (``sync``, ``webhooks listen --database``).
EXIT_DATABASE_UNAVAILABLE: Final = 5
EXIT_DATABASE_LOST: Final = 6
EXIT_DATABASE_FULL: Final = 7
EXIT_SPOOL_FULL: Final = 8
EXIT_INTERRUPTED: Final = 130
#: Requests in flight at once unless ``--concurrency`` says otherwise.
DEFAULT_CONCURRENCY: Final = 16


class UsageError(MettlError):
    """The command line asked for something impossible (exit code 2)."""


def positive_int(what: str = "a whole number") -> Callable[[str], int]:
    """An argparse type for whole numbers >= 1; errors name ``what`` was expected."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected {what} >= 1, got {value}")
        return value

    return convert


def finite_float(what: str, finite: str, *, positive: bool) -> Callable[[str], float]:
    """An argparse type for finite numbers > 0 (``positive``) or >= 0.

    ``nan`` and ``inf`` parse as floats but are refused. Errors say ``what``
    was expected, or the ``finite`` kind with its bound.
    """
    bound = "> 0" if positive else ">= 0"

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not is_finite_number(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"expected {finite} {bound}, got {text!r}")
        return value

    return convert


def check_access_keys(access_keys: list[str] | None) -> None:
    """Refuse an empty or blank ``--access-key`` (a schedule's key is never empty)."""
    if access_keys and not all(key.strip() for key in access_keys):
        raise UsageError("--access-key needs a schedule's access key, not an empty string")


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that writes to a pipe whose reader left cannot fail.

    For ``mettl-async ... | head``: the interpreter's final flush would raise otherwise.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (tests): nothing to protect
        pass
    finally:
        os.close(devnull)


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """``--base-url`` and ``--concurrency``, for commands that call the API."""
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="Mettl API host, without /v2 (default: METTL_BASE_URL, else "
        "https://api.mettl.com; the EU host is https://api.mercermettl.eu)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int(),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="requests in flight at once",
    )


#: The library's configuration errors name Python keywords (``base_url``, ``public_key=``);
#: on the command line they name its flags and environment variables instead.
_SPOKEN_ON_THE_COMMAND_LINE: Final = (
    (", or pass public_key= and private_key=", ""),
    (" (api_version= chooses the version)", ""),
    ("base_url", "the base URL (--base-url or METTL_BASE_URL)"),
)


def client_from_args(args: argparse.Namespace) -> MettlClient:
    """A client from the environment's keys, ``--base-url`` and ``--concurrency``.

    A configuration error names the flag or environment variable to fix, never a
    Python keyword argument.
    """
    try:
        return MettlClient.from_env(
            base_url=getattr(args, "base_url", None) or None,
            max_in_flight=getattr(args, "concurrency", None) or DEFAULT_CONCURRENCY,
        )
    except ConfigurationError as error:
        message = str(error)
        for python, command_line in _SPOKEN_ON_THE_COMMAND_LINE:
            message = message.replace(python, command_line)
        raise UsageError(message) from None
