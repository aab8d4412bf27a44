"""``mettl-async webhooks trigger``: POST one webhook event to a receiver, as Mettl does.

For testing a receiver by hand, or in a script: the body is a realistic event
of the chosen kind (:mod:`mettl_async.testing.webhook_samples`, stamped now),
sent as JSON with, given credentials, both of Mettl's Basic-auth forms
(``Authorization: Basic`` and ``php-auth-user``/``php-auth-pw``). The answer's
status and body are printed on stdout. Exit codes: 0 for a 2xx answer, 1 for
any other answer, 2 for a usage error, 4 when no answer came (refused,
timed out).

``mettl_async.testing``, which sends it, is imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from mettl_async._errors import ConfigurationError
from mettl_async.webhooks import EVENT_PATHS, basic_auth_header, webhook_urls

from .common import EXIT_API, EXIT_NETWORK, EXIT_OK, UsageError, finite_float

__all__ = ["TRIGGER_KINDS", "register_trigger"]

#: The events ``trigger`` sends, by the name it takes (``start``, ``finish``, ...).
TRIGGER_KINDS: Final = {short: kind for kind, short in EVENT_PATHS.items()}
#: Where ``USER:PASS`` is read when neither --username nor --password is given
#: (the variable ``webhooks listen`` reads too).
_BASIC_AUTH_ENV: Final = "METTL_WEBHOOK_BASIC_AUTH"


_DESCRIPTION: Final = (
    "POST one realistic webhook event of EVENT to --to as Mettl does (a JSON body; with "
    "credentials, both Authorization: Basic and php-auth-user/php-auth-pw), print the "
    "answer's status and body, and exit 0 on a 2xx answer, 1 on another answer, 4 when "
    "none came."
)
#: The options that fill in the event or its credentials: flag, metavar, help.
_TEXT_OPTIONS: Final = (
    (
        "--username",
        "U",
        f"Basic-auth user (with --password; default: {_BASIC_AUTH_ENV} as USER:PASS, "
        "else no credentials)",
    ),
    ("--password", "P", "Basic-auth password (with --username)"),
    ("--access-key", "K", "the schedule's access key, sent as invitation_key (default: a sample)"),
    ("--email", "E", "the candidate's email (default: ada@example.com)"),
)


def register_trigger(subcommands: Any) -> None:
    """Add ``trigger`` to the ``webhooks`` command's subcommands."""
    help_text = "send one webhook event to a receiver, as Mettl does"
    parser = subcommands.add_parser("trigger", help=help_text, description=_DESCRIPTION)
    parser.add_argument(
        "event", choices=list(TRIGGER_KINDS), metavar="EVENT", help=", ".join(TRIGGER_KINDS)
    )
    parser.add_argument("--to", required=True, metavar="URL", help="the receiver's URL")
    for flag, metavar, text in _TEXT_OPTIONS:
        parser.add_argument(flag, metavar=metavar, help=text)
    parser.add_argument(
        "--timeout",
        type=finite_float("a number of seconds", "a finite number of seconds", positive=True),
        default=30.0,
        metavar="SECONDS",
        help="give up waiting for the answer after SECONDS (default: 30)",
    )
    parser.set_defaults(handler=_trigger)


def _credentials(args: argparse.Namespace) -> str | None:
    """``base64(user:password)`` from the flags or the environment; ``None`` for none."""
    username, password = args.username, args.password
    if username is None and password is None:
        text = os.environ.get(_BASIC_AUTH_ENV)
        if not text:
            return None
        username, colon, password = text.partition(":")
        if not colon:
            raise UsageError(f"{_BASIC_AUTH_ENV} wants USER:PASS")
    elif username is None or password is None:
        raise UsageError("give --username and --password together")
    try:
        return basic_auth_header(username, password)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None


async def _trigger(args: argparse.Namespace) -> int:
    try:
        webhook_urls(args.to)  # an absolute http(s) URL, without credentials
    except ConfigurationError as exc:
        raise UsageError(f"--to: {exc}") from None
    auth = _credentials(args)
    kind = TRIGGER_KINDS[args.event]
    fields: dict[str, Any] = {"timestamp_gmt": datetime.now(UTC).replace(microsecond=0)}
    if args.access_key is not None:
        fields["invitation_key"] = args.access_key
    if args.email is not None:
        fields["email"] = args.email

    from mettl_async.testing.callbacks import CallbackRetry, Delivery, deliver, mettl_headers
    from mettl_async.testing.webhook_samples import webhook_payload

    payload = webhook_payload(kind, **fields)
    delivery = Delivery(
        url=args.to,
        event_type=kind,
        body=orjson.dumps(payload),
        access_key=str(payload["invitation_key"]),
        email=str(payload["email"]),
        headers=mettl_headers(auth),
    )
    forms = "Authorization: Basic and php-auth-user/php-auth-pw" if auth else "no credentials"
    print(f"POST {kind.value} to {args.to} ({forms})", file=sys.stderr, flush=True)
    await deliver(delivery, retry=CallbackRetry(attempts=1, timeout=args.timeout))
    status = delivery.statuses[-1]
    if status is None:
        print(f"webhooks trigger: no answer from {args.to}: {delivery.errors[-1]}", file=sys.stderr)
        return EXIT_NETWORK
    print(f"HTTP {status}")
    if delivery.answer:
        print(delivery.answer.decode("utf-8", "replace"))
    return EXIT_OK if delivery.delivered else EXIT_API
