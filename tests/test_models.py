"""Decoding every response sample of the articles into typed models, losing nothing."""

from __future__ import annotations

import copy
import logging
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from mettl_async import (
    AccessType,
    Analysis,
    CandidateResult,
    CandidateTestResumedEvent,
    CompletionMode,
    CreatedAssessment,
    CreatedSchedule,
    DetailedStatus,
    DifficultyMarks,
    FinishMode,
    FinishTestEvent,
    FixedAccessOption,
    GradedAssessmentEvent,
    OverallStatus,
    Paging,
    Protection,
    QuestionResponse,
    Recommendation,
    Schedule,
    ScheduleFilter,
    ScheduleType,
    SectionalScore,
    SectionMarks,
    SkillLevel,
    SkillMarks,
    StartAssessmentEvent,
    TestResult,
    TestState,
    TestStatus,
    ValidationError,
    VisualProctoringMode,
    WebhookEventType,
    _enums,
    _timefmt,
    parse_webhook_event,
)
from mettl_async._convert import (
    candidate_result_from_wire,
    schedule_from_wire,
    structure,
    unstructure,
)

from .conftest import load_json

GMT = timedelta(0)


def sample(name: str) -> Any:
    return load_json(f"samples/{name}.json")


def candidate(name: str) -> dict[str, Any]:
    """The one candidate record of an article 16 (or 17) sample page."""
    page = sample(name)
    record = page["candidates"][0] if "candidates" in page else page["candidate"]
    assert isinstance(record, dict)
    return record


# --------------------------------------------------------------------------
# Article 16: the four shapes of a candidate's record
# --------------------------------------------------------------------------


def test_candidate_who_has_not_started() -> None:
    """A ToBeTaken record has its statuses, its registration and nothing else."""
    result = candidate_result_from_wire(candidate("article16_candidate_to_be_taken"))
    assert result.email == "name@email.com"
    assert result.registration == {"Email Address": "name@email.com", "First Name": "Name"}
    assert result.proctoring_details is None
    status = result.test_status
    assert status is not None
    assert status.status is TestState.TO_BE_TAKEN
    assert status.overall_status is OverallStatus.YET_TO_START  # sent as "Yet to start"
    assert status.detailed_status is DetailedStatus.MAPPED
    assert status.start_time is None
    assert status.result is None


def test_candidate_in_progress_with_empty_last_response_time() -> None:
    """An InProgress record has an aware start time; its empty lastResponseTime is None."""
    result = candidate_result_from_wire(candidate("article16_candidate_in_progress"))
    status = result.test_status
    assert status is not None
    assert status.status is TestState.IN_PROGRESS
    assert status.overall_status is OverallStatus.IN_PROGRESS
    assert status.start_time == datetime(2022, 2, 18, 2, 37, 24, tzinfo=UTC)
    assert status.last_response_time is None
    assert status.raw["lastResponseTime"] == ""


def test_candidate_whose_result_is_being_generated() -> None:
    """An InProcessing record has start and end times but no result yet."""
    result = candidate_result_from_wire(candidate("article16_candidate_in_processing"))
    status = result.test_status
    assert status is not None
    assert status.status is TestState.IN_PROCESSING
    assert status.detailed_status is DetailedStatus.TEST_TAKER_COMPLETED
    assert status.end_time == datetime(2022, 2, 18, 2, 39, 58, tzinfo=UTC)
    assert status.result is None


