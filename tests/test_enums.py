"""Enums: the articles' value sets, matched case-insensitively, never breaking decoding."""

from __future__ import annotations

import logging

import pytest

from mettl_async import (
    CompletionMode,
    DetailedStatus,
    FinishMode,
    MettlEnum,
    OverallStatus,
    QuestionType,
    SkillLevel,
    TestState,
    WebhookEventType,
    _enums,
)

MEMBERS = [member for enum in _enums.ALL_ENUMS for member in enum]

# article 16, "OverallStatus and DetailedStatus", as printed (spacing and case included)
STATUS_TABLE = [
    ("Yet to Start", "Mapped"),
    ("Yet to Start", "Invited"),
    ("Yet to Start", "Registered"),
    ("Not Started", "Access Expired"),
    ("In-progress", "In-progress"),
    ("In-progress", "Awaiting Resume Permission"),
    ("Completed", "Test-taker completed"),
    ("Completed", "Time Over"),
    ("Test Stopped", "Mic Mute Limit exceeded"),
    ("Test Stopped", "Browsing Tolerance Limit Exceeded"),
    ("Test Stopped", "Proctor Stopped "),
    ("Test Stopped", "Suspicious Software Detected"),
    ("Test Stopped", "Multiple Screen Detected"),
    ("Test Stopped", "Prohibited Apps Running"),
    ("Test Stopped", "Screen Capture/Recording Detected"),
    ("Test Stopped", "Screen Sharing/Remote Access Detected "),
    ("Blocked", "Authorizer Blocked"),
    ("Disconnected", "Disconnected from Server"),
    ("Disconnected", "Test Window Closed"),
    ("Disconnected", "Awaiting Test-taker Resume"),
]
# article 16, "Completion Modes"; article 13, "Finish and Completion Modes"
COMPLETION_MODES = [
    "AutoCompleted",
    "NA",
    "BrowsingToleranceExceeded",
    "Expired",
    "Completed",
    "ParentFinished",
    "ProctoredFinish",
    "ResumeEnabled",
    "SuspiciousSoftwareFinish",
    "CandidateClosed",
]
FINISH_MODES = [
    "TimeExpired",
    "Blocked",
    "BrowsingToleranceExceeded",
    "TestExpired",
    "NormalSubmission",
    "ParentFinish",
    "ProctoredFinish",
    "NA",
    "SuspiciousSoftwareFinish",
    "CandidateClosed",
]


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which unknown values were already reported, so a test sees its own warnings."""
    monkeypatch.setattr(_enums._warn_once, "seen", set())


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: f"{type(m).__name__}.{m.name}")
def test_every_documented_value_decodes_to_its_member(member: MettlEnum) -> None:
    """Each value the articles list decodes to its member, which is also that string."""
    assert type(member).parse(member.value) is member
    assert member == member.value
    assert str(member) == member.value


@pytest.mark.parametrize(("overall", "detailed"), STATUS_TABLE, ids=lambda v: v.strip())
def test_article_16_status_table_decodes_as_printed(overall: str, detailed: str) -> None:
    """Every row of article 16's status table decodes, whatever its case and trailing spaces."""
    assert isinstance(OverallStatus.parse(overall), OverallStatus)
    assert isinstance(DetailedStatus.parse(detailed), DetailedStatus)


@pytest.mark.parametrize("value", COMPLETION_MODES)
def test_completion_modes_of_articles_13_and_16_decode(value: str) -> None:
    """Every completionMode in the articles' tables is a member."""
    assert isinstance(CompletionMode.parse(value), CompletionMode)


@pytest.mark.parametrize("value", FINISH_MODES)
def test_finish_modes_of_article_13_decode(value: str) -> None:
    """Every finish_mode in article 13's table is a member."""
    assert isinstance(FinishMode.parse(value), FinishMode)


@pytest.mark.parametrize(
    ("enum", "text", "member"),
    [
        (DetailedStatus, "Test-taker completed", DetailedStatus.TEST_TAKER_COMPLETED),
        (DetailedStatus, "Test-taker Completed", DetailedStatus.TEST_TAKER_COMPLETED),
        (OverallStatus, "Yet to Start", OverallStatus.YET_TO_START),
        (OverallStatus, "Yet to start", OverallStatus.YET_TO_START),
        (SkillLevel, "EASY", SkillLevel.EASY),
        (QuestionType, "long_answer", QuestionType.LONG_ANSWER),
        (WebhookEventType, "GRADEDASSESSMENT", WebhookEventType.GRADED_ASSESSMENT),
        (DetailedStatus, "  proctor   stopped ", DetailedStatus.PROCTOR_STOPPED),
    ],
)
def test_matching_ignores_case_and_spacing(
    enum: type[MettlEnum], text: str, member: object
) -> None:
    """Where the articles disagree on case ("Test-taker completed"), both spellings match."""
    assert enum.parse(text) is member
    assert enum.parse(text) is member  # the remembered spelling gives the same member


def test_none_stays_none() -> None:
    """A null in the JSON is None, not a warning."""
    assert TestState.parse(None) is None


def test_unknown_value_is_kept_as_text_and_reported_once(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A value Mettl adds later decodes as the plain string, with one WARNING however often seen."""
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        first = TestState.parse("Archived")
        second = TestState.parse("Archived")
    assert first == second == "Archived"
    assert type(first) is str
    warnings = [r for r in caplog.records if "Archived" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].name == "mettl_async.models"
    assert "TestState" in warnings[0].getMessage()


def test_same_unknown_value_in_two_enums_is_reported_for_each(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The once-only rule is per (enum, value): each enum reports its own surprise."""
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        TestState.parse("Paused")
        OverallStatus.parse("Paused")
    assert len([r for r in caplog.records if "Paused" in r.getMessage()]) == 2


def test_a_non_string_value_becomes_text(fresh_warnings: None) -> None:
    """Even a number or a list where an enum belongs decodes (as text) instead of raising."""
    assert TestState.parse(3) == "3"
    assert TestState.parse(["Completed"]) == "['Completed']"


def test_warnings_stop_growing_past_the_limit(
    fresh_warnings: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A sender inventing endless values cannot grow memory without bound; they go to DEBUG."""
    monkeypatch.setattr(_enums._warn_once, "limit", 2)
    with caplog.at_level(logging.DEBUG, logger="mettl_async"):
        for value in ("a1", "a2", "a3"):
            assert TestState.parse(value) == value
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.WARNING, logging.DEBUG]
    assert len(_enums._warn_once.seen) == 2
