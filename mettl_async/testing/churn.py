"""A busy account under a walk: records arriving and leaving, pages answered late.

The fake counts the requests of its paged listings (article 6's assessments,
article 11's schedules, article 16's candidates of a schedule), all together.
Before every ``arrival_every``-th of them, a new record joins the front of the
listing asked for, where Mettl's default order (newest first) puts it: a
candidate starts the test, a schedule or an assessment is created. Before every
``deletion_every``-th, a record of the listing asked for, chosen at random
(seeded), leaves it: a candidate's result is deleted, a schedule is archived (it
leaves article 11's listing; its own endpoints still answer), an assessment is
deleted.
A share ``late_share`` of listing requests (chosen at random, seeded) is
answered ``late_delay`` seconds late, the page read from the account *after*
the wait, so that it shows what changed meanwhile: pages come back out of
order, each as the account was when it was read.

Changes and late answers count in :class:`~mettl_async.testing.state.FakeStats`
(``arrivals``, ``deletions``, ``late_pages``); ``listing_requests`` counts the
requests of each listing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from mettl_async.testing.data import FakeSchedule
from mettl_async.testing.state import FakeParts

#: How late a listing page is answered (seconds), set by its route, read by the latency.
LATE_DELAY: Final = web.RequestKey("late_delay", float)

__all__ = [
    "ASSESSMENTS",
    "LATE_DELAY",
    "SCHEDULES",
    "archive_schedule",
    "before_listing_read",
    "candidates_of",
    "check_churn",
    "delete_assessment",
    "delete_candidate",
    "hold",
]

#: The names under which the listings count their requests (``FakeStats.listing_requests``).
SCHEDULES: Final = "schedules"
ASSESSMENTS: Final = "assessments"


def candidates_of(access_key: str) -> str:
    """The name under which the candidate listing of a schedule counts its requests."""
    return f"candidates of {access_key}"


def check_churn(
    arrival_every: object, deletion_every: object, late_share: object, late_delay: object
) -> None:
    """Refuse settings that make no sense (``ValueError`` naming the setting)."""
    for name, every in (("arrival_every", arrival_every), ("deletion_every", deletion_every)):
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"{name} must be an integer >= 0 (0: never), got {every!r}")
    if not isinstance(late_share, int | float) or not 0.0 <= late_share <= 1.0:
        raise ValueError(f"late_share must be within 0..1, got {late_share!r}")
    if not isinstance(late_delay, int | float) or not 0.0 <= late_delay < float("inf"):
        raise ValueError(f"late_delay must be finite seconds >= 0, got {late_delay!r}")


async def before_listing_read(
    fake: FakeParts,
    listing: str,
    *,
    arrive: Callable[[], Any],
    delete: Callable[[], Any],
) -> float:
    """Count a request of ``listing``, change it as configured, answer late if chosen.

    Called by a listing's handler before it reads the account. ``arrive`` adds a
    record at the front of the listing; ``delete`` removes one at random. Returns
    the seconds the answer was held back (0.0 for a page answered on time).
    """
    config, stats = fake.config, fake.stats
    stats.listing_requests[listing] += 1
    count = stats.listing_requests.total()
    if config.arrival_every and count % config.arrival_every == 0:
        arrive()
        stats.arrivals += 1
    if config.deletion_every and count % config.deletion_every == 0 and delete():
        stats.deletions += 1
    delay = config.late_delay
    if config.late_share and delay and fake.state.churn_random.random() < config.late_share:
        stats.late_pages += 1
        await hold(delay)
        return delay
    return 0.0


async def hold(delay: float) -> None:
    """Hold a late answer back (``asyncio.sleep``; a test may put an event in its place)."""
    await asyncio.sleep(delay)


def delete_candidate(fake: FakeParts, schedule: FakeSchedule) -> bool:
    """Delete a candidate of ``schedule`` chosen at random; False when it has none."""
    order = schedule.order()
    if not order:
        return False
    fake.state.account.delete(schedule, fake.state.churn_random.choice(order))
    return True


def archive_schedule(fake: FakeParts) -> bool:
    """Take a schedule chosen at random out of article 11's listing; False when none is left."""
    schedules = fake.state.account.schedules
    if not schedules:
        return False
    fake.state.account.archive_schedule(fake.state.churn_random.choice(schedules).access_key)
    return True


def delete_assessment(fake: FakeParts) -> bool:
    """Delete an assessment chosen at random; False when the account has none."""
    assessments = fake.state.assessments
    if not assessments:
        return False
    del assessments[fake.state.churn_random.choice(sorted(assessments))]
    return True