def test_completed_candidate_has_the_whole_marks_tree() -> None:
    """A Completed record reads naturally down to every section, skill and difficulty level."""
    result = candidate_result_from_wire(candidate("article16_candidate_completed"))
    status = result.test_status
    assert status is not None
    assert status.status is TestState.COMPLETED
    assert status.completion_mode is CompletionMode.COMPLETED
    marks = status.result
    assert marks is not None
    assert (marks.total_marks, marks.max_marks, marks.percentile) == (1.0, 2.0, 100.0)
    assert marks.attempt_time == 45.078
    assert marks.candidate_credibility_index == "Not Applicable"
    assert marks.total_unanswered == 0.0
    assert marks.code_plagiarism == "NA"
    assert marks.analysis is None
    assert marks.section_marks is not None
    section = marks.section_marks[0]
    assert section.section_name == "Section Name"
    assert section.question_wise_response is None
    assert section.skill_marks is not None
    skill = section.skill_marks[0]
    assert skill.skill_name == "Skill Name"
    assert skill.questions is None
    assert skill.difficulty_marks is not None
    assert skill.difficulty_marks[0].level is SkillLevel.EASY  # sent as "EASY"
    assert skill.difficulty_marks[0].total_question == 2
    assert marks.difficulty_marks is not None
    assert marks.difficulty_marks[0].max_marks == 2.0
    # article 16 sample 4.1 puts these on testStatus, not in result
    assert status.performance_category is None
    assert "performanceCategory" in status.raw


def test_completed_candidate_with_ir_and_qr_additions() -> None:
    """With ir and qr, the analysis and the essay answers awaiting grading are typed too."""
    result = candidate_result_from_wire(candidate("article16_candidate_completed_full"))
    assert result.test_status is not None
    marks = result.test_status.result
    assert marks is not None
    assert marks.analysis == Analysis(
        version_id=999999,
        recommendation=[Recommendation(type="Recommendation", value="Cautiously Recommended")],
    )
    assert marks.section_marks is not None
    assert marks.section_marks[0].skill_marks is not None
    skill = marks.section_marks[0].skill_marks[0]
    essay = QuestionResponse(
        type="la",
        question_text="<div>Question Text</div>",
        question_type="Long Answer",
        marks_scored=0.0,
        max_marks=1.0,
        has_word_limit=False,
        word_limit=0,
        word_count=5,
        candidate_response="<p>Essay response for manual grading</p>",
    )
    assert skill.questions == [essay]
    assert skill.difficulty_marks is not None
    assert skill.difficulty_marks[0].questions == [essay]


@pytest.mark.parametrize("name", ["article16_ir_addition", "article16_qr_addition"])
def test_partial_records_of_ir_and_qr_are_refused_naming_what_is_missing(name: str) -> None:
    """The fragments printed for ir and qr are not records: what Mettl always sends is missing."""
    with pytest.raises(ValidationError) as raised:
        candidate_result_from_wire(candidate(name))
    assert raised.value.paths == ["testStatus.result.totalMarks"]
    assert "Mettl always sends it" in str(raised.value)


def test_article_17_fixture_with_reports_ist_times_and_gmt_copies() -> None:
    """Report links, IST times with their *_GMT copies, and result-level categories are read."""
    result = candidate_result_from_wire(candidate("mettl_api_article17_candidate"))
    status = result.test_status
    assert status is not None
    assert status.pdf_report == "<url>"
    assert status.html_report is not None
    assert status.html_report.startswith("https://mettl.com/analytics/share-report")
    assert status.start_time is not None
    assert status.start_time.utcoffset() == timedelta(hours=5, minutes=30)
    assert status.start_time == status.start_time_gmt
    assert status.end_time == status.end_time_gmt
    assert result.registration is not None
    assert result.registration["Last Name"] == "..."
    marks = status.result
    assert marks is not None
    assert marks.performance_category == "Poor"
    assert marks.performance_category_version == 1
    assert marks.analysis is not None
    assert marks.analysis.response_styles == []
    assert marks.section_marks is not None
    assert marks.section_marks[0].skill_marks is None


def test_paging_of_a_candidates_page() -> None:
    """The paging object of a page is typed, totalRecords included when sent."""
    assert structure(sample("article16_candidate_completed")["paging"], Paging) == Paging()
    paging = structure(
        {"previous": None, "next": "https://x/y?offset=20", "totalRecords": 42}, Paging
    )
    assert paging.next == "https://x/y?offset=20"
    assert paging.total_records == 42


