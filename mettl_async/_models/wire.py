"""Wire names of the models: attribute name -> the name Mettl's JSON uses.

:func:`wire_names` is the one rename table; the converter (``_convert``) and
the validation (``_validation``, for its wire paths) both read it. Most wire
names are the camelCase of the attribute; the exceptions are listed below.
:data:`REQUEST_PARAMETERS` names the request parameter each request model
travels in, the root of every validation path.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import attrs

from .account import Schedule
from .requests import (
    Assessment,
    AssessmentSettings,
    Candidate,
    ScheduleFilter,
    ScheduleSettings,
    WhiteLabel,
)
from .results import (
    DifficultyMarks,
    SectionMarks,
    SkillMarks,
    TestResult,
    TestStatus,
)
from .webhooks import (
    CandidateTestResumedEvent,
    FinishTestEvent,
    GradedAssessmentEvent,
    StartAssessmentEvent,
)

__all__ = ["REQUEST_PARAMETERS", "wire_names"]

#: Request parameter that carries each request model's JSON (articles 8, 11, 13).
REQUEST_PARAMETERS: Final[dict[type, str]] = {
    Assessment: "assessments",
    AssessmentSettings: "as",
    WhiteLabel: "wl",
    ScheduleSettings: "sc",
    ScheduleFilter: "filter",
}

# Attributes that never travel: the decoded mapping, and the candidate's extra
# registration fields (sent inline, under their own labels).
_NOT_ON_WIRE: Final = frozenset({"raw", "extra_fields"})

_WEBHOOK_CLASSES: Final = (
    StartAssessmentEvent,
    FinishTestEvent,
    GradedAssessmentEvent,
    CandidateTestResumedEvent,
)
_URL_RENAMES: Final = {
    # article 13: "URL" upper case in this one name only
    "test_resume_enabled_for_expired_test_url": "testResumeEnabledForExpiredTestURL",
}
_MARKS_RENAMES: Final = {"total_unanswered": "totalUnAnswered"}

# Wire names that are not the camelCase of the attribute name. Webhook payloads
# are snake_case on the wire (article 13) and listed in full below.
_RENAMES: Final[dict[type, dict[str, str]]] = {
    Assessment: {"exit_redirection_url": "exitRedirectionURL"},  # article 8: "URL"
    AssessmentSettings: {"exit_redirection_url": "exitRedirectionURL"},  # article 9: "URL"
    Candidate: {"compensatory_time": "compensatory_time"},  # article 13: snake_case
    ScheduleSettings: _URL_RENAMES,
    Schedule: _URL_RENAMES,
    TestStatus: {"start_time_gmt": "start_time_GMT", "end_time_gmt": "end_time_GMT"},
    TestResult: _MARKS_RENAMES,
    SectionMarks: _MARKS_RENAMES,
    SkillMarks: _MARKS_RENAMES,
    DifficultyMarks: _MARKS_RENAMES,
}
_WEBHOOK_RENAMES: Final = {
    "event_type": "EVENT_TYPE",
    "timestamp_gmt": "timestamp_GMT",
    "start_time_gmt": "start_time_GMT",
    "end_time_gmt": "end_time_GMT",
    # the graded payload switches to camelCase for these (article 13)
    "registration_details": "registrationDetails",
    "proctoring_details": "proctoringDetails",
    "test_status": "testStatus",
}
# Only the graded payload says "assessmentId"; the others say "assessment_id".
# Decoding accepts either spelling in every event.
_GRADED_RENAMES: Final = {**_WEBHOOK_RENAMES, "assessment_id": "assessmentId"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@cache
def wire_names(cls: type) -> dict[str, str]:
    """Attribute name -> wire name, in attribute order, for one model class."""
    if cls in _WEBHOOK_CLASSES:
        renames = _GRADED_RENAMES if cls is GradedAssessmentEvent else _WEBHOOK_RENAMES
        return {
            field.name: renames.get(field.name, field.name)
            for field in attrs.fields(cls)
            if field.name not in _NOT_ON_WIRE
        }
    renames = _RENAMES.get(cls, {})
    return {
        field.name: renames.get(field.name) or _camel(field.name)
        for field in attrs.fields(cls)
        if field.name not in _NOT_ON_WIRE
    }
