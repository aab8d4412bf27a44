"""The converter: requests serialize byte for byte as the articles print them, and round-trip."""

from __future__ import annotations

from datetime import date, time
from typing import Any

import attrs
import cattrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mettl_async import (
    Access,
    AccessType,
    Assessment,
    Candidate,
    CandidateResult,
    CreatedSchedule,
    FixedAccessOption,
    IPAccessRestriction,
    IPRange,
    IPRestrictionType,
    Protection,
    QuestionType,
    Schedule,
    ScheduleFilter,
    ScheduleSettings,
    ScheduleType,
    ScheduleWindow,
    Section,
    SecureBrowser,
    Skill,
    SkillLevel,
    TestGradeNotification,
    ValidationError,
    VisualProctoring,
    VisualProctoringMode,
    VisualProctoringOptions,
    WebProctoring,
    parse_webhook_event,
)
from mettl_async._convert import (
    candidate_result_from_wire,
    converter,
    records,
    structure,
    to_json,
    unstructure,
)
from mettl_async._convert.lazy import install_lazy_attributes
from mettl_async._models import TestResult, TestStatus, wire_names

from .conftest import load_json

ARTICLE_8_MINIMAL = (
    '{"name":"Assessment Name","duration":10,"sections":[{"name":"Section Name","skills":'
    '[{"name":"Skill Name","level":"easy","questionCount":10,"correctGrade":1}]}]}'
)
ARTICLE_13_SIGNED = (
    '{"name":"Test Link Name","sourceApp":"App Name","access":{"type":"OpenForAll"},'
    '"scheduleType":"AlwaysOn",'
    '"testGradedNotificationUrl":"https://www.application.com/path/post_call_listener"}'
)

REQUEST_SAMPLES = [
    ("article8_assessment_minimal", Assessment),
    ("article8_assessment_all_properties", Assessment),
    ("article13_schedule_minimal", ScheduleSettings),
    ("article13_schedule_signed_example", ScheduleSettings),
    ("article13_schedule_all_properties", ScheduleSettings),
    ("article11_filter", ScheduleFilter),
]


def test_article_8_minimal_example_byte_for_byte() -> None:
    """The assessment built in Python serializes to exactly article 8's signed JSON."""
    assessment = Assessment(
        name="Assessment Name",
        duration=10,
        sections=[
            Section(
                name="Section Name",
                skills=[
                    Skill(
                        name="Skill Name",
                        level=SkillLevel.EASY,
                        question_count=10,
                        correct_grade=1.0,  # an integral grade is written as 1, as Mettl prints it
                    )
                ],
            )
        ],
    )
    assert to_json(assessment) == ARTICLE_8_MINIMAL


def test_article_13_signed_example_byte_for_byte() -> None:
    """The schedule built in Python serializes to exactly the sc of article 13's example."""
    settings = ScheduleSettings(
        name="Test Link Name",
        source_app="App Name",
        access=Access(type=AccessType.OPEN_FOR_ALL),
        schedule_type=ScheduleType.ALWAYS_ON,
        test_graded_notification_url="https://www.application.com/path/post_call_listener",
    )
    assert to_json(settings) == ARTICLE_13_SIGNED


@pytest.mark.parametrize(("name", "cls"), REQUEST_SAMPLES, ids=[n for n, _ in REQUEST_SAMPLES])
def test_request_samples_round_trip_byte_for_byte(name: str, cls: type) -> None:
    """Every request sample of articles 8, 11 and 13, decoded then encoded, is the same JSON."""
    data = load_json(f"samples/{name}.json")
    assert to_json(structure(data, cls)) == orjson.dumps(data).decode()


def test_fractional_grades_stay_fractional() -> None:
    """A negative marking of -0.25 is written as -0.25; only whole grades lose the ``.0``."""
    skill = Skill(
        name="S", level=SkillLevel.EASY, question_count=1, correct_grade=2.5, incorrect_grade=-0.25
    )
    assert unstructure(skill)["correctGrade"] == 2.5
    assert unstructure(skill)["incorrectGrade"] == -0.25
    assert '"incorrectGrade":-0.25' in to_json(skill)


