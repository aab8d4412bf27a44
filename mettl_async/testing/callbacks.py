"""The fake Mettl calls back: a schedule's webhook URLs get Mettl's POSTs.

A schedule whose settings (``create_schedule``, ``edit_schedule``, most easily
with :func:`mettl_async.webhooks.with_webhooks`) name notification URLs is
called when one of its candidates starts (``testStartNotificationUrl``),
finishes (``testFinishNotificationUrl``), is graded
(``testGradedNotificationUrl``) or may resume an expired test
(``testResumeEnabledForExpiredTestURL``), as the fake's account changes
(:class:`~mettl_async.testing.AccountMutations`: ``start``, ``finish``,
``grade``, ``resume``, ``add``, ``change_marks``). Each call is what Mettl
sends: a JSON body built from the candidate's data (see
:mod:`~mettl_async.testing.webhook_samples`) and, when the schedule has a
``testNotificationBasicAuthHeader``, the credentials twice, as
``Authorization: Basic`` and as ``php-auth-user``/``php-auth-pw``.

Each call is a :class:`Delivery` in ``fake.deliveries``, sent by a background
task on the fake's event loop and retried on a non-2xx answer or a connection
failure as :class:`CallbackRetry` says (5 attempts, 0.5 s doubling to 8 s,
``Retry-After`` obeyed up to 8 s; ``CallbackRetry(instant=True)`` for tests).
``await fake.deliveries_settled()`` waits until every delivery has succeeded
or given up, so a test never sleeps. Every retry of one delivery sends the
same bytes, as Mettl's retries do; a later event of the same candidate has a
later ``timestamp_GMT`` (one second later at least), so a receiver that
deduplicates tells them apart.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp
import attrs
import orjson
from aiohttp import web

from mettl_async._enums import FinishMode, WebhookEventType
from mettl_async._models import ScheduleSettings, WebhookEvent
from mettl_async._models.wire import wire_names
from mettl_async._timefmt import parse_timestamp
from mettl_async.testing.data import FakeSchedule
from mettl_async.testing.state import AccountMutations, FakeState
from mettl_async.testing.webhook_samples import webhook_payload
from mettl_async.webhooks import parse_event
from mettl_async.webhooks._schedule import URL_FIELDS

__all__ = [
    "AUTH_HEADER_FIELD",
    "URL_PROPERTIES",
    "CallbackRetry",
    "Delivery",
    "FakeCallbacks",
    "add_callback_arguments",
    "configure_callbacks",
    "deliver",
    "mettl_headers",
]

logger = logging.getLogger("mettl_async.testing")

_WIRE: Final = wire_names(ScheduleSettings)
#: The ``sc`` property of each event's URL (article 13).
URL_PROPERTIES: Final[Mapping[WebhookEventType, str]] = {
    kind: _WIRE[field] for kind, field in URL_FIELDS.items()
}
#: The ``sc`` property holding ``base64(user:password)`` (article 13).
AUTH_HEADER_FIELD: Final = _WIRE["test_notification_basic_auth_header"]
#: How much of a receiver's answer a delivery keeps.
_ANSWER_BYTES: Final = 64 * 1024


def mettl_headers(basic_auth: str | None) -> dict[str, str]:
    """The headers of a webhook call as Mettl sends them.

    ``basic_auth`` is the schedule's ``testNotificationBasicAuthHeader``,
    ``base64(user:password)``: Mettl sends it as ``Authorization: Basic``, and
    the user and password it holds as ``php-auth-user`` and ``php-auth-pw``
    (article 13). A value that is not base64 of ``user:password`` is sent as
    ``Authorization`` only.
    """
    headers = {"Content-Type": "application/json"}
    if not basic_auth:
        return headers
    headers["Authorization"] = f"Basic {basic_auth}"
    try:
        decoded = base64.b64decode(basic_auth, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return headers
    user, colon, password = decoded.partition(":")
    if colon and decoded.isprintable():
        headers["php-auth-user"] = user
        headers["php-auth-pw"] = password
    return headers


@attrs.frozen
class CallbackRetry:
    """How the fake retries a webhook call that failed (a non-2xx answer, or no answer).

    ``attempts`` in all; before attempt *n* + 1 it waits ``first_delay *
    factor ** (n - 1)`` seconds, at most ``max_delay``, or the answer's
    ``Retry-After`` seconds (capped the same way) when it gives one. Each
    attempt has ``timeout`` seconds. ``instant=True`` keeps the attempts but
    waits zero seconds, for tests.

    The defaults (5 attempts, 0.5 s doubling to 8 s: 7.5 s of waiting at most)
    are chosen for a fake: a receiver that restarts or answers 503 for a
    moment gets the event within seconds, and a broken one shows as an
    undelivered :class:`Delivery` soon enough for a test or a demo. Mettl does
    not publish its own schedule.
    """

    attempts: int = 5
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 8.0
    timeout: float = 10.0
    instant: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be a whole number >= 1, got {self.attempts!r}")
        for name in ("first_delay", "max_delay"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be finite seconds >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.factor < float("inf"):
            raise ValueError(f"factor must be finite and >= 1, got {self.factor!r}")
        if not 0 < self.timeout < float("inf"):
            raise ValueError(f"timeout must be finite seconds > 0, got {self.timeout!r}")

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1)."""
        if self.instant:
            return 0.0
        wanted = self.first_delay * self.factor ** (attempt - 1)
        if retry_after is not None and retry_after.strip().isdigit():
            wanted = float(retry_after.strip())
        return min(self.max_delay, wanted)


