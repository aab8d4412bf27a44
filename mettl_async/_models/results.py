"""Candidate results (articles 16 to 18): the hot path of a bulk walk.

:class:`CandidateResult` and :class:`TestInstance` down to
:class:`DifficultyMarks` are built by ``_convert`` without ``__init__``; their
result's marks, analysis and timestamps are structured on first access, then
cached; ``==``, ``repr`` and pickling read them like any attribute. Like every
response, each keeps the mapping it was decoded from in ``raw`` (read from the
page's JSON on first access when it came in a listing); numbers are kept as
sent (``2`` here, ``2.0`` there).

Attributes without a default are what Mettl always sends: present in every
sample that has the object (article 16's four record shapes, article 17's
record, article 13's graded webhook). A record without one, or with ``null``
there, fails with :class:`~mettl_async.ValidationError` naming the wire path;
everything else is optional and ``None`` when not sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from mettl_async._enums import (
    CompletionMode,
    DetailedStatus,
    OverallStatus,
    SkillLevel,
    TestState,
)

__all__ = [
    "Analysis",
    "CandidateResult",
    "DifficultyMarks",
    "QuestionResponse",
    "Recommendation",
    "ResponseStyle",
    "SectionMarks",
    "SkillMarks",
    "TestInstance",
    "TestResult",
    "TestStatus",
]


@attrs.define(kw_only=True)
class QuestionResponse:
    """An essay answer awaiting manual grading, sent with ``qr=true`` (article 16, 4.3).

    ``question_type`` is the display name (``"Long Answer"``), not a
    :class:`~mettl_async.QuestionType`.
    """

    type: str | None = None
    question_text: str | None = None
    question_type: str | None = None
    marks_scored: float | None = None
    max_marks: float | None = None
    has_word_limit: bool | None = None
    word_limit: int | None = None
    word_count: int | None = None
    candidate_response: str | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class DifficultyMarks:
    """Marks at one difficulty level (``"EASY"``; article 16).

    Counts arrive as JSON integers here and as floats elsewhere (``2`` vs
    ``2.0``); numbers are kept as sent.
    """

    level: SkillLevel | str
    total_question: float
    total_marks: float
    total_unanswered: float
    max_marks: float
    time_taken: float
    total_correct_answers: float
    questions: list[QuestionResponse] | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class SkillMarks:
    """Marks in one skill of a section (article 16)."""

    skill_name: str
    total_marks: float
    max_marks: float
    time_taken: float
    total_question: float
    total_correct_answers: float
    total_unanswered: float
    questions: list[QuestionResponse] | None = None
    difficulty_marks: list[DifficultyMarks] | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class SectionMarks:
    """Marks in one section (article 16)."""

    section_name: str
    total_marks: float
    max_marks: float
    time_taken: float
    total_question: float
    total_correct_answers: float
    total_unanswered: float
    skill_marks: list[SkillMarks] | None = None
    difficulty_marks: list[DifficultyMarks] | None = None
    question_wise_response: Any = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class Recommendation:
    """One recommendation of the analysis, sent with ``ir`` (article 16, 4.2)."""

    type: str | None = None
    value: str | None = None


@attrs.define(kw_only=True)
class ResponseStyle:
    """One response style of the analysis (article 13's graded webhook)."""

    title: str | None = None
    description: str | None = None


@attrs.define(kw_only=True)
class Analysis:
    """``analysis``: recommendation and response styles, where configured (articles 13, 16)."""

    version_id: int | None = None
    recommendation: list[Recommendation] | None = None
    response_styles: list[ResponseStyle] | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class TestResult:
    """``testStatus.result``: a completed test's marks (article 16).

    ``performance_category``, ``performance_category_version`` and ``analysis``
    appear here in some documents and on :class:`TestStatus` in others
    (article 16 sample 4.1 vs article 13's graded webhook); both places are read.
    """

    __test__ = False  # not a pytest test class, whatever the name suggests

    total_marks: float
    max_marks: float
    percentile: float
    attempt_time: float
    candidate_credibility_index: str
    total_question: float
    total_correct_answers: float
    total_unanswered: float
    section_marks: list[SectionMarks]
    difficulty_marks: list[DifficultyMarks] | None = None
    code_plagiarism: str | None = None
    performance_category: str | None = None
    performance_category_version: int | None = None
    analysis: Analysis | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class TestStatus:
    """``testStatus`` in its four shapes (article 16).

    ``ToBeTaken`` carries the statuses only; ``InProgress`` adds ``start_time``
    and ``last_response_time``; ``InProcessing`` adds ``end_time``;
    ``Completed`` adds ``completion_mode``, ``result`` and, when Mettl sends
    them, the ``pdf_report``/``html_report`` links.
    """

    __test__ = False  # not a pytest test class, whatever the name suggests

    status: TestState | str
    overall_status: OverallStatus | str | None = None
    detailed_status: DetailedStatus | str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    last_response_time: datetime | None = None
    start_time_gmt: datetime | None = None
    end_time_gmt: datetime | None = None
    completion_mode: CompletionMode | str | None = None
    result: TestResult | None = None
    pdf_report: str | None = None
    html_report: str | None = None
    performance_category: str | None = None
    performance_category_version: int | None = None
    analysis: Analysis | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class CandidateResult:
    """One candidate's registration, status and result in a schedule (articles 16, 17).

    ``registration`` maps each registration-field label (``"Email Address"``,
    ``"First Name"``) to its value. ``proctoring_details`` is kept as sent: its
    shape is not documented.
    """

    email: str
    registration: dict[str, str]
    test_status: TestStatus
    proctoring_details: Any = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class TestInstance(CandidateResult):
    """One of a candidate's results across the account (article 18, ``testInstances``).

    Article 18 gives no shape; each instance is read as article 17's
    candidate, plus the schedule and assessment it belongs to under the
    names below (our reading: they are ``None`` if Mettl names them
    otherwise, and ``raw`` holds everything it sent).
    """

    __test__ = False  # not a pytest test class, whatever the name suggests

    access_key: str | None = None
    schedule_name: str | None = None
    assessment_id: int | None = None
    assessment_name: str | None = None
