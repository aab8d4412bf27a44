"""Typed models of the objects in Mettl's articles 1 to 19.

Attributes are snake_case; attribute order is the order the articles list
properties in. Two families, in four modules, and the table between them and
the wire:

- ``requests``: what a request carries (:class:`Assessment`,
  :class:`ScheduleSettings`, :class:`ScheduleFilter` and the settings they
  nest, ...). Frozen; every property optional; ``validate()`` reports every
  problem with its wire path before any I/O.
- responses, mutable, keeping the mapping they were decoded from in ``raw``:
  ``account`` (the account, its PBTs, assessments and schedules, the answers
  to create and register), ``results`` (:class:`CandidateResult` and
  everything under it: the hot path, built lazily by ``_convert``) and
  ``webhooks`` (the four webhook payloads).
- ``wire``: :func:`wire_names`, attribute name -> wire name, which both the
  converter and the validation read, and :data:`REQUEST_PARAMETERS`.

``checks`` links the request models to their rules: ``_validation`` (and
``_uploads``, for ``wl``) registers them there when imported, so no model
module imports the rules.

Every name is re-exported here: ``from mettl_async._models import X`` names
any model wherever it is defined.
"""

from __future__ import annotations

from .account import (
    PBT,
    AccountInfo,
    AssessmentDetails,
    AssessmentInfo,
    CreatedAssessment,
    CreatedSchedule,
    Paging,
    RegistrationOutcome,
    Schedule,
)
from .requests import EMAIL_FIELD as EMAIL_FIELD
from .requests import FIRST_NAME_FIELD as FIRST_NAME_FIELD
from .requests import (
    Access,
    Assessment,
    AssessmentSettings,
    Candidate,
    CandidateRegistration,
    IPAccessRestriction,
    IPRange,
    ScheduleFilter,
    ScheduleSettings,
    ScheduleWindow,
    Section,
    SecureBrowser,
    Skill,
    TestGradeNotification,
    VisualProctoring,
    VisualProctoringOptions,
    WebProctoring,
    WhiteLabel,
)
from .results import (
    Analysis,
    CandidateResult,
    DifficultyMarks,
    QuestionResponse,
    Recommendation,
    ResponseStyle,
    SectionMarks,
    SkillMarks,
    TestInstance,
    TestResult,
    TestStatus,
)
from .webhooks import (
    CandidateTestResumedEvent,
    FinishTestEvent,
    GradedAssessmentEvent,
    SectionalScore,
    StartAssessmentEvent,
    WebhookEvent,
)
from .wire import REQUEST_PARAMETERS, wire_names

__all__ = [
    "PBT",
    "REQUEST_PARAMETERS",
    "Access",
    "AccountInfo",
    "Analysis",
    "Assessment",
    "AssessmentDetails",
    "AssessmentInfo",
    "AssessmentSettings",
    "Candidate",
    "CandidateRegistration",
    "CandidateResult",
    "CandidateTestResumedEvent",
    "CreatedAssessment",
    "CreatedSchedule",
    "DifficultyMarks",
    "FinishTestEvent",
    "GradedAssessmentEvent",
    "IPAccessRestriction",
    "IPRange",
    "Paging",
    "QuestionResponse",
    "Recommendation",
    "RegistrationOutcome",
    "ResponseStyle",
    "Schedule",
    "ScheduleFilter",
    "ScheduleSettings",
    "ScheduleWindow",
    "Section",
    "SectionMarks",
    "SectionalScore",
    "SecureBrowser",
    "Skill",
    "SkillMarks",
    "StartAssessmentEvent",
    "TestGradeNotification",
    "TestInstance",
    "TestResult",
    "TestStatus",
    "VisualProctoring",
    "VisualProctoringOptions",
    "WebProctoring",
    "WebhookEvent",
    "WhiteLabel",
    "wire_names",
]
