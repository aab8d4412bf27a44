"""The four webhook payloads of article 13, and :data:`WebhookEvent`, any of them.

Like every response, an event is mutable and keeps the mapping it was
decoded from in ``raw``. Webhook payloads are snake_case on the wire, with
exceptions (``EVENT_TYPE``, the graded payload's camelCase fields) listed in
``_models.wire``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import attrs

from mettl_async._enums import FinishMode, WebhookEventType

from .results import TestStatus

__all__ = [
    "CandidateTestResumedEvent",
    "FinishTestEvent",
    "GradedAssessmentEvent",
    "SectionalScore",
    "StartAssessmentEvent",
    "WebhookEvent",
]


@attrs.define(kw_only=True)
class _WebhookEventFields:
    """The fields every schedule webhook carries (article 13)."""

    event_type: WebhookEventType | str | None = None
    invitation_key: str | None = None
    assessment_id: int | None = None
    candidate_instance_id: int | None = None
    context_data: str | None = None
    timestamp_gmt: datetime | None = None
    source_app: str | None = None
    name: str | None = None
    email: str | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class StartAssessmentEvent(_WebhookEventFields):
    """``startAssessment``: a candidate started the test (``testStartNotificationUrl``)."""


@attrs.define(kw_only=True)
class FinishTestEvent(_WebhookEventFields):
    """``finishTest``: a candidate's test ended (``testFinishNotificationUrl``)."""

    finish_mode: FinishMode | str | None = None


@attrs.define(kw_only=True)
class SectionalScore:
    """One entry of the graded webhook's ``sectional_scores`` (article 13)."""

    section_name: str | None = None
    section_score: float | None = None
    section_max_score: float | None = None


@attrs.define(kw_only=True)
class GradedAssessmentEvent(_WebhookEventFields):
    """``gradedAssessment``: a result was generated (``testGradedNotificationUrl``).

    Mettl sends ``sectional_scores`` as JSON inside a string; it is decoded
    into :class:`SectionalScore` objects (``None`` if unreadable; the text stays
    in ``raw``).
    """

    finish_mode: FinishMode | str | None = None
    start_time_gmt: datetime | None = None
    end_time_gmt: datetime | None = None
    marks_scored: float | None = None
    max_marks: float | None = None
    total_attempt_time: float | None = None
    percentile: float | None = None
    assessment_name: str | None = None
    client_id: int | None = None
    schedule_title: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    sectional_scores: list[SectionalScore] | None = None
    grading_type: str | None = None
    registration_details: dict[str, str] | None = None
    proctoring_details: Any = None
    test_status: TestStatus | None = None


@attrs.define(kw_only=True)
class CandidateTestResumedEvent(_WebhookEventFields):
    """``candidateTestResumed``: an expired candidate may resume (``testResumeEnabled…URL``)."""


#: Any of the four webhook payloads; :func:`~mettl_async.parse_webhook_event` returns one.
WebhookEvent: TypeAlias = (
    StartAssessmentEvent | FinishTestEvent | GradedAssessmentEvent | CandidateTestResumedEvent
)
