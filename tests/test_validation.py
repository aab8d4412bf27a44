"""Validation before any I/O: every problem at once, each with its wire path."""

from __future__ import annotations

from datetime import date, time
from typing import Any

import attrs
import pytest

from mettl_async import (
    Access,
    AccessType,
    Assessment,
    Candidate,
    FixedAccessOption,
    IPAccessRestriction,
    IPRange,
    IPRestrictionType,
    ScheduleFilter,
    ScheduleSettings,
    ScheduleType,
    ScheduleWindow,
    Section,
    Skill,
    SkillLevel,
    TestGradeNotification,
    ValidationError,
    ValidationProblem,
    VisualProctoring,
    VisualProctoringOptions,
    WebProctoring,
)
from mettl_async._convert import structure

from .conftest import load_json


def sample(name: str, cls: type[Any]) -> Any:
    return structure(load_json(f"samples/{name}.json"), cls)


def paths(problems: list[ValidationProblem]) -> list[str]:
    return [problem.path for problem in problems]


def skill(**changes: Any) -> Skill:
    base = Skill(name="Skill", level=SkillLevel.EASY, question_count=10, correct_grade=1)
    return attrs.evolve(base, **changes)


def assessment(**changes: Any) -> Assessment:
    base = Assessment(name="A", duration=10, sections=[Section(name="S", skills=[skill()])])
    return attrs.evolve(base, **changes)


def window(**changes: Any) -> ScheduleWindow:
    base = ScheduleWindow(
        starts_on_date=date(2022, 2, 7),
        starts_on_time=time(12, 0),
        ends_on_date=date(2022, 2, 11),
        ends_on_time=time(18, 0),
        time_zone="UTC+05:30",
    )
    return attrs.evolve(base, **changes)


def settings(**changes: Any) -> ScheduleSettings:
    base = ScheduleSettings(
        name="Link",
        source_app="App",
        access=Access(type=AccessType.OPEN_FOR_ALL),
        schedule_type=ScheduleType.ALWAYS_ON,
    )
    return attrs.evolve(base, **changes)


# --------------------------------------------------------------------------
# The articles' own samples are valid
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("article8_assessment_minimal", Assessment),
        ("article8_assessment_all_properties", Assessment),
        ("article13_schedule_minimal", ScheduleSettings),
        ("article13_schedule_signed_example", ScheduleSettings),
        ("article13_schedule_all_properties", ScheduleSettings),
        ("article11_filter", ScheduleFilter),
    ],
)
def test_article_samples_are_valid(name: str, cls: type[Any]) -> None:
    """Every request sample printed in the articles passes validation."""
    model = sample(name, cls)
    assert model.problems() == []
    model.validate()


# --------------------------------------------------------------------------
# One error, every problem
# --------------------------------------------------------------------------


def test_five_problems_are_reported_together() -> None:
    """An invalid schedule raises one ValidationError naming all five problems by wire path."""
    bad = ScheduleSettings(
        name="Link",
        source_app="",  # 1
        access=Access(
            type=AccessType.BY_INVITATION,
            candidates=[Candidate(name="Name", email="not-an-email")],  # 2
        ),
        schedule_type=ScheduleType.FIXED,
        schedule_window=window(time_zone="IST"),  # 3
        test_finish_notification_url="/relative/path",  # 4
        ip_access_restriction=IPAccessRestriction(enabled=True, type=IPRestrictionType.SINGLE),  # 5
    )
    with pytest.raises(ValidationError) as caught:
        bad.validate()
    error = caught.value
    assert error.paths == [
        "sc.sourceApp",
        "sc.access.candidates[0].email",
        "sc.scheduleWindow.timeZone",
        "sc.testFinishNotificationUrl",
        "sc.ipAccessRestriction.ip",
    ]
    assert "5 problems" in str(error)
    assert error.problems == tuple(bad.problems())


def test_validation_error_is_a_value_error_of_the_library() -> None:
    """The error can be caught as MettlError or as ValueError."""
    with pytest.raises(ValueError, match="invalid assessment"):
        Assessment().validate()


# --------------------------------------------------------------------------
# Article 8: assessments
# --------------------------------------------------------------------------