def test_unset_properties_are_left_out() -> None:
    """A property left at None is not sent at all (not even as null)."""
    assert unstructure(ScheduleSettings(name="x")) == {"name": "x"}
    assert to_json(ScheduleFilter()) == "{}"


def test_registration_fields_travel_inline_under_their_labels() -> None:
    """A candidate's further registration fields are sent next to name and email (article 13)."""
    candidate = Candidate(
        name="Name", email="name@email.com", extra_fields={"Date of birth": "Sep 16 1998"}
    )
    assert to_json(candidate) == (
        '{"name":"Name","email":"name@email.com","Date of birth":"Sep 16 1998"}'
    )
    decoded = structure(orjson.loads(to_json(candidate)), Candidate)
    assert decoded == candidate


def test_extra_fields_never_override_the_named_properties() -> None:
    """An extra field spelled like a named property cannot replace the property's value."""
    candidate = Candidate(name="Name", extra_fields={"name": "Other"})
    assert unstructure(candidate)["name"] == "Name"


def test_schedule_window_dates_and_times_use_mettl_formats() -> None:
    """Window dates and times are written as article 13 shows them."""
    window = ScheduleWindow(
        fixed_access_option=FixedAccessOption.SLOT_WISE,
        starts_on_date=date(2022, 2, 7),
        starts_on_time=time(12, 0),
        ends_on_date=date(2022, 2, 11),
        ends_on_time=time(18, 0),
        time_zone="UTC+05:30",
    )
    assert to_json(window) == (
        '{"fixedAccessOption":"SlotWise","startsOnDate":"Mon, 07 Feb 2022",'
        '"startsOnTime":"12:00:00","endsOnDate":"Fri, 11 Feb 2022","endsOnTime":"18:00:00",'
        '"timeZone":"UTC+05:30"}'
    )


def test_responses_round_trip_through_their_wire_form() -> None:
    """A decoded schedule or result, unstructured and structured again, is equal to itself."""
    for data in load_json("samples/article11_schedules_response.json")["schedules"]:
        schedule = structure(data, Schedule)
        assert structure(unstructure(schedule), Schedule) == schedule
    record = load_json("samples/article16_candidate_completed_full.json")["candidates"][0]
    result = candidate_result_from_wire(record)
    assert structure(unstructure(result), CandidateResult) == result


def test_wire_names_of_the_articles() -> None:
    """The spellings the articles use, irregular ones included, are the wire names."""
    assert wire_names(Assessment)["exit_redirection_url"] == "exitRedirectionURL"
    assert wire_names(ScheduleSettings)["test_resume_enabled_for_expired_test_url"] == (
        "testResumeEnabledForExpiredTestURL"
    )
    assert wire_names(Candidate)["compensatory_time"] == "compensatory_time"
    assert wire_names(Schedule)["access_key"] == "accessKey"
    assert "raw" not in wire_names(Schedule)
    assert "extra_fields" not in wire_names(Candidate)


def test_the_converter_is_ours_alone() -> None:
    """No hook lands on cattrs' global converter: other users of cattrs are unaffected."""
    assert converter is not cattrs.global_converter
    wire = {"accessKey": "0x0x0x0x0x"}
    assert structure(wire, CreatedSchedule).access_key == "0x0x0x0x0x"
    assert cattrs.structure(wire, CreatedSchedule).access_key is None  # no renames there


def test_structure_of_the_wrong_shape_is_a_validation_error() -> None:
    """A string where an object belongs raises ValidationError, naming the class."""
    with pytest.raises(ValidationError, match="Schedule"):
        structure({"access": "everyone"}, Schedule)


def _broken_hook(value: Any) -> Any:
    raise RuntimeError("a bug in a hook")