# --------------------------------------------------------------------------
# Lazy structuring behaves like plain attributes
# --------------------------------------------------------------------------


def eager_completed() -> CandidateResult:
    """Article 16's completed sample, built by hand with the public constructors."""
    easy = DifficultyMarks(
        level=SkillLevel.EASY,
        total_question=2,
        total_marks=1.0,
        total_unanswered=0,
        max_marks=2.0,
        time_taken=45,
        total_correct_answers=1,
    )
    skill = SkillMarks(
        skill_name="Skill Name",
        total_marks=1.0,
        max_marks=2.0,
        time_taken=45.0,
        total_question=2.0,
        total_correct_answers=1.0,
        total_unanswered=0.0,
        difficulty_marks=[easy],
    )
    section = SectionMarks(
        section_name="Section Name",
        total_marks=1.0,
        max_marks=2.0,
        time_taken=0.0,
        total_question=2.0,
        total_correct_answers=1.0,
        total_unanswered=0.0,
        skill_marks=[skill],
        difficulty_marks=[easy],
    )
    return CandidateResult(
        email="name@email.com",
        registration={"Email Address": "name@email.com", "First Name": "Name"},
        test_status=TestStatus(
            status=TestState.COMPLETED,
            overall_status=OverallStatus.COMPLETED,
            detailed_status=DetailedStatus.TEST_TAKER_COMPLETED,
            start_time=datetime(2022, 2, 18, 1, 9, 52, tzinfo=UTC),
            end_time=datetime(2022, 2, 18, 1, 10, 37, tzinfo=UTC),
            completion_mode=CompletionMode.COMPLETED,
            result=TestResult(
                total_marks=1.0,
                max_marks=2.0,
                percentile=100.0,
                attempt_time=45.078,
                candidate_credibility_index="Not Applicable",
                total_question=2.0,
                total_correct_answers=1.0,
                total_unanswered=0.0,
                section_marks=[section],
                difficulty_marks=[easy],
                code_plagiarism="NA",
            ),
        ),
    )


def test_lazily_built_record_equals_the_eagerly_built_one() -> None:
    """``==`` compares every nested part, structuring the lazy ones on the way."""
    lazy = candidate_result_from_wire(candidate("article16_candidate_completed"))
    assert lazy == eager_completed()
    assert eager_completed() == candidate_result_from_wire(
        candidate("article16_candidate_completed")
    )


def test_equality_sees_a_difference_deep_down() -> None:
    """Two records that differ only in one difficulty level's marks are not equal."""
    changed = candidate("article16_candidate_completed")
    changed["testStatus"]["result"]["sectionMarks"][0]["skillMarks"][0]["difficultyMarks"][0][
        "totalMarks"
    ] = 2.0
    assert candidate_result_from_wire(changed) != eager_completed()


def test_repr_shows_the_nested_values() -> None:
    """repr is the usual attrs repr, with nested marks and parsed times, never a placeholder."""
    text = repr(candidate_result_from_wire(candidate("article16_candidate_completed")))
    assert "skill_name='Skill Name'" in text
    assert "datetime.datetime(2022, 2, 18, 1, 9, 52" in text
    assert "not yet structured" not in text
    assert "raw=" not in text


def test_lazy_parts_are_structured_once() -> None:
    """Reading a nested list twice returns the very same objects (structured once, cached)."""
    result = candidate_result_from_wire(candidate("article16_candidate_completed"))
    assert result.test_status is not None
    marks = result.test_status.result
    assert marks is not None
    assert marks.section_marks is marks.section_marks
    assert result.test_status.start_time is result.test_status.start_time