@attrs.define(eq=False)
class Delivery:
    """One webhook call of the fake Mettl: what it sent, and what came of it."""

    #: Where it was sent (the schedule's URL for the event).
    url: str
    event_type: WebhookEventType
    #: The JSON body, the same bytes at every attempt.
    body: bytes = attrs.field(repr=False)
    #: The schedule (its access key) and the candidate (their email) it is about.
    access_key: str
    email: str
    #: The headers sent, credentials included (hence not in the repr).
    headers: Mapping[str, str] = attrs.field(repr=False)
    #: Attempts made so far.
    attempts: int = 0
    #: The HTTP status of each attempt; ``None`` where no answer came (see ``errors``).
    statuses: list[int | None] = attrs.Factory(list)
    #: What went wrong at each attempt that got no answer.
    errors: list[str] = attrs.Factory(list)
    #: The body of the last answer (its first 64 KiB).
    answer: bytes = attrs.field(default=b"", repr=False)
    #: Whether an attempt was answered 2xx.
    delivered: bool = False
    #: Whether it is over: delivered, or given up (attempts spent, or the fake stopped).
    settled: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        """The body, decoded."""
        data: dict[str, Any] = orjson.loads(self.body)
        return data

    @property
    def event(self) -> WebhookEvent:
        """The body as a receiver gets it: :func:`~mettl_async.webhooks.parse_event`'s event."""
        return parse_event(self.body)


