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
and is left to the next sync.
"""

from __future__ import annotations

import logging
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
from mettl_async.sync.base import Database, StoreOutcome
from mettl_async.sync.rows import result_row
from mettl_async.webhooks import RetryLater

__all__ = ["UPDATING_EVENTS", "ResultUpdater", "UpdaterStats"]

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


class ResultUpdater:
    """A webhook callback that fetches and stores the result an event is about."""

    def __init__(self, client: MettlClient, database: Database, *, retry_after: int = 30) -> None:
        self.client = client
        self.database = database
        self.retry_after = retry_after
        self.stats = UpdaterStats()

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
        outcome = await self.database.store_result(access_key, row, datetime.now(UTC))
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        logger.info("webhook %s: %s of %s in %s", kind, outcome, row[0], access_key)
        return outcome