def test_a_lazy_attribute_can_be_assigned_before_it_is_read() -> None:
    """Assigning a value replaces the not-yet-structured one, as with any attribute."""
    result = candidate_result_from_wire(candidate("article16_candidate_completed"))
    assert result.test_status is not None
    marks = result.test_status.result
    assert marks is not None
    marks.section_marks = []
    assert marks.section_marks == []
    del marks.section_marks
    with pytest.raises(AttributeError):
        _ = marks.section_marks


def test_pickle_and_evolve_keep_every_part() -> None:
    """A decoded record pickles and evolves like any attrs instance, raw included."""
    result = candidate_result_from_wire(candidate("article16_candidate_completed_full"))
    clone = pickle.loads(pickle.dumps(result))
    assert clone == result
    assert clone.raw == result.raw
    moved = attrs.evolve(result, email="other@email.com")
    assert moved.email == "other@email.com"
    assert moved.test_status == result.test_status


def test_records_stay_independent_of_each_other() -> None:
    """Two records decoded from copies of the same JSON do not share their marks objects."""
    data = candidate("article16_candidate_completed")
    first = candidate_result_from_wire(data)
    second = candidate_result_from_wire(copy.deepcopy(data))
    assert first.test_status is not None
    assert second.test_status is not None
    assert first.test_status.result is not second.test_status.result
    assert first == second


def test_a_malformed_nested_part_fails_when_read_with_a_validation_error() -> None:
    """Marks that are not a list fail on first read with a ValidationError naming them."""
    data = candidate("article16_candidate_completed")
    data["testStatus"]["result"]["sectionMarks"] = "oops"
    result = candidate_result_from_wire(data)
    assert result.test_status is not None
    marks = result.test_status.result
    assert marks is not None
    assert marks.total_marks == 1.0
    with pytest.raises(ValidationError, match="sectionMarks"):
        _ = marks.section_marks


@pytest.mark.parametrize("bad", [None, "text", ["a"], 3])
def test_a_record_that_is_not_an_object_is_a_validation_error(bad: Any) -> None:
    """candidate_result_from_wire raises the library's error, not AttributeError, on junk."""
    with pytest.raises(ValidationError):
        candidate_result_from_wire(bad)


def test_performance_category_is_read_in_both_places() -> None:
    """Whichever object carries performanceCategory and analysis, the models expose it."""
    in_status = candidate("article16_candidate_completed")
    in_status["testStatus"]["performanceCategory"] = "Good"
    in_status["testStatus"]["analysis"] = {"recommendation": [{"type": "t", "value": "v"}]}
    result = candidate_result_from_wire(in_status)
    assert result.test_status is not None
    assert result.test_status.performance_category == "Good"
    assert result.test_status.analysis is not None
    assert result.test_status.analysis.recommendation == [Recommendation(type="t", value="v")]


# --------------------------------------------------------------------------
# Nothing the server sent is lost; surprises never break decoding
# --------------------------------------------------------------------------


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget values and zones already reported by earlier tests."""
    monkeypatch.setattr(_enums._warn_once, "seen", set())
    monkeypatch.setattr(_timefmt._warn_once, "seen", set())


def test_unknown_field_enum_value_and_zone_decode_and_warn_once(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A record with a new field, status and zone decodes, keeps them, and warns once each."""
    data = candidate("article16_candidate_completed")
    data["testStatus"]["status"] = "Rescored"
    data["testStatus"]["detailedStatus"] = "Flagged By AI"
    data["testStatus"]["startTime"] = "Fri, 18 Feb 2022 01:09:52 XYZT"
    data["testStatus"]["proctorScore"] = 0.93
    data["newTopLevel"] = {"anything": [1, 2]}

    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        for _ in range(2):  # the second decode reports nothing new
            result = candidate_result_from_wire(copy.deepcopy(data))
            status = result.test_status
            assert status is not None
            assert status.status == "Rescored"
            assert type(status.status) is str
            assert status.detailed_status == "Flagged By AI"
            assert status.start_time is None
            assert status.end_time == datetime(2022, 2, 18, 1, 10, 37, tzinfo=UTC)
            assert status.raw["startTime"] == "Fri, 18 Feb 2022 01:09:52 XYZT"
            assert status.raw["proctorScore"] == 0.93
            assert result.raw["newTopLevel"] == {"anything": [1, 2]}

    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "'Rescored'" in m]) == 1
    assert len([m for m in messages if "'Flagged By AI'" in m]) == 1
    assert len([m for m in messages if "'XYZT'" in m]) == 1
    assert len(messages) == 3