def test_an_empty_assessment_lists_what_is_mandatory() -> None:
    """Name and sections are mandatory (article 8)."""
    assert paths(Assessment().problems()) == ["assessments.name", "assessments.sections"]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (assessment(name=" "), ["assessments.name"]),
        (assessment(duration=0), ["assessments.duration"]),
        (assessment(sections=[]), ["assessments.sections"]),
        (
            assessment(sections=[Section(name="", skills=[])]),
            ["assessments.sections[0].name", "assessments.sections[0].skills"],
        ),
        (assessment(sections=[Section(name="S")]), ["assessments.sections[0].skills"]),
        (
            assessment(sections=[Section(name="S", skills=[skill(), skill(correct_grade=0)])]),
            ["assessments.sections[0].skills[1].correctGrade"],
        ),
        (
            assessment(sections=[Section(name="S", skills=[skill(incorrect_grade=0.5)])]),
            ["assessments.sections[0].skills[0].incorrectGrade"],
        ),
        (
            assessment(sections=[Section(name="S", skills=[skill(question_count=0)])]),
            ["assessments.sections[0].skills[0].questionCount"],
        ),
        (
            assessment(sections=[Section(name="S", skills=[skill(level="hard")])]),
            ["assessments.sections[0].skills[0].level"],
        ),
        (
            assessment(sections=[Section(name="S", skills=[skill(question_type="ESSAY")])]),
            ["assessments.sections[0].skills[0].questionType"],
        ),
        (
            assessment(sections=[Section(name="S", skills=[Skill()])]),
            [
                "assessments.sections[0].skills[0].name",
                "assessments.sections[0].skills[0].level",
                "assessments.sections[0].skills[0].questionCount",
                "assessments.sections[0].skills[0].correctGrade",
            ],
        ),
        (
            assessment(allow_copy_paste="yes"),
            ["assessments.allowCopyPaste"],
        ),
    ],
)
def test_assessment_rules(model: Assessment, expected: list[str]) -> None:
    """Each rule of article 8's table is checked at its own path."""
    assert paths(model.problems()) == expected


def test_a_duration_is_needed_somewhere() -> None:
    """Without an assessment duration, every section needs one of its own (and > 0)."""
    sections = [
        Section(name="A", duration=10, skills=[skill()]),
        Section(name="B", skills=[skill()]),
        Section(name="C", duration=-5, skills=[skill()]),
    ]
    assert paths(assessment(duration=None, sections=sections).problems()) == [
        "assessments.sections[1].duration",
        "assessments.sections[2].duration",
    ]
    with_durations = [attrs.evolve(s, duration=5) for s in sections]
    assert assessment(duration=None, sections=with_durations).problems() == []


def test_skill_level_accepts_the_exact_wire_text() -> None:
    """A level given as the documented string ("medium") is as good as the enum member."""
    model = assessment(sections=[Section(name="S", skills=[skill(level="medium")])])
    assert model.problems() == []


# --------------------------------------------------------------------------
# Article 13: sc
# --------------------------------------------------------------------------


def test_creating_needs_name_source_app_access_and_schedule_type() -> None:
    """Create Schedule's mandatory properties are reported when missing."""
    assert paths(ScheduleSettings().problems()) == [
        "sc.name",
        "sc.sourceApp",
        "sc.access",
        "sc.scheduleType",
    ]
    assert paths(settings(access=Access()).problems()) == ["sc.access.type"]