@attrs.define
class _Buggy:
    """Classes whose structuring has a bug (not the data's fault)."""

    value: Any = attrs.field(converter=lambda value: value.no_such_attribute)


@attrs.define
class _Broken:
    value: Any = attrs.field(converter=_broken_hook)


def test_a_bug_in_structuring_is_not_reported_as_bad_data() -> None:
    """Only the errors that mean "not Mettl's shape" become ValidationError; a bug surfaces."""
    with pytest.raises(AttributeError, match="no_such_attribute"):
        structure({"value": 1}, _Buggy)
    with pytest.raises(RuntimeError, match="a bug in a hook"):
        structure({"value": 1}, _Broken)


def test_a_bug_in_reading_a_schedule_is_not_reported_as_bad_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """schedule_from_wire: a data error is a ValidationError, anything else propagates."""

    def broken(data: Any, cls: type) -> Any:
        raise RuntimeError("a bug")

    def refused(data: Any, cls: type) -> Any:
        raise TypeError("a string where an object belongs")

    monkeypatch.setattr(records, "_structure_schedule", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        records.schedule_from_wire({"accessKey": "k"})
    monkeypatch.setattr(records, "_structure_schedule", refused)
    with pytest.raises(ValidationError, match="Schedule"):
        records.schedule_from_wire({"accessKey": "k"})


@pytest.mark.parametrize("sent", [["Name"], "Name", 7])
def test_a_mapping_of_the_wrong_json_type_is_a_validation_error(sent: Any) -> None:
    """A webhook's registrationDetails that is no object is bad data, not a crash."""
    payload = {**load_json("samples/article13_webhook_graded_assessment.json")}
    payload["registrationDetails"] = sent
    with pytest.raises(ValidationError, match="a JSON object, not"):
        parse_webhook_event(payload)


def test_lazy_attributes_are_installed_once() -> None:
    """The installation is explicit and idempotent: a second call changes nothing."""
    before = {name: TestStatus.__dict__[name] for name in ("start_time", "analysis", "raw")}
    marks = TestResult.__dict__["section_marks"]
    install_lazy_attributes()
    assert {name: TestStatus.__dict__[name] for name in before} == before
    assert TestResult.__dict__["section_marks"] is marks
    assert isinstance(marks, property)
    result = candidate_result_from_wire(
        load_json("samples/article16_candidate_completed.json")["candidates"][0]
    )
    assert result.test_status.start_time is not None


def test_unstructure_takes_models_only() -> None:
    """unstructure() refuses what is not a model rather than guessing."""
    with pytest.raises(TypeError):
        unstructure({"name": "x"})


# --------------------------------------------------------------------------
# Property-based round trips of the request models
# --------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)  # JSON-encodable
NUMBER = st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def some(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return maybe(st.lists(strategy, max_size=3))


def member(enum: Any) -> st.SearchStrategy[Any]:
    return maybe(st.sampled_from(list(enum)))


BOOL = maybe(st.booleans())
INT = maybe(st.integers(-(10**9), 10**9))
TIMES = st.builds(time, st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))

skills = st.builds(
    Skill,
    name=maybe(TEXT),
    level=member(SkillLevel),
    question_count=INT,
    question_pooling=BOOL,
    question_type=member(QuestionType),
    correct_grade=maybe(NUMBER),
    incorrect_grade=maybe(NUMBER),
)
sections = st.builds(
    Section,
    name=maybe(TEXT),
    duration=INT,
    instructions=maybe(TEXT),
    all_questions_mandatory=BOOL,
    randomize_questions=BOOL,
    skills=some(skills),
)
assessments = st.builds(
    Assessment,
    name=maybe(TEXT),
    duration=INT,
    instructions=maybe(TEXT),
    allow_copy_paste=BOOL,
    exit_redirection_url=maybe(TEXT),
    show_report_to_candidate_on_exit=BOOL,
    on_screen_calculator=BOOL,
    sections=some(sections),
)
CANDIDATE_KEYS = set(wire_names(Candidate).values())
candidates = st.builds(
    Candidate,
    name=maybe(TEXT),
    email=maybe(TEXT),
    compensatory_time=INT,
    submission_date=maybe(TEXT),
    extra_fields=st.dictionaries(TEXT.filter(lambda k: k not in CANDIDATE_KEYS), TEXT, max_size=2),
)
visual = st.builds(
    VisualProctoring,
    mode=member(VisualProctoringMode),
    options=maybe(
        st.builds(
            VisualProctoringOptions,
            candidate_screen_capture=BOOL,
            candidate_authorization=BOOL,
            audio_optional=BOOL,
            is_audio_proctoring=BOOL,
        )
    ),
)
web = st.builds(WebProctoring, enabled=BOOL, count=INT, show_remaining_counts=BOOL)
schedule_settings = st.builds(
    ScheduleSettings,
    name=maybe(TEXT),
    source_app=maybe(TEXT),
    access=maybe(
        st.builds(
            Access,
            type=member(AccessType),
            send_email=BOOL,
            is_candidate_crf_prefilled=BOOL,
            candidates=some(candidates),
            send_reminders=BOOL,
        )
    ),
    schedule_type=member(ScheduleType),
    schedule_window=maybe(
        st.builds(
            ScheduleWindow,
            fixed_access_option=member(FixedAccessOption),
            starts_on_date=maybe(st.dates()),
            starts_on_time=maybe(TIMES),
            ends_on_date=maybe(st.dates()),
            ends_on_time=maybe(TIMES),
            time_zone=maybe(TEXT),
            location_time_zone=maybe(TEXT),
        )
    ),
    web_proctoring=maybe(web),
    visual_proctoring=maybe(visual),
    secure_browser=maybe(st.builds(SecureBrowser, enabled=BOOL)),
    protected=member(Protection),
    test_start_notification_url=maybe(TEXT),
    test_finish_notification_url=maybe(TEXT),
    test_graded_notification_url=maybe(TEXT),
    test_resume_enabled_for_expired_test_url=maybe(TEXT),
    test_notification_basic_auth_header=maybe(TEXT),
    test_grade_notification=maybe(
        st.builds(TestGradeNotification, enabled=BOOL, recipients=some(TEXT))
    ),
    ip_access_restriction=maybe(
        st.builds(
            IPAccessRestriction,
            enabled=BOOL,
            type=member(IPRestrictionType),
            ip=maybe(TEXT),
            ranges=some(st.builds(IPRange, start=maybe(TEXT), end=maybe(TEXT))),
        )
    ),
)
schedule_filters = st.builds(
    ScheduleFilter,
    visual_proctoring=maybe(visual),
    web_proctoring=maybe(web),
    type=member(AccessType),
    schedule_type=member(ScheduleType),
)


@settings(max_examples=150, deadline=None)
@given(assessments)
def test_assessment_round_trips(assessment: Assessment) -> None:
    """Any assessment comes back equal from its wire form, and from its JSON."""
    assert structure(unstructure(assessment), Assessment) == assessment
    assert structure(orjson.loads(to_json(assessment)), Assessment) == assessment


@settings(max_examples=150, deadline=None)
@given(schedule_settings)
def test_schedule_settings_round_trip(settings_: ScheduleSettings) -> None:
    """Any schedule settings come back equal from their wire form, and from their JSON."""
    assert structure(unstructure(settings_), ScheduleSettings) == settings_
    assert structure(orjson.loads(to_json(settings_)), ScheduleSettings) == settings_


@settings(max_examples=150, deadline=None)
@given(schedule_filters)
def test_schedule_filter_round_trips(schedule_filter: ScheduleFilter) -> None:
    """Any schedule filter comes back equal from its wire form, and from its JSON."""
    assert structure(unstructure(schedule_filter), ScheduleFilter) == schedule_filter
    assert structure(orjson.loads(to_json(schedule_filter)), ScheduleFilter) == schedule_filter