async def deliver(
    delivery: Delivery,
    *,
    retry: CallbackRetry | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Delivery:
    """POST ``delivery`` as Mettl does, retried as ``retry`` says; it records each attempt.

    Stops at the first 2xx answer (``delivered``) or when the attempts are spent.
    ``session`` is used if given (and left open), else one is made for the call.
    """
    retry = retry if retry is not None else CallbackRetry()
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await deliver(delivery, retry=retry, session=own)
    for attempt in range(1, retry.attempts + 1):
        delivery.attempts = attempt
        retry_after = await _attempt(session, delivery, retry.timeout)
        if delivery.delivered:
            break
        if attempt < retry.attempts:
            await asyncio.sleep(retry.delay(attempt, retry_after))
    return delivery


async def _attempt(
    session: aiohttp.ClientSession, delivery: Delivery, timeout: float
) -> str | None:
    """One POST of ``delivery``; the answer's ``Retry-After``, if any."""
    try:
        async with session.post(
            delivery.url,
            data=delivery.body,
            headers=dict(delivery.headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            delivery.answer = await response.content.read(_ANSWER_BYTES)
            delivery.statuses.append(response.status)
            delivery.delivered = 200 <= response.status < 300
            return response.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        delivery.statuses.append(None)
        delivery.errors.append(f"{type(exc).__name__}: {exc}".rstrip(": "))
        return None


class FakeCallbacks:
    """The webhook calls of one fake Mettl: ``fake.callbacks``.

    ``retry`` (a :class:`CallbackRetry`) may be replaced at any time; each
    delivery uses the one set when it started. ``activity_every``, when set
    before the fake's application starts, moves a candidate of a schedule with
    webhook URLs one step every so many seconds (``mettl-async fake-server
    --webhook-every``): see :meth:`run_activity`.
    """

    def __init__(self, state: FakeState, clock: Callable[[], float]) -> None:
        self._state = state
        self._clock = clock
        self.retry = CallbackRetry()
        self.deliveries: list[Delivery] = []
        self.activity_every: float | None = None
        self._queued: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._changed: asyncio.Event | None = None
        self._activity: asyncio.Task[None] | None = None
        self._stamps: dict[tuple[WebhookEventType, str, int], dt.datetime] = {}
        self._finish_modes: dict[tuple[str, int], FinishMode | str] = {}
        state.candidate_listeners.append(self.candidate_event)

    # -- events -> deliveries ----------------------------------------------------------

    def candidate_event(
        self, kind: WebhookEventType, schedule: FakeSchedule, j: int, details: Mapping[str, Any]
    ) -> None:
        """A candidate of ``schedule`` started, finished, was graded or may resume: call the
        schedule's URL for ``kind``, if it has one."""
        if kind is WebhookEventType.FINISH_TEST:
            self._finish_modes[(schedule.access_key, j)] = details.get(
                "finish_mode", "NormalSubmission"
            )
        settings = self._state.created_schedules.get(schedule.access_key) or {}
        url = settings.get(URL_PROPERTIES[kind])
        if not isinstance(url, str) or not url:
            return
        body = orjson.dumps(self._payload(kind, schedule, j))
        record = self._state.account.candidate(schedule, j)
        auth = settings.get(AUTH_HEADER_FIELD)
        delivery = Delivery(
            url=url,
            event_type=kind,
            body=body,
            access_key=schedule.access_key,
            email=str(record["email"]),
            headers=mettl_headers(auth if isinstance(auth, str) else None),
        )
        self.deliveries.append(delivery)
        self._queued.append(delivery)
        self._start_queued()

    def _stamp(self, kind: WebhookEventType, schedule: FakeSchedule, j: int) -> dt.datetime:
        """Now, to the second; later than this candidate's previous event of ``kind``."""
        now = dt.datetime.fromtimestamp(int(self._clock()), dt.UTC)
        key = (kind, schedule.access_key, j)
        previous = self._stamps.get(key)
        if previous is not None and now <= previous:
            now = previous + dt.timedelta(seconds=1)
        self._stamps[key] = now
        return now

    def _payload(self, kind: WebhookEventType, schedule: FakeSchedule, j: int) -> dict[str, Any]:
        """The body Mettl would send about candidate ``j`` of ``schedule`` now."""
        record = self._state.account.candidate(schedule, j)
        registration = record.get("registration") or {}
        name = " ".join(
            str(part) for part in (registration.get("First Name"), registration.get("Last Name"))
        )
        fields: dict[str, Any] = {
            "invitation_key": schedule.access_key,
            "assessment_id": schedule.assessment_id,
            # a stable id per test taken: the schedule's number, then the candidate's
            "candidate_instance_id": 10_000_000 * (schedule.index + 1) + j,
            "timestamp_gmt": self._stamp(kind, schedule, j),
            "source_app": self._state.schedule_json(schedule).get("sourceApp") or "Mettl",
            "name": name.strip(),
            "email": record["email"],
        }
        finish_mode = self._finish_modes.get((schedule.access_key, j), "NormalSubmission")
        if kind is WebhookEventType.FINISH_TEST:
            fields["finish_mode"] = finish_mode
        status = record["testStatus"]
        if kind is WebhookEventType.GRADED_ASSESSMENT and status.get("result"):
            result = status["result"]
            fields.update(
                finish_mode=finish_mode,
                start_time_gmt=parse_timestamp(status.get("startTime")),
                end_time_gmt=parse_timestamp(status.get("endTime")),
                marks_scored=result.get("totalMarks"),
                max_marks=result.get("maxMarks"),
                total_attempt_time=round(result.get("attemptTime") or 0),
                percentile=result.get("percentile"),
                assessment_name=schedule.assessment_name,
                schedule_title=schedule.name,
                sectional_scores=[
                    {
                        "sectionName": section.get("sectionName"),
                        "sectionScore": section.get("totalMarks"),
                        "sectionMaxScore": section.get("maxMarks"),
                    }
                    for section in result.get("sectionMarks") or []
                ],
                registration_details=registration,
                proctoring_details=record.get("proctoringDetails"),
                test_status=status,
            )
        return webhook_payload(kind, **fields)

    # -- sending -----------------------------------------------------------------------

    def _start_queued(self) -> None:
        """Start the queued deliveries, if an event loop runs (else at the next chance)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        queued, self._queued = self._queued, []
        for delivery in queued:
            task = loop.create_task(self._deliver(delivery, self.retry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _deliver(self, delivery: Delivery, retry: CallbackRetry) -> None:
        try:
            await deliver(delivery, retry=retry, session=self._http())
            if not delivery.delivered:
                logger.warning(
                    "webhook %s to %s not delivered after %d attempts (%s)",
                    delivery.event_type.value,
                    delivery.url,
                    delivery.attempts,
                    ", ".join("no answer" if s is None else str(s) for s in delivery.statuses),
                )
        finally:
            delivery.settled = True
            if self._changed is not None:
                self._changed.set()

    async def settled(self) -> list[Delivery]:
        """Wait until every delivery so far has succeeded or given up; all deliveries."""
        self._start_queued()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        return list(self.deliveries)

    async def wait_for(self, count: int) -> list[Delivery]:
        """Wait until ``count`` deliveries have been made and settled; the first ``count``.

        For deliveries that a later change will cause (an activity, a request to
        the fake); wrap it in ``asyncio.timeout()`` to bound the wait.
        """
        self._start_queued()
        while True:
            done = [delivery for delivery in self.deliveries if delivery.settled]
            if len(done) >= count:
                return done[:count]
            if self._changed is None:
                self._changed = asyncio.Event()
            self._changed.clear()
            await self._changed.wait()

    # -- the application's life --------------------------------------------------------

    def attach(self, app: web.Application) -> None:
        """Start queued deliveries (and the activity) with ``app``; stop all with it."""
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)

    async def _on_startup(self, app: web.Application) -> None:
        self._start_queued()
        if self.activity_every is not None and self._activity is None:
            self._activity = asyncio.get_running_loop().create_task(
                self.run_activity(self.activity_every)
            )

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the activity and the deliveries still running (they stay undelivered);
        close the HTTP session."""
        tasks = [*self._tasks, *([self._activity] if self._activity is not None else [])]
        self._activity = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_activity(self, every: float) -> None:
        """Every ``every`` seconds, move one candidate of a schedule with webhook URLs a step.

        The schedules take turns; in each, one candidate at a time starts (a new
        arrival), finishes, then is graded: three calls, one step at a time.
        """
        mutate = AccountMutations(self._state)
        walking: dict[str, str] = {}
        turn = 0
        while True:
            await asyncio.sleep(every)
            keys = [
                key
                for key, settings in self._state.created_schedules.items()
                if any(settings.get(name) for name in URL_PROPERTIES.values())
            ]
            if not keys:
                continue
            key = keys[turn % len(keys)]
            turn += 1
            _step(mutate, key, walking)


def _step(mutate: AccountMutations, key: str, walking: dict[str, str]) -> None:
    """One step of ``run_activity`` in schedule ``key``."""
    email = walking.get(key)
    try:
        status = mutate.status(key, email) if email is not None else None
    except KeyError:  # deleted since, or the schedule is gone
        status = None
    if status == "InProgress" and email is not None:
        mutate.finish(key, email)
    elif status == "InProcessing" and email is not None:
        mutate.grade(key, email)
        del walking[key]
    elif mutate.account.schedule(key) is not None:
        walking[key] = mutate.add(key)[0]


# -- the standalone fake's options (``mettl-async fake-server``) -----------------------


def add_callback_arguments(parser: argparse.ArgumentParser) -> None:
    """``--webhook-every``, for a standalone fake Mettl."""
    group = parser.add_argument_group(
        "webhooks",
        "a schedule whose webhook URLs are set (create or edit schedule) is called as Mettl "
        "calls it, whenever one of its candidates starts, finishes, is graded or may resume",
    )
    group.add_argument(
        "--webhook-every",
        type=float,
        metavar="SECONDS",
        help="every SECONDS, move one candidate of such a schedule a step (a new candidate "
        "starts, then finishes, then is graded) (default: no candidate moves by itself)",
    )


def configure_callbacks(callbacks: FakeCallbacks, args: argparse.Namespace) -> None:
    """Apply :func:`add_callback_arguments`' options; ``ValueError`` naming a bad one."""
    every = getattr(args, "webhook_every", None)
    if every is not None and not 0 < every < float("inf"):
        raise ValueError(f"--webhook-every expects finite seconds > 0, got {every!r}")
    callbacks.activity_every = every
