"""Receive Mettl's schedule webhooks (article 13): verify, parse, deduplicate, deliver.

A schedule can call four URLs: when a candidate starts (``startAssessment``),
finishes (``finishTest``), is graded (``gradedAssessment``) or is allowed to
resume an expired test (``candidateTestResumed``). This package turns those
calls into the typed events of :mod:`mettl_async` and hands each one to an
async callback of the application, once.

The package has a framework-neutral core, which imports no web framework:
:func:`parse_event` and :func:`event_key`, the seen-keys stores,
:func:`verify_basic_auth`, and :class:`WebhookProcessor`, which answers one call
(method, path, headers, body) with a :class:`WebhookAnswer` and holds every
decision below. Two adapters only move a request to the processor and its answer
back, and answer alike:

- :func:`asgi_app` (:class:`WebhookASGIApp`), a plain ASGI 3 application: mounted in
  Starlette or FastAPI (``app.mount("/mettl", webhooks.asgi_app(...))``), or served on
  its own by any ASGI server (uvicorn, hypercorn, granian). It needs neither Starlette
  nor FastAPI.
- :func:`create_app` (:class:`WebhookReceiver`), an ``aiohttp.web`` application, run on
  its own or added as a sub-application; imported when one of its names is first used.

:func:`with_webhooks`, :func:`webhook_urls` and :func:`basic_auth_header` give a
schedule the receiver's URLs.

Quick start::

    from aiohttp import web
    from mettl_async import webhooks

    async def on_event(event: webhooks.WebhookEvent) -> None:
        await queue.put(event)          # keep it short: enqueue, answer fast

    app = webhooks.create_app(on_event, username="mettl", password=SECRET)
    web.run_app(app, port=8080)

    # and when creating the schedule:
    sc = webhooks.with_webhooks(sc, "https://hooks.example.com/", username="mettl",
                                password=SECRET)

In a FastAPI (or Starlette) service, the same receiver is mounted beside the routes::

    from fastapi import FastAPI
    from mettl_async import webhooks

    app = FastAPI()
    app.mount("/mettl", webhooks.asgi_app(on_event, username="mettl", password=SECRET))

    # Mettl is given the mount's URL with its trailing slash (Starlette's router
    # redirects the bare /mettl to /mettl/ with a 307):
    sc = webhooks.with_webhooks(sc, "https://hooks.example.com/mettl/", username="mettl",
                                password=SECRET)

or served on its own: ``uvicorn hooks:app``, ``hypercorn hooks:app`` or
``granian --interface asgi hooks:app`` with ``app = webhooks.asgi_app(...)`` in
``hooks.py``.

What the receiver answers, in the order it checks:

- **401** (with ``WWW-Authenticate: Basic``) when credentials are configured and
  the call carries none or wrong ones. Mettl sends them twice (article 13):
  ``Authorization: Basic base64(user:password)`` and the ``php-auth-user`` /
  ``php-auth-pw`` pair; either one matching is enough. Comparisons are in
  constant time, and the body is not read.
- **413** when the body is larger than ``max_body_size`` (1 MiB by default).
- **408** when the body does not arrive within ``read_timeout`` seconds (30 by default).
- **400** with the reason when the body is not JSON, not an object, its
  ``EVENT_TYPE`` is missing or unknown, or an id has the wrong type
  (``candidate_instance_id`` and ``assessment_id`` are whole numbers, ``invitation_key``
  and ``timestamp_GMT`` strings); the start of the body is logged (WARNING,
  logger ``mettl_async``). Unknown extra fields are accepted (kept in ``raw``).
- **200** ``{"status": "delivered"}`` once the callback has returned: the
  callback is **awaited before the answer**, so a 200 means the application has
  the event.
- **200** ``{"status": "duplicate"}`` for an event already delivered: the
  callback is not called again.
- **500** when the callback raises (logged with its traceback): the event is
  *not* marked as seen, so Mettl's next delivery of it is handed over again.
- **503** (with ``Retry-After``) when the callback raises :class:`RetryLater`
  (it cannot handle the event now): not marked as seen either.
- **503** (with ``Retry-After``) when the seen-keys store fails, or when it says
  another process is handling the same event right now.

Deduplication. Each event has a key (:func:`event_key`: event type,
``candidate_instance_id``, ``invitation_key`` and ``timestamp_GMT``): a retried
delivery of one event is byte-identical, while a new event has a new timestamp
(a second ``finishTest`` after ``candidateTestResumed`` is a new event). A :class:`SeenStore`
records keys in two states: *in progress* (claimed by a delivery whose
callback is running) and *done* (the callback returned). A delivery that
arrives while the same event is in progress in this process waits for that one
to end, then answers ``duplicate`` if it succeeded or handles the event itself
if it failed. The default store, :class:`InMemorySeenStore`, keeps the last
100,000 done keys (least recently seen forgotten first) in this process; give
a shared store when several processes receive the same schedule's webhooks.

Paths. :meth:`WebhookProcessor.process` answers 404 ``not_found`` off its routes
(:func:`webhook_routes`) and 405 ``method_not_allowed`` (with ``Allow: POST``) to
another method than POST, before all of the above. Both adapters answer so:
:func:`asgi_app` below its mount, :func:`create_app` for the paths its application
routes (a middleware turns aiohttp's own 404 and 405 into the processor's answers).
:meth:`WebhookReceiver.add_routes`, which puts the routes on an application of yours,
leaves 404 and 405 to that application's router.

Slow clients. aiohttp's server waits for a request's headers up to its
``keepalive_timeout``, counted from the connection or the previous answer (75 s
under ``web.run_app``, an hour under a bare ``web.AppRunner``): give
``keepalive_timeout=15`` to either so that a request sent half-way does not
hold a connection open for long; ``mettl-async webhooks listen`` does
(``--header-timeout``). The body is bounded by the receiver's ``read_timeout``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mettl_async._errors import WebhookPayloadError
from mettl_async._models import WebhookEvent

from ._asgi import WebhookASGIApp, asgi_app
from ._auth import verify_basic_auth
from ._events import event_key, parse_event
from ._paths import EVENT_PATHS, webhook_routes
from ._processor import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_READ_TIMEOUT,
    Body,
    EventCallback,
    ReceiverOptions,
    ReceiverStats,
    RetryLater,
    WebhookAnswer,
    WebhookProcessor,
)
from ._schedule import basic_auth_header, webhook_urls, with_webhooks
from ._seen import Claim, InMemorySeenStore, SeenStore

if TYPE_CHECKING:
    from ._aiohttp import RECEIVER_KEY, WebhookReceiver, create_app

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "EVENT_PATHS",
    "RECEIVER_KEY",
    "Body",
    "Claim",
    "EventCallback",
    "InMemorySeenStore",
    "ReceiverOptions",
    "ReceiverStats",
    "RetryLater",
    "SeenStore",
    "WebhookASGIApp",
    "WebhookAnswer",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookProcessor",
    "WebhookReceiver",
    "asgi_app",
    "basic_auth_header",
    "create_app",
    "event_key",
    "parse_event",
    "verify_basic_auth",
    "webhook_routes",
    "webhook_urls",
    "with_webhooks",
]

# The aiohttp adapter, imported on first use: the core stays usable (and cheap to
# import, as ``import mettl_async`` does for parse_event) without aiohttp.web.
_AIOHTTP_NAMES = frozenset({"RECEIVER_KEY", "WebhookReceiver", "create_app"})


def __getattr__(name: str) -> Any:
    if name in _AIOHTTP_NAMES:
        from . import _aiohttp

        value = getattr(_aiohttp, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_AIOHTTP_NAMES})
