"""What the fake Mettl keeps: its configuration, the account's state, its statistics.

:class:`~mettl_async.testing.app.FakeMettl` holds one of each, as ``config``,
``state`` and ``stats``, and still answers to the flat attributes it always had
(``fake.latency``, ``fake.account``, ``fake.requests``...), each a view onto
its group. Route handlers see the fake through :class:`FakeParts`, so they
need not import the app that calls them.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
from collections.abc import Callable, Mapping
from random import Random
from typing import Any, Final, Literal, Protocol

import attrs

from mettl_async._enums import FinishMode, WebhookEventType
from mettl_async._ratelimit import TokenBucket
from mettl_async.testing.data import FakeAccount, FakeSchedule, format_timestamp
from mettl_async.testing.errors import Reply

__all__ = [
    "DEFAULT_REGISTRATION_FIELDS",
    "AccountMutations",
    "CandidateListener",
    "FakeConfig",
    "FakeParts",
    "FakeRateLimit",
    "FakeState",
    "FakeStats",
    "LinkStyle",
    "RecordedRequest",
]

LinkStyle = Literal["absolute-stale", "relative-stale", "absolute", "relative", "none"]

#: The registration fields of the account, and of an assessment without a schedule.
DEFAULT_REGISTRATION_FIELDS: Final = ("Email Address", "First Name", "Last Name")
_ASSESSMENTS_EPOCH: Final = dt.datetime(2022, 2, 18, 12, 0, 0, tzinfo=dt.UTC)


#: Told ``(event type, schedule, candidate index, details)`` after a candidate starts,
#: finishes, is graded or may resume (the fake's webhook calls: ``testing/callbacks.py``).
CandidateListener = Callable[[WebhookEventType, FakeSchedule, int, Mapping[str, Any]], None]


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.define
class FakeRateLimit:
    """Mettl's rate limit as the fake enforces it (it publishes none; ``E509`` is its refusal).

    ``rate`` and ``burst``: a token bucket of ``burst`` requests (default half a
    second's worth, at least 1) refilled at ``rate`` a second. ``window_limit``
    and ``window``: at most that many requests in each fixed window of
    ``window`` seconds. Either, both or neither (no limit). A refused request
    gets ``E509`` in an error envelope (with the fake's ``error_http_status``,
    200 by default) or HTTP 429 with ``Retry-After: retry_after``: a share
    ``http429_share`` of refusals are 429s, spread evenly.
    """

    rate: float | None = attrs.field(default=None, validator=_positive_or_none)
    burst: float | None = attrs.field(default=None, validator=_positive_or_none)
    window_limit: int | None = attrs.field(default=None, validator=_positive_or_none)
    window: float = attrs.field(default=1.0, validator=_positive_or_none)
    http429_share: float = 0.5
    retry_after: str | None = "1"
    _bucket: TokenBucket | None = attrs.field(default=None, init=False, repr=False)
    _window_start: float = attrs.field(default=-math.inf, init=False, repr=False)
    _window_count: int = attrs.field(default=0, init=False, repr=False)
    _share_owed: float = attrs.field(default=0.0, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.http429_share <= 1.0:
            raise ValueError(f"http429_share must be within 0..1, got {self.http429_share!r}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst!r}")

    @property
    def active(self) -> bool:
        return self.rate is not None or self.window_limit is not None

    def admit(self, now: float) -> bool:
        """Whether a request arriving at ``now`` (monotonic seconds) is within the limits."""
        if self.window_limit is not None:
            start = math.floor(now / self.window) * self.window
            if start != self._window_start:
                self._window_start, self._window_count = start, 0
            if self._window_count >= self.window_limit:
                return False
        if self.rate is not None:
            if self._bucket is None:
                capacity = self.burst if self.burst is not None else max(1.0, self.rate / 2)
                self._bucket = TokenBucket(self.rate, capacity, stamp=now)
            if not self._bucket.take(now):
                return False
        self._window_count += 1
        return True

    def refusal(self) -> Literal["E509", "http429"]:
        """How to refuse the next request: ``http429_share`` of them get a 429."""
        self._share_owed += self.http429_share
        if self._share_owed >= 1.0 - 1e-9:
            self._share_owed -= 1.0
            return "http429"
        return "E509"


@attrs.define
class FakeConfig:
    """How the fake behaves (see :class:`~mettl_async.testing.app.FakeMettl` for each)."""

    keys: dict[str, str]
    latency: float
    error_http_status: int
    clock: Callable[[], float]
    total_records: bool
    link_style: LinkStyle
    arrival_every: int
    clamp_limit: int | None
    #: A record of the listing asked for is deleted before every this-many-th listing
    #: request (0: never; see ``churn``).
    deletion_every: int = 0
    #: The share of listing requests answered ``late_delay`` seconds late (read after the wait).
    late_share: float = 0.0
    late_delay: float = 0.0
    #: Whether the account may use Update White Label (article 3); E403 otherwise.
    white_label_allowed: bool = True
    #: The rate limit it enforces (none by default).
    rate_limit: FakeRateLimit = attrs.Factory(FakeRateLimit)


@attrs.frozen
class RecordedRequest:
    """What the fake server saw of one request (``asgn`` included, it is not secret)."""

    method: str
    path: str  # after the version, as sent (percent-encoded)
    version: str
    params: Mapping[str, str]
    outcome: str  # "SUCCESS" or the error code
    at: float


@attrs.define
class FakeStats:
    """What the fake has counted, and the last requests it saw (``log``)."""

    log: collections.deque[RecordedRequest]
    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    bad_signatures: int = 0
    faults_injected: int = 0
    #: Requests refused by the rate limit (:class:`FakeRateLimit`).
    throttled: int = 0
    #: Calls of Register Candidates (article 15).
    registration_calls: int = 0
    #: Access key -> listing requests (article 16) on that schedule.
    page_requests: collections.Counter[str] = attrs.Factory(collections.Counter)
    #: Listing -> its requests (``"schedules"``, ``"assessments"``, ``"candidates of KEY"``).
    listing_requests: collections.Counter[str] = attrs.Factory(collections.Counter)
    #: Records added to, and deleted from, listings under walks (see ``arrival_every``).
    arrivals: int = 0
    deletions: int = 0
    #: Listing pages answered late (see ``late_share``).
    late_pages: int = 0


def _assessments_of(state: FakeState) -> dict[int, dict[str, Any]]:
    return {s.assessment_id: {"name": s.assessment_name} for s in state.account.schedules}


@attrs.define
class FakeState:
    """The account as the fake serves it, and everything requests changed in it."""

    account: FakeAccount
    #: Assessment id -> what the fake knows of it (one per schedule's assessment at first).
    assessments: dict[int, dict[str, Any]] = attrs.Factory(_assessments_of, takes_self=True)
    created_schedules: dict[str, dict[str, Any]] = attrs.Factory(dict)
    assessment_settings: dict[int, dict[str, Any]] = attrs.Factory(dict)
    #: Email (casefolded) -> (code, message) for candidates article 15 refuses.
    registration_failures: dict[str, tuple[str, str]] = attrs.Factory(dict)
    #: The last logo uploaded (article 2): (filename, bytes).
    logo: tuple[str, bytes] | None = None
    white_label: dict[str, Any] | None = None
    support_numbers: list[str] | None = None
    white_label_files: dict[str, tuple[str, bytes]] = attrs.Factory(dict)
    #: New assessment ids count up from this one.
    last_assessment_id: int = 1_000_001
    #: Which records leave a listing and which pages are late (seeded by the fake's seed).
    churn_random: Random = attrs.Factory(lambda: Random(0))
    #: Who is told of each candidate's test events (see :data:`CandidateListener`).
    candidate_listeners: list[CandidateListener] = attrs.Factory(list)

    def candidate_event(
        self, kind: WebhookEventType, schedule: FakeSchedule, j: int, **details: Any
    ) -> None:
        """Tell the listeners that candidate ``j`` of ``schedule`` had an event of ``kind``."""
        for listener in self.candidate_listeners:
            listener(kind, schedule, j, details)

    def fail_registration(
        self, *emails: str, code: str = "E028", message: str | None = None
    ) -> None:
        """Make Register Candidates (article 15) refuse these emails, each in its own item.

        The call still answers SUCCESS; each of these candidates gets an item
        with ``"status": "ERROR"`` and ``message`` starting with ``code``.
        """
        for email in emails:
            self.registration_failures[email.casefold()] = (
                code,
                message or "invalid value for a registration field",
            )

    def add_assessment(self, name: str, **fields: Any) -> int:
        """A new assessment of the account (as if created in Mettl's dashboard); its id."""
        assessment_id = self.new_assessment_id()
        self.assessments[assessment_id] = {"name": name, **fields}
        return assessment_id

    def assessment_json(self, assessment_id: int) -> dict[str, Any]:
        """An assessment as articles 6 and 7 return it (field names are our reading)."""
        stored = self.assessments[assessment_id]
        schedules = [s for s in self.account.schedules if s.assessment_id == assessment_id]
        fields = schedules[0].registration_fields if schedules else DEFAULT_REGISTRATION_FIELDS
        sections = stored.get("sections")
        if sections is None and schedules:
            sections = [
                {"name": name, "skills": [{"name": skill} for skill in skills]}
                for name, skills in schedules[0].sections
            ]
        data: dict[str, Any] = {
            "id": assessment_id,
            "name": stored.get("name", f"Assessment {assessment_id}"),
            "duration": stored.get("duration", 30 + 15 * (assessment_id % 3)),
            "instructions": stored.get("instructions", ""),
            # ids grow with time: createdAt order is id order
            "createdAt": format_timestamp(
                _ASSESSMENTS_EPOCH + dt.timedelta(hours=assessment_id - 1_000_000)
            ),
            "testTaken": sum(s.candidate_count for s in schedules),
            "maxMarks": float(10 + assessment_id % 40),
            "registrationFields": list(fields),
            "sections": sections or [],
        }
        data.update(self.assessment_settings.get(assessment_id, {}))
        return data

    def new_assessment_id(self) -> int:
        self.last_assessment_id += 1
        return self.last_assessment_id

    def schedule_or_404(self, access_key: str) -> FakeSchedule:
        schedule = self.account.schedule(access_key)
        if schedule is None:
            raise Reply("E404", f"no schedule with access key {access_key!r}")
        return schedule

    def schedule_json(self, schedule: FakeSchedule) -> dict[str, Any]:
        created = self.created_schedules.get(schedule.access_key)
        data = self.account.schedule_json(schedule)
        if created is not None:
            data.update(created)
        return data


class AccountMutations:
    """Change the fake account while it runs, as Mettl's own data changes: ``fake.mutate``.

    Candidates are named by schedule access key and email, as the API names
    them; an unknown one raises ``KeyError``, a change that makes no sense for
    the candidate's state (regrading a test not taken) ``ValueError``. Every
    change shows in the next answer of every endpoint (listings, article 17,
    article 18)::

        fake.mutate.change_marks(key, email)   # a completed result gets new marks
        fake.mutate.grade(key, email)          # an in-progress test is graded: Completed
        fake.mutate.delete(key, email)         # the result disappears from the listings
        fake.mutate.add(key, 2)                # two new candidates start the test
        fake.mutate.start(key, email)          # a registered candidate starts: InProgress
        fake.mutate.finish(key, email)         # a test in progress ends: InProcessing
        fake.mutate.resume(key, email)         # an ended test may go on: InProgress again
        fake.mutate.emails(key, status="Completed")  # whom to pick

    A schedule with webhook URLs is called as Mettl calls it (``testing/callbacks.py``):
    ``startAssessment`` when a candidate starts (``start``, ``add``), ``finishTest``
    when a test ends (``finish``, and ``grade`` of a test not yet ended),
    ``gradedAssessment`` when a result is generated (``grade``, ``change_marks``,
    ``add(completed=True)``) and ``candidateTestResumed`` on ``resume``.
    """

    def __init__(self, state: FakeState) -> None:
        self._state = state

    @property
    def account(self) -> FakeAccount:
        return self._state.account

    def _schedule(self, access_key: str) -> FakeSchedule:
        schedule = self.account.schedule(access_key)
        if schedule is None:
            raise KeyError(f"no schedule with access key {access_key!r}")
        return schedule

    def _find(self, access_key: str, email: str) -> tuple[FakeSchedule, int]:
        schedule = self._schedule(access_key)
        j = self.account.index_of(schedule, email)
        if j is None:
            raise KeyError(f"no candidate {email!r} in schedule {access_key!r}")
        return schedule, j

    def emails(self, access_key: str, *, status: str | None = None) -> list[str]:
        """The schedule's candidates in listing order (newest first), of one ``testStatus.status``
        if given (``"Completed"``, ``"InProgress"``, ``"InProcessing"``, ``"ToBeTaken"``)."""
        schedule = self._schedule(access_key)
        found = []
        for j in schedule.order():
            if status is None or self.account.candidate(schedule, j)["testStatus"]["status"] == (
                status
            ):
                found.append(self.account.email(schedule, j))
        return found

    def status(self, access_key: str, email: str) -> str:
        """A candidate's ``testStatus.status``."""
        schedule, j = self._find(access_key, email)
        return str(self.account.candidate(schedule, j)["testStatus"]["status"])

    def change_marks(self, access_key: str, email: str) -> None:
        """A completed candidate is regraded: new marks, a different total."""
        schedule, j = self._find(access_key, email)
        self.account.change_marks(schedule, j)
        self._state.candidate_event(WebhookEventType.GRADED_ASSESSMENT, schedule, j)

    def grade(self, access_key: str, email: str) -> None:
        """A test in progress (or in processing, or not taken) is graded and completed."""
        schedule, j = self._find(access_key, email)
        before = self.status(access_key, email)
        if j in schedule.registered:
            self.account.complete(schedule, j)
        else:
            self.account.grade(schedule, j)
        for kind in _EVENTS_UNTIL_GRADED.get(before, _EVENTS_UNTIL_GRADED["InProcessing"]):
            self._state.candidate_event(kind, schedule, j)

    def delete(self, access_key: str, email: str) -> None:
        """The candidate's result is deleted, whatever its state."""
        self.account.delete(*self._find(access_key, email))

    def add(self, access_key: str, count: int = 1, *, completed: bool = False) -> list[str]:
        """``count`` new candidates start the test (and finish it, if ``completed``); their
        emails. They are listed first, as the newest."""
        schedule = self._schedule(access_key)
        emails = self.account.arrive(access_key, count)
        for email in emails:
            j = self._find(access_key, email)[1]
            self._state.candidate_event(WebhookEventType.START_ASSESSMENT, schedule, j)
            if completed:
                self.grade(access_key, email)
        return emails

    # -- a candidate's test, step by step (each step calls the schedule's webhook) -----

    def _step(
        self, access_key: str, email: str, allowed: tuple[str, ...], verb: str
    ) -> tuple[FakeSchedule, int]:
        """Candidate ``email``, if their test is in one of the ``allowed`` states."""
        schedule, j = self._find(access_key, email)
        status = self.status(access_key, email)
        if status not in allowed:
            raise ValueError(
                f"candidate {email!r} of {access_key!r} is {status}: only a test "
                f"{' or '.join(allowed)} can {verb}"
            )
        return schedule, j

    def start(self, access_key: str, email: str) -> None:
        """A candidate who has not started (registered, say) starts the test: InProgress."""
        schedule, j = self._step(access_key, email, ("ToBeTaken",), "start")
        schedule.phases[j] = "InProgress"
        self.account.forget(schedule, j)
        self._state.candidate_event(WebhookEventType.START_ASSESSMENT, schedule, j)

    def finish(
        self, access_key: str, email: str, *, finish_mode: FinishMode | str = "NormalSubmission"
    ) -> None:
        """A test in progress ends (``finish_mode``, article 13's table): InProcessing, until
        :meth:`grade`."""
        schedule, j = self._step(access_key, email, ("InProgress",), "finish")
        schedule.phases[j] = "InProcessing"
        self.account.forget(schedule, j)
        self._state.candidate_event(
            WebhookEventType.FINISH_TEST, schedule, j, finish_mode=finish_mode
        )

    def resume(self, access_key: str, email: str) -> None:
        """An ended test (in processing or completed) may be resumed: InProgress again, its
        result gone until it ends and is graded again."""
        schedule, j = self._step(access_key, email, ("InProcessing", "Completed"), "resume")
        schedule.graded.discard(j)
        if j in schedule.registered:
            schedule.registered[j]["completed"] = False
        schedule.phases[j] = "InProgress"
        self.account.forget(schedule, j)
        self._state.candidate_event(WebhookEventType.CANDIDATE_TEST_RESUMED, schedule, j)


#: The events a grading causes, by the state the test was in: every step it skips.
_EVENTS_UNTIL_GRADED: Final[Mapping[str, tuple[WebhookEventType, ...]]] = {
    "ToBeTaken": (
        WebhookEventType.START_ASSESSMENT,
        WebhookEventType.FINISH_TEST,
        WebhookEventType.GRADED_ASSESSMENT,
    ),
    "InProgress": (WebhookEventType.FINISH_TEST, WebhookEventType.GRADED_ASSESSMENT),
    "InProcessing": (WebhookEventType.GRADED_ASSESSMENT,),
}


class FakeParts(Protocol):
    """The fake as a route handler sees it: its configuration, state and statistics."""

    config: FakeConfig
    state: FakeState
    stats: FakeStats
