"""Bodies of Mettl's four schedule webhooks (article 13), for testing a receiver.

Each builder returns the JSON object Mettl POSTs, as a ``dict`` with Mettl's
field names in Mettl's order and its value formats (timestamps such as
``"Tue, 07 May 2024 09:27:01 GMT"``, the graded event's ``sectional_scores``
as JSON inside a string, its camelCase ``assessmentId``, ``registrationDetails``
and ``testStatus``)::

    from mettl_async.testing import finish_test_payload, webhook_payload

    body = finish_test_payload(email="ada@example.com", candidate_instance_id=7)
    graded = webhook_payload("graded", marks_scored=18.0, max_marks=20.0)

Every field can be overridden, by its attribute name on the event class
(``timestamp_gmt=``, ``assessment_id=``) or by its wire name (``timestamp_GMT=``,
``assessmentId=``); an unknown name raises ``TypeError`` naming the fields the
event carries. A ``datetime`` is written as Mettl writes that field (``GMT``
for ``timestamp_GMT``, ``UTC`` for ``start_time_GMT``/``end_time_GMT``, India's
``IST`` for the graded event's local ``start_time``/``end_time``), an enum as
its value, and ``sectional_scores`` may be a list of
:class:`~mettl_async.SectionalScore` objects or mappings. The defaults are
fixed (two calls give equal payloads); in the graded event, the fields not
given follow from those given: the marks from ``sectional_scores``, the local
times and ``total_attempt_time`` from the GMT times, ``registrationDetails``
from ``name`` and ``email``, ``testStatus`` from all of them. Every payload is
accepted by :func:`mettl_async.webhooks.parse_event`; to add a field Mettl
does not send today, set it on the returned ``dict``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any, Final

import orjson

from mettl_async._enums import WebhookEventType
from mettl_async._models import (
    CandidateTestResumedEvent,
    FinishTestEvent,
    GradedAssessmentEvent,
    SectionalScore,
    StartAssessmentEvent,
)
from mettl_async._models.wire import wire_names
from mettl_async._timefmt import ZONES, format_timestamp, parse_timestamp
from mettl_async.webhooks import EVENT_PATHS

__all__ = [
    "candidate_test_resumed_payload",
    "event_kind",
    "finish_test_payload",
    "graded_assessment_payload",
    "start_assessment_payload",
    "webhook_payload",
]

_CLASSES: Final[Mapping[WebhookEventType, type]] = {
    WebhookEventType.START_ASSESSMENT: StartAssessmentEvent,
    WebhookEventType.FINISH_TEST: FinishTestEvent,
    WebhookEventType.GRADED_ASSESSMENT: GradedAssessmentEvent,
    WebhookEventType.CANDIDATE_TEST_RESUMED: CandidateTestResumedEvent,
}
_BUILDERS: Final[Mapping[WebhookEventType, str]] = {
    WebhookEventType.START_ASSESSMENT: "start_assessment_payload",
    WebhookEventType.FINISH_TEST: "finish_test_payload",
    WebhookEventType.GRADED_ASSESSMENT: "graded_assessment_payload",
    WebhookEventType.CANDIDATE_TEST_RESUMED: "candidate_test_resumed_payload",
}

# The defaults: one candidate of one schedule, who took 24 min 50 s.
_ENDED: Final = dt.datetime(2024, 5, 7, 9, 27, 1, tzinfo=dt.UTC)
_STARTED: Final = _ENDED - dt.timedelta(seconds=1490)
_SECTIONS: Final = (("Section #1", 9.0, 12.0), ("Section #2", 5.0, 8.0))
_COMMON: Final[Mapping[str, Any]] = {
    "invitation_key": "tiwao88y00",  # the schedule's access key
    "assessment_id": 999000,
    "candidate_instance_id": 48213907,
    "context_data": None,
    "timestamp_GMT": _ENDED,
    "source_app": "HR portal",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
}
# How a datetime is written, by field: the zone Mettl's samples use for it.
_ZONE_OF: Final[Mapping[str, str]] = {
    "timestamp_GMT": "GMT",
    "start_time_GMT": "UTC",
    "end_time_GMT": "UTC",
    "start_time": "IST",
    "end_time": "IST",
}


def event_kind(kind: WebhookEventType | str) -> WebhookEventType:
    """``kind`` as an event type: a :class:`~mettl_async.WebhookEventType`, its value
    (``"finishTest"``) or its short name (``"start"``, ``"finish"``, ``"graded"``,
    ``"resumed"``), in any case. Raises ``ValueError`` naming the choices otherwise."""
    if isinstance(kind, WebhookEventType):
        return kind
    if isinstance(kind, str):
        folded = kind.casefold()
        for event_type, short in EVENT_PATHS.items():
            if folded in (short, event_type.value.casefold()):
                return event_type
    choices = ", ".join(f"{short!r} ({t.value})" for t, short in EVENT_PATHS.items())
    raise ValueError(f"unknown webhook event {kind!r}; expected one of {choices}")


def webhook_payload(kind: WebhookEventType | str, /, **overrides: Any) -> dict[str, Any]:
    """The body Mettl POSTs for one event of ``kind`` (see :func:`event_kind`), with
    ``overrides`` (see the module)."""
    event_type = event_kind(kind)
    fields = _wire_overrides(event_type, overrides)
    graded = event_type is WebhookEventType.GRADED_ASSESSMENT
    values: dict[str, Any] = {"EVENT_TYPE": event_type.value}
    for name, value in _COMMON.items():  # only the graded event says "assessmentId"
        values["assessmentId" if graded and name == "assessment_id" else name] = value
    if event_type is WebhookEventType.START_ASSESSMENT:
        values["timestamp_GMT"] = _STARTED
    if event_type in (WebhookEventType.FINISH_TEST, WebhookEventType.GRADED_ASSESSMENT):
        values["finish_mode"] = "NormalSubmission"
    if graded:
        return _graded(values, fields)
    values.update(fields)
    return {name: _written(name, value) for name, value in values.items()}


def start_assessment_payload(**overrides: Any) -> dict[str, Any]:
    """A ``startAssessment`` body: a candidate started the test (see the module)."""
    return webhook_payload(WebhookEventType.START_ASSESSMENT, **overrides)


def finish_test_payload(**overrides: Any) -> dict[str, Any]:
    """A ``finishTest`` body: a candidate's test ended (see the module)."""
    return webhook_payload(WebhookEventType.FINISH_TEST, **overrides)