def test_editing_needs_nothing_but_access_type_with_access() -> None:
    """Edit Schedule (article 14): all optional, except access.type once access is sent."""
    assert ScheduleSettings().problems(for_create=False) == []
    assert ScheduleSettings(name="New name").problems(for_create=False) == []
    edit = ScheduleSettings(access=Access(send_email=True))
    assert paths(edit.problems(for_create=False)) == ["sc.access.type"]
    adding = ScheduleSettings(
        access=Access(
            type=AccessType.BY_INVITATION,
            send_email=True,
            candidates=[Candidate(name="N", email="n@example.com")],
        )
    )
    adding.validate(for_create=False)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (settings(name=""), ["sc.name"]),
        (settings(access=Access(type="Private")), ["sc.access.type"]),
        (
            settings(access=Access(type=AccessType.BY_INVITATION)),
            ["sc.access.candidates"],
        ),
        (
            settings(access=Access(type=AccessType.BY_INVITATION, candidates=[])),
            ["sc.access.candidates"],
        ),
        (
            settings(
                access=Access(
                    type=AccessType.BY_INVITATION,
                    candidates=[
                        Candidate(name="A", email="a@example.com"),
                        Candidate(email="b@example.com", compensatory_time=-1),
                        Candidate(name="C", email="c@@example"),
                    ],
                )
            ),
            [
                "sc.access.candidates[1].name",
                "sc.access.candidates[1].compensatory_time",
                "sc.access.candidates[2].email",
            ],
        ),
        (settings(schedule_type="Sometimes"), ["sc.scheduleType"]),
        (settings(schedule_type=ScheduleType.FIXED), ["sc.scheduleWindow"]),
        (
            settings(schedule_type=ScheduleType.FIXED, schedule_window=ScheduleWindow()),
            [
                "sc.scheduleWindow.startsOnDate",
                "sc.scheduleWindow.startsOnTime",
                "sc.scheduleWindow.endsOnDate",
                "sc.scheduleWindow.endsOnTime",
                "sc.scheduleWindow.timeZone",
            ],
        ),
        (
            settings(
                schedule_type=ScheduleType.FIXED,
                schedule_window=window(ends_on_date=date(2022, 2, 6)),
            ),
            ["sc.scheduleWindow.endsOnDate"],
        ),
        (
            settings(
                schedule_type=ScheduleType.FIXED,
                schedule_window=window(
                    fixed_access_option=FixedAccessOption.SLOT_WISE, ends_on_time=time(9, 0)
                ),
            ),
            ["sc.scheduleWindow.endsOnTime"],
        ),
        (
            settings(
                schedule_type=ScheduleType.FIXED,
                schedule_window=window(time_zone=None, location_time_zone="Asia/Kolkata"),
            ),
            [],
        ),
        (
            settings(
                schedule_type=ScheduleType.FIXED,
                schedule_window=window(time_zone="UTC+5:30", location_time_zone="Kolkata time"),
            ),
            ["sc.scheduleWindow.timeZone", "sc.scheduleWindow.locationTimeZone"],
        ),
        (
            settings(web_proctoring=WebProctoring(enabled=True, count=-1)),
            ["sc.webProctoring.count"],
        ),
        (settings(visual_proctoring=VisualProctoring(mode="VIDEO")), ["sc.visualProctoring.mode"]),
        (
            settings(
                visual_proctoring=VisualProctoring(
                    options=VisualProctoringOptions(candidate_screen_capture="on")  # type: ignore[arg-type]  # wrong on purpose
                )
            ),
            ["sc.visualProctoring.options.candidateScreenCapture"],
        ),
        (settings(protected="Password"), ["sc.protected"]),
        (
            settings(
                test_start_notification_url="www.application.com/start",
                test_graded_notification_url="https://www.application.com/graded",
                test_resume_enabled_for_expired_test_url="mailto:a@b.c",
            ),
            ["sc.testStartNotificationUrl", "sc.testResumeEnabledForExpiredTestURL"],
        ),
        (
            settings(test_grade_notification=TestGradeNotification(enabled=True)),
            ["sc.testGradeNotification.recipients"],
        ),
        (
            settings(
                test_grade_notification=TestGradeNotification(
                    enabled=True, recipients=["admin@email.com", "admin"]
                )
            ),
            ["sc.testGradeNotification.recipients[1]"],
        ),
        (
            settings(test_grade_notification=TestGradeNotification(enabled=False)),
            [],
        ),
        (
            settings(ip_access_restriction=IPAccessRestriction(enabled=True)),
            ["sc.ipAccessRestriction.type"],
        ),
        (
            settings(
                ip_access_restriction=IPAccessRestriction(
                    enabled=True, type=IPRestrictionType.RANGE
                )
            ),
            ["sc.ipAccessRestriction.ranges"],
        ),
        (
            settings(
                ip_access_restriction=IPAccessRestriction(
                    enabled=True, type=IPRestrictionType.SINGLE, ip="256.1.1.1"
                )
            ),
            ["sc.ipAccessRestriction.ip"],
        ),
        (
            settings(
                ip_access_restriction=IPAccessRestriction(
                    enabled=True,
                    type=IPRestrictionType.RANGE,
                    ranges=[
                        IPRange(start="64.64.64.64", end="64.64.64.67"),
                        IPRange(start="10.0.0.9", end="10.0.0.1"),
                        IPRange(start="10.0.0.1"),
                        IPRange(start="::1", end="10.0.0.1"),
                    ],
                )
            ),
            [
                "sc.ipAccessRestriction.ranges[1].end",
                "sc.ipAccessRestriction.ranges[2].end",
                "sc.ipAccessRestriction.ranges[3].start",
            ],
        ),
        (
            settings(
                ip_access_restriction=IPAccessRestriction(
                    enabled=False, type=IPRestrictionType.SINGLE
                )
            ),
            [],
        ),
    ],
)
def test_schedule_settings_rules(model: ScheduleSettings, expected: list[str]) -> None:
    """Each rule of article 13's table is checked at its own wire path."""
    assert paths(model.problems()) == expected


def test_a_window_is_not_needed_for_always_on() -> None:
    """AlwaysOn schedules need no window; a partial one is only checked for what it holds."""
    assert settings(schedule_window=ScheduleWindow(time_zone="UTC+05:30")).problems() == []
    assert paths(settings(schedule_window=ScheduleWindow(time_zone="+5")).problems()) == [
        "sc.scheduleWindow.timeZone"
    ]


# --------------------------------------------------------------------------
# Article 11: filter
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (ScheduleFilter(), []),
        (ScheduleFilter(web_proctoring=WebProctoring(enabled=True)), []),
        (
            ScheduleFilter(web_proctoring=WebProctoring(count=-2)),
            ["filter.webProctoring.enabled", "filter.webProctoring.count"],
        ),
        (
            ScheduleFilter(visual_proctoring=VisualProctoring(mode="ON")),
            ["filter.visualProctoring.mode"],
        ),
        (
            ScheduleFilter(type="Public", schedule_type="Never"),
            ["filter.type", "filter.scheduleType"],
        ),
    ],
)
def test_schedule_filter_rules(model: ScheduleFilter, expected: list[str]) -> None:
    """Article 11's filter: enabled is mandatory within webProctoring; values are closed sets."""
    assert paths(model.problems()) == expected
    if expected:
        with pytest.raises(ValidationError):
            model.validate()
    else:
        model.validate()


def test_a_subclass_of_a_request_model_is_checked_as_its_base() -> None:
    @attrs.frozen(kw_only=True)
    class MyFilter(ScheduleFilter):
        pass

    with pytest.raises(ValidationError, match="schedule filter") as caught:
        MyFilter(type="Nobody").validate()
    assert paths(caught.value.problems) == ["filter.type"]