def test_raw_is_the_mapping_decoded_at_every_level() -> None:
    """raw holds exactly what was decoded, at the record and at each nested object."""
    data = candidate("article16_candidate_completed")
    result = candidate_result_from_wire(data)
    assert result.raw is data
    assert result.test_status is not None
    assert result.test_status.raw is data["testStatus"]
    assert result.test_status.result is not None
    assert result.test_status.result.section_marks is not None
    section = result.test_status.result.section_marks[0]
    assert section.raw is data["testStatus"]["result"]["sectionMarks"][0]


def test_raw_is_outside_equality() -> None:
    """Two records with the same typed values are equal even if their raw mappings differ."""
    data = candidate("article16_candidate_completed")
    noisy = copy.deepcopy(data)
    noisy["extra"] = True
    assert candidate_result_from_wire(data) == candidate_result_from_wire(noisy)


# --------------------------------------------------------------------------
# Article 11: schedules and the filter
# --------------------------------------------------------------------------


def test_always_on_open_schedule() -> None:
    """Article 11's first schedule: nulls where the article shows nulls, typed values elsewhere."""
    schedule = schedule_from_wire(sample("article11_schedules_response")["schedules"][0])
    assert schedule.id == 7387795
    assert schedule.access_key == "0x0x0x0x0x"
    assert schedule.status == "ACTIVE"
    assert schedule.created_at == datetime(2022, 2, 8, 11, 13, 55, tzinfo=UTC)
    assert schedule.schedule_type is ScheduleType.ALWAYS_ON
    assert schedule.schedule_window is None
    assert schedule.access is not None
    assert schedule.access.type is AccessType.OPEN_FOR_ALL
    assert schedule.access.candidates is None
    assert schedule.access.send_email is None
    assert schedule.test_start_notification_url is None
    assert schedule.test_resume_enabled_for_expired_test_url is None
    assert schedule.test_grade_notification is not None
    assert schedule.test_grade_notification.recipients is None
    assert schedule.visual_proctoring is not None
    assert schedule.visual_proctoring.mode is VisualProctoringMode.OFF
    assert schedule.visual_proctoring.options is not None
    assert schedule.visual_proctoring.options.audio_optional is True
    assert schedule.allow_test_resume == "UnSuperVised"
    assert schedule.assessment_details is not None
    assert schedule.assessment_details.duration == 5
    assert schedule.assessment_details.instructions == ""
    assert schedule.protected is Protection.NOT_ENABLED


def test_fixed_private_schedule() -> None:
    """Article 11's second schedule: its window, candidates and proctoring are typed."""
    schedule = schedule_from_wire(sample("article11_schedules_response")["schedules"][1])
    window = schedule.schedule_window
    assert window is not None
    assert window.fixed_access_option is FixedAccessOption.EXACT_TIME
    assert str(window.starts_on_date) == "2022-02-08"
    assert str(window.ends_on_time) == "12:49:00"
    assert window.location_time_zone == "Asia/Kolkata"
    assert schedule.access is not None
    assert schedule.access.type is AccessType.BY_INVITATION
    assert schedule.access.send_reminders is False
    assert schedule.access.candidates is not None
    candidate = schedule.access.candidates[0]
    assert (candidate.name, candidate.email, candidate.submission_date) == (
        "sample",
        "sample@email.com",
        None,
    )
    assert candidate.extra_fields == {}
    assert schedule.web_proctoring is not None
    assert schedule.web_proctoring.count == 10
    assert schedule.secure_browser is not None
    assert schedule.secure_browser.enabled is True
    assert schedule.is_candidate_auth_proctored is True


