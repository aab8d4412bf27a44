"""The webhook samples of ``mettl_async.testing``: Mettl's four bodies, with overrides."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from mettl_async import (
    CandidateTestResumedEvent,
    FinishMode,
    FinishTestEvent,
    GradedAssessmentEvent,
    SectionalScore,
    StartAssessmentEvent,
    WebhookEventType,
    webhooks,
)
from mettl_async.testing import (
    candidate_test_resumed_payload,
    finish_test_payload,
    graded_assessment_payload,
    start_assessment_payload,
    webhook_payload,
)

from .conftest import HERE

BUILDERS: list[tuple[Callable[..., dict[str, Any]], type, str]] = [
    (start_assessment_payload, StartAssessmentEvent, "article13_webhook_start_assessment.json"),
    (finish_test_payload, FinishTestEvent, "article13_webhook_finish_test.json"),
    (graded_assessment_payload, GradedAssessmentEvent, "article13_webhook_graded_assessment.json"),
    (
        candidate_test_resumed_payload,
        CandidateTestResumedEvent,
        "article13_webhook_candidate_test_resumed.json",
    ),
]


@pytest.mark.parametrize(
    ("build", "cls", "sample"), BUILDERS, ids=lambda x: getattr(x, "__name__", x)
)
def test_each_sample_has_mettls_fields_and_parses(
    build: Callable[..., dict[str, Any]], cls: type, sample: str
) -> None:
    """The same fields as article 13's sample, in its order, and parse_event accepts it."""
    payload = build()
    printed = json.loads((HERE / "samples" / sample).read_text(encoding="utf-8"))
    assert list(payload) == list(printed)
    event = webhooks.parse_event(json.dumps(payload))
    assert type(event) is cls
    assert event.email == "ada@example.com"
    assert event.timestamp_gmt is not None
    assert payload["timestamp_GMT"].endswith(" GMT")  # "Tue, 07 May 2024 09:27:01 GMT"
    assert payload == build()  # fixed defaults: the same payload every time


def test_overrides_by_attribute_or_wire_name_are_the_same() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    by_attribute = graded_assessment_payload(
        assessment_id=7, timestamp_gmt=when, registration_details={"Email Address": "x@y.z"}
    )
    by_wire = graded_assessment_payload(
        assessmentId=7, timestamp_GMT=when, registrationDetails={"Email Address": "x@y.z"}
    )
    assert by_attribute == by_wire
    assert by_wire["assessmentId"] == 7
    assert "assessment_id" not in by_wire  # only the graded event says assessmentId
    assert by_wire["timestamp_GMT"] == "Tue, 02 Jan 2024 03:04:05 GMT"
    assert finish_test_payload(assessment_id=7)["assessment_id"] == 7


def test_values_are_written_as_mettl_writes_each_field() -> None:
    start = dt.datetime(2024, 3, 1, 10, 0, 0, tzinfo=dt.UTC)
    payload = graded_assessment_payload(
        start_time_gmt=start,
        end_time_gmt=start + dt.timedelta(minutes=30, seconds=4),
        finish_mode=FinishMode.TIME_EXPIRED,
        sectional_scores=[
            SectionalScore(section_name="Java", section_score=6.0, section_max_score=10.0),
            {"sectionName": "SQL", "sectionScore": 4.5, "sectionMaxScore": 5.0},
        ],
        name="Zoë Müller",
        email="zoe@example.com",
    )
    assert payload["start_time_GMT"] == "Fri, 01 Mar 2024 10:00:00 UTC"
    assert payload["start_time"] == "Fri, 01 Mar 2024 15:30:00 IST"  # local: India
    assert payload["end_time"] == "Fri, 01 Mar 2024 16:00:04 IST"
    assert payload["timestamp_GMT"] == "Fri, 01 Mar 2024 10:30:04 GMT"
    assert payload["total_attempt_time"] == 1804
    assert payload["finish_mode"] == "TimeExpired"
    # JSON inside a string, as Mettl sends it; the marks follow from the sections
    assert isinstance(payload["sectional_scores"], str)
    assert (payload["marks_scored"], payload["max_marks"]) == (10.5, 15.0)
    assert payload["registrationDetails"] == {
        "Email Address": "zoe@example.com",
        "First Name": "Zoë",
        "Last Name": "Müller",
    }
    event = webhooks.parse_event(payload)
    assert isinstance(event, GradedAssessmentEvent)
    assert event.finish_mode is FinishMode.TIME_EXPIRED
    assert [s.section_name for s in event.sectional_scores or []] == ["Java", "SQL"]
    assert event.test_status is not None
    assert event.test_status.result is not None
    assert event.test_status.result.total_marks == 10.5
    assert [s.total_marks for s in event.test_status.result.section_marks] == [6.0, 4.5]
    assert event.start_time == start


def test_an_unknown_field_is_refused_with_the_fields_the_event_carries() -> None:
    with pytest.raises(TypeError, match=r"finish_test_payload\(\) got an unknown field 'marks'"):
        finish_test_payload(marks=3)
    with pytest.raises(TypeError, match="finish_mode") as caught:
        start_assessment_payload(finish_mode="NormalSubmission")  # not in a start event
    assert "startAssessment carries" in str(caught.value)
    with pytest.raises(ValueError, match="naive"):
        finish_test_payload(timestamp_gmt=dt.datetime(2024, 1, 1))


@pytest.mark.parametrize(
    "kind", ["finish", "finishTest", "FINISHTEST", WebhookEventType.FINISH_TEST]
)
def test_a_kind_is_named_by_its_short_name_its_value_or_its_enum(
    kind: str | WebhookEventType,
) -> None:
    assert webhook_payload(kind, email="a@b.c") == finish_test_payload(email="a@b.c")


def test_an_unknown_kind_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'resumed' \\(candidateTestResumed\\)"):
        webhook_payload("ended")


def test_a_later_event_of_the_same_candidate_has_another_key() -> None:
    """What a receiver deduplicates on: the timestamp tells two finishes apart."""
    first = webhooks.parse_event(finish_test_payload())
    later = webhooks.parse_event(
        finish_test_payload(timestamp_gmt=dt.datetime(2024, 5, 7, 10, 0, tzinfo=dt.UTC))
    )
    assert webhooks.event_key(first) != webhooks.event_key(later)
    assert webhooks.event_key(first) == webhooks.event_key(
        webhooks.parse_event(finish_test_payload())
    )
