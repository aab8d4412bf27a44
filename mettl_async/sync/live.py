"""Keeping a synced database current between syncs, from Mettl's webhooks.

:class:`ResultUpdater` is a webhook callback (give it to
:class:`~mettl_async.webhooks.WebhookReceiver` or
:func:`~mettl_async.webhooks.create_app`). For ``finishTest``,
``gradedAssessment`` and ``candidateTestResumed`` it fetches the candidate's
result (article 17, by the event's ``invitation_key`` = access key and
``email``) and upserts it, returning only once the row is committed: the
receiver's 200 then means the database has it. A failed fetch raises
:class:`~mettl_async.webhooks.RetryLater`, which the receiver answers with 503
so that Mettl delivers the event again. ``startAssessment`` carries no result
and is left to the next sync. Each store gives the row a new ``row_version``
(the backend's :meth:`~mettl_async.sync.base.Database.store_result`): a sync
walking the schedule meanwhile keeps the row rather than overwrite it with its
older listing.

A database that fails (unreachable, restarting, frozen past its timeouts,
full, locked by another writer for too long) is answered the same way: 503
with ``Retry-After``, never 500. :class:`DatabaseHealth` follows it: one log
line (ERROR) when an outage begins, one (WARNING) when it ends, and what the
listener's ``GET /healthz`` reports. Open the database with
``open_database(url, reconnect=True)`` so that it reconnects once it is back.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Final

import attrs
import orjson

from mettl_async._client import MettlClient
from mettl_async._errors import NotFoundError, RequestError
from mettl_async._models import (
    CandidateTestResumedEvent,
    FinishTestEvent,
    GradedAssessmentEvent,
    WebhookEvent,
)
from mettl_async.sync.base import (
    Database,
    DatabaseFullError,
    DatabaseTimeoutError,
    StoreOutcome,
    SyncError,
)
from mettl_async.sync.rows import result_row
from mettl_async.webhooks import RetryLater

__all__ = [
    "UPDATING_EVENTS",
    "DatabaseHealth",
    "OutageLogFilter",
    "ResultUpdater",
    "UpdaterStats",
]

logger = logging.getLogger("mettl_async.sync")

#: The events after which a candidate's result is fetched and stored.
UPDATING_EVENTS: Final = (FinishTestEvent, GradedAssessmentEvent, CandidateTestResumedEvent)


@attrs.define
class UpdaterStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored: int = 0  # startAssessment, or an event naming no candidate, or one Mettl no longer has
    failed_fetches: int = 0
    failed_stores: int = 0  # the database failed: answered 503


class OutageReason(str):
    """The reason of a 503 for a database outage (already logged once by the health)."""


class OutageLogFilter(logging.Filter):
    """Drops the receiver's per-delivery line for a 503 answered during a database outage:
    :class:`DatabaseHealth` logs the outage once, and its end."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, OutageReason) for arg in args)


class DatabaseHealth:
    """A listener's view of its database: up, or down since when and why.

    :meth:`failed` and :meth:`succeeded` are told of every store; an outage is
    logged once when it begins and once when it ends. :meth:`check` asks the
    database itself (for ``GET /healthz``).
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.down_since: float | None = None  # monotonic
        self.reason: str | None = None
        self.outages = 0
        self._writes_fail = False  # the database answers, but refuses writes (full, locked)

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, error: SyncError, *, writing: bool = True) -> None:
        self.reason = str(error)
        if writing:
            self._writes_fail = isinstance(error, DatabaseFullError | DatabaseTimeoutError)
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.outages += 1
        logger.error(
            "database %s is unavailable: %s; webhooks are answered 503 (Mettl delivers them "
            "again) until it is back",
            self.database.url,
            error,
        )

    def succeeded(self) -> None:
        self._writes_fail = False
        if self.down_since is None:
            return
        seconds = time.monotonic() - self.down_since
        self.down_since, self.reason = None, None
        logger.warning("database %s is back after %.1f s", self.database.url, seconds)

    async def check(self) -> str | None:
        """Ask the database; why it is unavailable, or ``None`` when it is up."""
        try:
            await self.database.ping()
        except SyncError as exc:
            self.failed(exc, writing=False)
            return self.reason
        if self._writes_fail:
            return self.reason  # it answers, but the last write failed: not up until one works
        self.succeeded()
        return None


class ResultUpdater:
    """A webhook callback that fetches and stores the result an event is about."""

    def __init__(self, client: MettlClient, database: Database, *, retry_after: int = 30) -> None:
        self.client = client
        self.database = database
        self.retry_after = retry_after
        self.stats = UpdaterStats()
        self.health = DatabaseHealth(database)

    async def __call__(self, event: WebhookEvent) -> StoreOutcome | None:
        """Store the event's result; what happened to its row (``None``: nothing to store)."""
        if not isinstance(event, UPDATING_EVENTS):
            self.stats.ignored += 1
            return None
        kind = type(event).__name__
        access_key, email = event.invitation_key, event.email
        if not access_key or not email:
            self.stats.ignored += 1
            logger.warning("webhook %s names no invitation_key or email: nothing to fetch", kind)
            return None
        try:
            record = await self.client.get_candidate_result_raw(access_key, email)
        except NotFoundError:
            # Mettl no longer has it (deleted since): asking again would not help.
            self.stats.ignored += 1
            logger.warning(
                "webhook %s: Mettl has no result of %s in schedule %s; nothing stored",
                kind,
                email,
                access_key,
            )
            return None
        except RequestError as exc:
            self.stats.failed_fetches += 1
            raise RetryLater(
                f"fetching the result of {email} in schedule {access_key} failed ({exc})",
                retry_after=self.retry_after,
            ) from exc
        stored_email = record.get("email")
        row = result_row(
            stored_email if isinstance(stored_email, str) else email, orjson.dumps(record)
        )
        try:
            outcome = await self.database.store_result(access_key, row, datetime.now(UTC))
        except SyncError as exc:
            self.stats.failed_stores += 1
            self.health.failed(exc)
            # the answer says no more (the details are logged, once per outage)
            raise RetryLater(
                OutageReason("the database cannot store it now"), retry_after=self.retry_after
            ) from exc
        self.health.succeeded()
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        logger.info("webhook %s: %s of %s in %s", kind, outcome, row[0], access_key)
        return outcome