def test_schedules_keep_raw_and_match_the_generic_path() -> None:
    """schedule_from_wire and structure(..., Schedule) agree, and both keep raw."""
    for data in sample("article11_schedules_response")["schedules"]:
        fast = schedule_from_wire(data)
        assert fast == structure(data, Schedule)
        assert fast.raw is data


def test_filter_sample_decodes() -> None:
    """Article 11's filter sample (trailing comma removed) is a ScheduleFilter."""
    schedule_filter = structure(sample("article11_filter"), ScheduleFilter)
    assert schedule_filter.type is AccessType.BY_INVITATION
    assert schedule_filter.schedule_type is ScheduleType.FIXED
    assert schedule_filter.web_proctoring is not None
    assert schedule_filter.web_proctoring.count == 10
    assert schedule_filter.visual_proctoring is not None
    assert schedule_filter.visual_proctoring.options is not None
    assert schedule_filter.visual_proctoring.options.candidate_authorization is True


# --------------------------------------------------------------------------
# Articles 8 and 13: creation answers
# --------------------------------------------------------------------------


def test_created_assessment_answer() -> None:
    """Article 8's answer gives the new assessment's id."""
    created = structure(sample("article8_response"), CreatedAssessment)
    assert created.assessment_id == 999999
    assert created.raw["status"] == "SUCCESS"


def test_created_schedule_answer() -> None:
    """Article 13's createdSchedule gives the access key; accessUrl is read when sent."""
    data = sample("article13_created_schedule_response")["createdSchedule"]
    created = structure(data, CreatedSchedule)
    assert created == CreatedSchedule(
        assessment_id=999999,
        id=10000,
        name="Test Link Name",
        access_key="0x0x0x0x0x",
        status="ACTIVE",
    )
    with_url = structure({**data, "accessUrl": "https://tests.mettl.com/x"}, CreatedSchedule)
    assert with_url.access_url == "https://tests.mettl.com/x"


# --------------------------------------------------------------------------
# Article 13: webhooks
# --------------------------------------------------------------------------

WEBHOOKS = [
    ("article13_webhook_start_assessment", StartAssessmentEvent),
    ("article13_webhook_finish_test", FinishTestEvent),
    ("article13_webhook_graded_assessment", GradedAssessmentEvent),
    ("article13_webhook_candidate_test_resumed", CandidateTestResumedEvent),
]


@pytest.mark.parametrize(("name", "cls"), WEBHOOKS, ids=[name for name, _ in WEBHOOKS])
def test_every_webhook_payload_decodes_to_its_class(name: str, cls: type) -> None:
    """parse_webhook_event picks the class from EVENT_TYPE and fills the common fields."""
    data = sample(name)
    event = parse_webhook_event(data)
    assert type(event) is cls
    assert event.event_type == data["EVENT_TYPE"]
    assert isinstance(event.event_type, WebhookEventType)
    assert event.assessment_id == 999999  # "assessmentId" in the graded payload
    assert event.invitation_key == "0x0x0x0x0x"
    assert event.candidate_instance_id == 99999999
    assert event.context_data is None
    assert event.timestamp_gmt is not None
    assert event.timestamp_gmt.utcoffset() == GMT
    assert event.raw == data


def test_finish_event_carries_the_finish_mode() -> None:
    """finishTest says how the test ended (article 13's finish_mode table)."""
    event = parse_webhook_event(sample("article13_webhook_finish_test"))
    assert isinstance(event, FinishTestEvent)
    assert event.finish_mode is FinishMode.NORMAL_SUBMISSION
    assert event.name == "Name "  # kept exactly as sent