def graded_assessment_payload(**overrides: Any) -> dict[str, Any]:
    """A ``gradedAssessment`` body: a candidate's result was generated (see the module)."""
    return webhook_payload(WebhookEventType.GRADED_ASSESSMENT, **overrides)


def candidate_test_resumed_payload(**overrides: Any) -> dict[str, Any]:
    """A ``candidateTestResumed`` body: an expired test may be resumed (see the module)."""
    return webhook_payload(WebhookEventType.CANDIDATE_TEST_RESUMED, **overrides)


def _wire_overrides(event_type: WebhookEventType, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` by wire name; ``TypeError`` for a name the event does not carry."""
    names = wire_names(_CLASSES[event_type])
    wire = {"EVENT_TYPE" if name == "event_type" else name: value for name, value in names.items()}
    known = set(wire.values())
    fields: dict[str, Any] = {}
    for name, value in overrides.items():
        key = name if name in known else wire.get(name)
        if key is None:
            raise TypeError(
                f"{_BUILDERS[event_type]}() got an unknown field {name!r}; "
                f"{event_type.value} carries {', '.join(sorted(known))}"
            )
        fields[key] = value
    return fields


def _written(name: str, value: Any) -> Any:
    """A value as Mettl writes it in field ``name``."""
    if isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            raise ValueError(f"{name}: a naive datetime has no zone; give an aware one")
        return format_timestamp(value.astimezone(ZONES[_ZONE_OF.get(name, "GMT")]))
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _instant(value: Any) -> dt.datetime | None:
    parsed = parse_timestamp(value) if isinstance(value, str | dt.datetime) else None
    return parsed if parsed is not None and parsed.utcoffset() is not None else None


def _section(item: Any) -> dict[str, Any]:
    if isinstance(item, SectionalScore):
        return {
            "sectionName": item.section_name,
            "sectionScore": item.section_score,
            "sectionMaxScore": item.section_max_score,
        }
    if isinstance(item, Mapping):
        return dict(item)
    raise TypeError(f"sectional_scores: expected SectionalScore objects or mappings, got {item!r}")


def _sections(fields: Mapping[str, Any]) -> tuple[list[Any], str | None]:
    """The graded body's sections (to derive the marks from) and their text on the wire."""
    if "sectional_scores" not in fields:
        sections: list[Any] = [
            {"sectionName": n, "sectionScore": s, "sectionMaxScore": m} for n, s, m in _SECTIONS
        ]
        return sections, orjson.dumps(sections).decode()
    given = fields["sectional_scores"]
    if given is None:
        return [], None
    if isinstance(given, str):  # as Mettl sends it: kept as given, read if it can be
        try:
            decoded = orjson.loads(given)
        except orjson.JSONDecodeError:
            decoded = []
        return (decoded if isinstance(decoded, list) else []), given
    sections = [_section(item) for item in given]
    return sections, orjson.dumps(sections).decode()


def _graded(values: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The graded body: ``values`` (defaults) and ``fields`` (given), the rest derived."""
    sections, sections_text = _sections(fields)
    scores = [s for s in sections if isinstance(s, Mapping)]
    started = _instant(fields.get("start_time_GMT")) or _STARTED
    ended = _instant(fields.get("end_time_GMT")) or _ENDED
    first, _, last = str(fields.get("name", values["name"]) or "").strip().partition(" ")
    values.update(
        {
            "timestamp_GMT": ended,
            "start_time_GMT": started,
            "end_time_GMT": ended,
            "marks_scored": float(sum(s.get("sectionScore") or 0 for s in scores)),
            "max_marks": float(sum(s.get("sectionMaxScore") or 0 for s in scores)),
            "total_attempt_time": max(0, int((ended - started).total_seconds())),
            "percentile": 72.5,
            "assessment_name": "Assessment 1",
            "client_id": 40213,
            "schedule_title": "Campus drive 2024",
            "start_time": started,
            "end_time": ended,
            "sectional_scores": sections_text,
            "grading_type": "NormalGrading",
            "registrationDetails": {
                "Email Address": fields.get("email", values["email"]),
                "First Name": first,
                "Last Name": last,
            },
            "proctoringDetails": None,
        }
    )
    values.update({k: v for k, v in fields.items() if k != "sectional_scores"})
    payload = {name: _written(name, value) for name, value in values.items()}
    if "testStatus" not in fields:
        payload["testStatus"] = _test_status(payload, scores)
    return payload


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _marks(label: str, title: str, scored: float, maximum: float) -> dict[str, Any]:
    """The marks of one part of a test (its ``label`` field says which), as article 13's
    ``testStatus`` prints them; one question per mark."""
    return {
        label: title,
        "totalMarks": scored,
        "maxMarks": maximum,
        "timeTaken": 0.0,
        "totalQuestion": float(round(maximum)),
        "totalCorrectAnswers": float(round(scored)),
        "totalUnAnswered": 0.0,
    }


def _test_status(payload: Mapping[str, Any], sections: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The graded body's ``testStatus``, from its other fields (as article 13 prints it)."""
    section_marks = []
    for section in sections:
        title = str(section.get("sectionName") or "")
        scored, maximum = (
            _number(section.get("sectionScore")),
            _number(section.get("sectionMaxScore")),
        )
        difficulty = _marks("level", "MEDIUM", scored, maximum)
        skill = {**_marks("skillName", title, scored, maximum), "difficultyMarks": [difficulty]}
        section_marks.append(
            {
                **_marks("sectionName", title, scored, maximum),
                "skillMarks": [skill],
                "difficultyMarks": [difficulty],
                "questionWiseResponse": None,
            }
        )
    scored, maximum = _number(payload.get("marks_scored")), _number(payload.get("max_marks"))
    overall = _marks("level", "MEDIUM", scored, maximum)
    return {
        "status": "Completed",
        "startTime": payload.get("start_time"),
        "endTime": payload.get("end_time"),
        "completionMode": "Completed",
        "result": {
            "totalMarks": scored,
            "maxMarks": maximum,
            "percentile": _number(payload.get("percentile")),
            "attemptTime": _number(payload.get("total_attempt_time")),
            "candidateCredibilityIndex": "High",
            "totalQuestion": overall["totalQuestion"],
            "totalCorrectAnswers": overall["totalCorrectAnswers"],
            "totalUnAnswered": 0.0,
            "sectionMarks": section_marks,
            "performanceCategory": None,
            "performanceCategoryVersion": None,
            "difficultyMarks": [overall],
        },
    }