def test_graded_event_in_full() -> None:
    """gradedAssessment decodes its JSON-in-a-string sectional scores and its testStatus."""
    event = parse_webhook_event(sample("article13_webhook_graded_assessment"))
    assert isinstance(event, GradedAssessmentEvent)
    assert event.sectional_scores == [
        SectionalScore(section_name="Section #1", section_score=5.0, section_max_score=10.0)
    ]
    assert event.start_time is not None
    assert event.start_time == event.start_time_gmt
    assert event.registration_details == {"Email Address": "name@email.com", "First Name": "Name"}
    assert (event.marks_scored, event.max_marks, event.total_attempt_time) == (5.0, 10.0, 64)
    assert event.client_id == 99999
    assert event.grading_type == "NormalGrading"
    status = event.test_status
    assert status is not None
    assert status.status is TestState.COMPLETED
    assert status.result is not None
    assert status.result.candidate_credibility_index == "Low"
    assert status.result.performance_category is None
    # article 13 puts the analysis on testStatus
    assert status.analysis is not None
    assert status.analysis.response_styles is not None
    assert status.analysis.response_styles[0].title == "Genuine"


def test_either_spelling_of_assessment_id_is_accepted() -> None:
    """Each event reads assessment_id and assessmentId alike (article 13 uses both)."""
    start = sample("article13_webhook_start_assessment")
    start["assessmentId"] = start.pop("assessment_id")
    assert parse_webhook_event(start).assessment_id == 999999
    graded = sample("article13_webhook_graded_assessment")
    graded["assessment_id"] = graded.pop("assessmentId")
    assert parse_webhook_event(graded).assessment_id == 999999


def test_unreadable_sectional_scores_do_not_lose_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sectional_scores string that is not JSON gives None; the event and raw text remain."""
    data = sample("article13_webhook_graded_assessment")
    data["sectional_scores"] = "[{broken"
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        event = parse_webhook_event(data)
    assert isinstance(event, GradedAssessmentEvent)
    assert event.sectional_scores is None
    assert event.raw["sectional_scores"] == "[{broken"
    assert "sectional_scores" in caplog.text


@pytest.mark.parametrize(
    "payload",
    [
        {"EVENT_TYPE": "testPaused", "invitation_key": "x"},
        {"invitation_key": "x"},
        {"EVENT_TYPE": None},
    ],
    ids=["unknown", "missing", "null"],
)
def test_unknown_event_type_is_a_validation_error(payload: dict[str, Any]) -> None:
    """A payload whose EVENT_TYPE is unknown or missing raises ValidationError, not KeyError."""
    with pytest.raises(ValidationError) as caught:
        parse_webhook_event(payload)
    assert caught.value.paths == ["EVENT_TYPE"]


def test_a_payload_that_is_not_an_object_is_a_validation_error() -> None:
    """A JSON array or string posted to the webhook URL is rejected with the same error."""
    with pytest.raises(ValidationError):
        parse_webhook_event(["startAssessment"])  # type: ignore[arg-type]  # the point of the test


def test_event_type_matching_ignores_case() -> None:
    """EVENT_TYPE is matched case-insensitively, like every other value set."""
    data = sample("article13_webhook_start_assessment")
    data["EVENT_TYPE"] = "STARTASSESSMENT"
    assert isinstance(parse_webhook_event(data), StartAssessmentEvent)


def test_webhook_event_serializes_back_to_its_wire_names() -> None:
    """A decoded event unstructures with article 13's names, sectional_scores as a string again."""
    data = sample("article13_webhook_graded_assessment")
    wire = unstructure(parse_webhook_event(data))
    assert wire["EVENT_TYPE"] == "gradedAssessment"
    assert wire["assessmentId"] == 999999
    assert wire["timestamp_GMT"] == data["timestamp_GMT"]
    assert wire["start_time"] == data["start_time"]
    assert wire["sectional_scores"] == data["sectional_scores"]
    assert wire["registrationDetails"] == data["registrationDetails"]
