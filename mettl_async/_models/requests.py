"""Typed models of the objects in Mettl's articles 1 to 19.

Attributes are snake_case; the wire names live in the rename table of
``_models.wire`` (:func:`wire_names`), which both the converter and the
validation read. Attribute order is the order the articles list properties in,
so serializing a request reproduces the articles' JSON byte for byte.

Two families:

- **requests** (:class:`Assessment`, :class:`ScheduleSettings`,
  :class:`ScheduleFilter` and the settings they nest) are frozen. Every
  property is optional (``None``, not sent): article 14 (Edit Schedule) reuses
  the Create Schedule shape with everything optional, and a missing mandatory
  property is reported by ``validate()`` together with every other problem,
  with its wire path, before any I/O.
- **responses** (:class:`Schedule`, :class:`CandidateResult`,
  :class:`CreatedSchedule`, the webhook events, ...) are mutable and keep the
  mapping they were decoded from in ``raw`` (excluded from ``==`` and
  ``repr``): unknown fields are accepted silently and nothing the server sent
  is lost. A value an enum does not know stays a plain ``str``; a timestamp
  that cannot be read is ``None`` (its text is in ``raw``).

The result classes (:class:`CandidateResult` down to :class:`DifficultyMarks`)
are the hot path of a bulk walk. They are built by ``_convert`` without
``__init__`` and their nested marks, analysis and timestamps are structured on
first access, from ``raw``, then cached; ``==``, ``repr`` and pickling read
them like any attribute.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Final

import attrs

from mettl_async._enums import (
    AccessType,
    FixedAccessOption,
    IPRestrictionType,
    Protection,
    QuestionType,
    ScheduleType,
    SkillLevel,
    VisualProctoringMode,
)

if TYPE_CHECKING:
    from mettl_async._errors import RequestError, ValidationProblem

__all__ = [
    "PBT",
    "Access",
    "AccountInfo",
    "Assessment",
    "AssessmentDetails",
    "AssessmentInfo",
    "AssessmentSettings",
    "Candidate",
    "CandidateRegistration",
    "CreatedAssessment",
    "CreatedSchedule",
    "IPAccessRestriction",
    "IPRange",
    "Paging",
    "RegistrationOutcome",
    "Schedule",
    "ScheduleFilter",
    "ScheduleSettings",
    "ScheduleWindow",
    "Section",
    "SecureBrowser",
    "Skill",
    "TestGradeNotification",
    "VisualProctoring",
    "VisualProctoringOptions",
    "WebProctoring",
    "WhiteLabel",
]

# Requests are frozen (what is signed is what was validated); responses are mutable.
# The decorators are spelled out on each class: mypy's attrs plugin needs to see them.


# --------------------------------------------------------------------------
# Articles 1 to 5: the account, its white label, the pre-built tests (PBTs)
# --------------------------------------------------------------------------


@attrs.define(kw_only=True)
class AccountInfo:
    """``accountInfo``: the account's details (article 1, ``GET /account``).

    Article 1 lists what it holds (email id, name, account type, logo, white
    label, compliance info, candidate registration fields) but not the field
    names; the names below are our reading of it. ``raw`` holds every field
    exactly as Mettl sent it, whatever its name.
    """

    email: str | None = None
    name: str | None = None
    account_type: str | None = None
    logo: Any = None
    white_label: Any = None
    compliance_info: Any = None
    candidate_registration_fields: Any = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class WhiteLabel:
    """The ``wl`` JSON of Update White Label (article 3): colours of the test window.

    Each colour is a hex value **without** ``#`` (``"1A2B3C"``). Only the
    properties set are sent. Article 3 names a further property our copy cuts
    off (the account's custom test URL); pass a mapping to
    :meth:`~mettl_async.MettlClient.update_white_label` to send properties
    this class does not know.
    """

    header_background_color: str | None = None
    header_font_color: str | None = None
    button_color: str | None = None
    button_font_color: str | None = None

    def problems(self) -> list[ValidationProblem]:
        """Every problem Mettl would reject, each with its wire path; empty when valid."""
        from mettl_async._validation import white_label_problems

        return white_label_problems(self)

    def validate(self) -> None:
        """Raise one :class:`~mettl_async.ValidationError` listing every problem, if any."""
        from mettl_async._validation import raise_if

        raise_if(self.problems(), subject="white label")


@attrs.define(kw_only=True)
class PBT:
    """A Pre-Built Test of Mettl's library (article 4, ``GET /pbts``).

    Article 4 lists its contents (id, name, short and long description, URL,
    price, sample report URL, relevant industries, keywords) but not the
    field names; the names below are our reading of it and ``raw`` holds the
    record exactly as sent. ``id`` is what :meth:`~mettl_async.MettlClient.add_pbts`
    takes.
    """

    id: int | None = None
    name: str | None = None
    short_description: str | None = None
    long_description: str | None = None
    url: str | None = None
    price: Any = None
    sample_report_url: str | None = None
    industries: Any = None
    keywords: Any = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


# --------------------------------------------------------------------------
# Article 8: Create Assessment (the ``assessments`` JSON)
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Skill:
    """Questions drawn from one skill of the question bank, at one level (article 8)."""

    name: str | None = None
    level: SkillLevel | str | None = None
    question_count: int | None = None
    question_pooling: bool | None = None
    question_type: QuestionType | str | None = None
    correct_grade: float | None = None
    incorrect_grade: float | None = None


@attrs.frozen(kw_only=True)
class Section:
    """A section of an assessment (article 8)."""

    name: str | None = None
    duration: int | None = None
    instructions: str | None = None
    all_questions_mandatory: bool | None = None
    randomize_questions: bool | None = None
    skills: list[Skill] | None = None


@attrs.frozen(kw_only=True)
class Assessment:
    """The ``assessments`` JSON of Create Assessment (article 8).

    Mandatory for Mettl: ``name``, ``sections`` (each with ``name`` and
    ``skills``; each skill with ``name``, ``level``, ``question_count`` and
    ``correct_grade``) and a ``duration`` here or on every section. Call
    :meth:`validate` to check all of it at once.
    """

    name: str | None = None
    duration: int | None = None
    instructions: str | None = None
    allow_copy_paste: bool | None = None
    exit_redirection_url: str | None = None
    show_report_to_candidate_on_exit: bool | None = None
    on_screen_calculator: bool | None = None
    sections: list[Section] | None = None

    def problems(self) -> list[ValidationProblem]:
        """Every problem Mettl would reject, each with its wire path; empty when valid."""
        from mettl_async._validation import assessment_problems

        return assessment_problems(self)

    def validate(self) -> None:
        """Raise one :class:`~mettl_async.ValidationError` listing every problem, if any."""
        from mettl_async._validation import raise_if

        raise_if(self.problems(), subject="assessment")


@attrs.define(kw_only=True)
class CreatedAssessment:
    """The answer to Create Assessment: the new assessment's id (article 8)."""

    assessment_id: int | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


# --------------------------------------------------------------------------
# Articles 6, 7 and 9: listing, reading and editing assessments
# --------------------------------------------------------------------------


@attrs.define(kw_only=True)
class AssessmentInfo:
    """An assessment as articles 6 (the listing) and 7 (one assessment) return it.

    Articles 6 and 7 list its contents (name, id, duration, tests taken, max
    marks, candidate registration fields, sectional info) in prose only: the
    names below are our reading, ``sections`` and ``registration_fields`` are
    kept as sent, and ``raw`` holds the record exactly as Mettl sent it.
    """

    id: int | None = None
    name: str | None = None
    duration: int | None = None
    instructions: str | None = None
    created_at: datetime | None = None
    test_taken: int | None = None
    max_marks: float | None = None
    registration_fields: Any = None
    sections: Any = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class AssessmentSettings:
    """The ``as`` JSON of Edit Assessment Settings (article 9).

    Only the properties set are sent: send just what you want to change.
    Note ``show_report_to_candidate`` here, where Create Assessment (article 8)
    says ``showReportToCandidateOnExit``.
    """

    instructions: str | None = None
    allow_copy_paste: bool | None = None
    exit_redirection_url: str | None = None
    show_report_to_candidate: bool | None = None
    on_screen_calculator: bool | None = None

    def problems(self) -> list[ValidationProblem]:
        """Every problem Mettl would reject, each with its wire path; empty when valid."""
        from mettl_async._validation import assessment_settings_problems

        return assessment_settings_problems(self)

    def validate(self) -> None:
        """Raise one :class:`~mettl_async.ValidationError` listing every problem, if any."""
        from mettl_async._validation import raise_if

        raise_if(self.problems(), subject="assessment settings")


# --------------------------------------------------------------------------
# Article 13: Create Schedule (the ``sc`` JSON); shared with article 11's schedules
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Candidate:
    """A candidate of a ``ByInvitation`` schedule (article 13; article 11 adds ``submissionDate``).

    ``extra_fields`` holds every further registration field under its exact
    label (``{"Date of birth": "Sep 16 1998"}``); they are sent inline, next
    to ``name`` and ``email``, as article 13 prescribes.
    """

    name: str | None = None
    email: str | None = None
    compensatory_time: int | None = None
    submission_date: str | None = None
    extra_fields: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Access:
    """``access``: who may take the test (article 13; article 11 adds ``sendReminders``)."""

    type: AccessType | str | None = None
    send_email: bool | None = None
    is_candidate_crf_prefilled: bool | None = None
    candidates: list[Candidate] | None = None
    send_reminders: bool | None = None


@attrs.frozen(kw_only=True)
class ScheduleWindow:
    """``scheduleWindow``: when a ``Fixed`` schedule is open (article 13).

    Dates travel as ``"Mon, 07 Feb 2022"``, times as ``"12:00:00"``; one of
    ``time_zone`` (``"UTC+05:30"``) or ``location_time_zone``
    (``"Asia/Kolkata"``) is needed.
    """

    fixed_access_option: FixedAccessOption | str | None = None
    starts_on_date: date | None = None
    starts_on_time: time | None = None
    ends_on_date: date | None = None
    ends_on_time: time | None = None
    time_zone: str | None = None
    location_time_zone: str | None = None


@attrs.frozen(kw_only=True)
class WebProctoring:
    """``webProctoring``: browsing tolerance (articles 11, 13)."""

    enabled: bool | None = None
    count: int | None = None
    show_remaining_counts: bool | None = None


@attrs.frozen(kw_only=True)
class VisualProctoringOptions:
    """``visualProctoring.options`` (article 13; article 11 adds the two audio flags)."""

    candidate_screen_capture: bool | None = None
    candidate_authorization: bool | None = None
    audio_optional: bool | None = None
    is_audio_proctoring: bool | None = None


@attrs.frozen(kw_only=True)
class VisualProctoring:
    """``visualProctoring``: advanced visual proctoring (articles 11, 13)."""

    mode: VisualProctoringMode | str | None = None
    options: VisualProctoringOptions | None = None


@attrs.frozen(kw_only=True)
class SecureBrowser:
    """``secureBrowser`` (articles 11, 13)."""

    enabled: bool | None = None


@attrs.frozen(kw_only=True)
class TestGradeNotification:
    """``testGradeNotification``: result emails to ``recipients`` (articles 11, 13)."""

    __test__ = False  # not a pytest test class, whatever the name suggests

    enabled: bool | None = None
    recipients: list[str] | None = None


@attrs.frozen(kw_only=True)
class IPRange:
    """One IPv4 range of ``ipAccessRestriction.ranges`` (article 13)."""

    start: str | None = None
    end: str | None = None


@attrs.frozen(kw_only=True)
class IPAccessRestriction:
    """``ipAccessRestriction`` (articles 11, 13): one address (SINGLE) or ranges (RANGE)."""

    enabled: bool | None = None
    type: IPRestrictionType | str | None = None
    ip: str | None = None
    ranges: list[IPRange] | None = None


@attrs.frozen(kw_only=True)
class ScheduleSettings:
    """The ``sc`` JSON of Create Schedule (article 13) and Edit Schedule (article 14).

    Every property is optional here; ``validate(for_create=True)`` enforces
    what Create Schedule needs (``name``, ``source_app``, ``access.type``,
    ``schedule_type``) and every conditional rule of article 13.
    """

    name: str | None = None
    source_app: str | None = None
    access: Access | None = None
    schedule_type: ScheduleType | str | None = None
    schedule_window: ScheduleWindow | None = None
    web_proctoring: WebProctoring | None = None
    visual_proctoring: VisualProctoring | None = None
    secure_browser: SecureBrowser | None = None
    protected: Protection | str | None = None
    test_start_notification_url: str | None = None
    test_finish_notification_url: str | None = None
    test_graded_notification_url: str | None = None
    test_resume_enabled_for_expired_test_url: str | None = None
    test_notification_basic_auth_header: str | None = None
    test_grade_notification: TestGradeNotification | None = None
    ip_access_restriction: IPAccessRestriction | None = None

    def problems(self, *, for_create: bool = True) -> list[ValidationProblem]:
        """Every problem Mettl would reject, each with its wire path; empty when valid.

        ``for_create=False`` checks an Edit Schedule body (article 14): nothing is
        mandatory except ``access.type`` when ``access`` is sent.
        """
        from mettl_async._validation import schedule_settings_problems

        return schedule_settings_problems(self, for_create=for_create)

    def validate(self, *, for_create: bool = True) -> None:
        """Raise one :class:`~mettl_async.ValidationError` listing every problem, if any."""
        from mettl_async._validation import raise_if

        raise_if(self.problems(for_create=for_create), subject="schedule settings")


@attrs.define(kw_only=True)
class CreatedSchedule:
    """``createdSchedule``, the answer to Create Schedule (article 13)."""

    assessment_id: int | None = None
    id: int | None = None
    name: str | None = None
    access_key: str | None = None
    access_url: str | None = None
    status: str | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


# --------------------------------------------------------------------------
# Article 15: Register Candidates in Schedule
# --------------------------------------------------------------------------

#: The registration field every candidate needs (article 15; never skippable).
EMAIL_FIELD: Final = "Email Address"
#: The other registration field that can never be skipped (article 15).
FIRST_NAME_FIELD: Final = "First Name"


@attrs.frozen(kw_only=True)
class CandidateRegistration:
    """One candidate of Register Candidates (article 15).

    ``fields`` maps the schedule's registration-field **labels** to values,
    exactly as the schedule names them (``{"Email Address": ..., "First
    Name": ..., "Last Name": ..., "SAP ID": ...}``); ``Email Address`` and
    ``First Name`` are always required. ``context_data`` (free text, echoed in
    webhooks) and ``compensatory_time`` (extra minutes) travel in
    ``rd.optionalParams``, matched to the candidate by email.
    """

    fields: dict[str, str] = attrs.field(factory=dict)
    context_data: str | None = None
    compensatory_time: int | None = None

    @property
    def email(self) -> str:
        """The candidate's ``Email Address`` (empty if missing)."""
        value = self.fields.get(EMAIL_FIELD)
        return value if isinstance(value, str) else ""


@attrs.define(kw_only=True)
class RegistrationOutcome:
    """What became of one candidate of :meth:`~mettl_async.MettlClient.register_candidates`.

    ``registered`` is true when Mettl registered the candidate; ``url`` is
    then the candidate's own test link. Otherwise ``code`` and ``message``
    say why: Mettl's per-candidate error (an item of ``registrationStatus``
    whose status is an error, like E028), or the error of the whole request
    that carried this candidate, which is also in ``error`` (a
    :class:`~mettl_async.RequestError`: a timeout, E607, ...). ``raw`` is the
    candidate's item of ``registrationStatus`` as sent (empty when there was none).
    """

    email: str
    registered: bool
    url: str | None = None
    status: str | None = None
    code: str | None = None
    message: str | None = None
    error: RequestError | None = attrs.field(default=None, eq=False)
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


# --------------------------------------------------------------------------
# Article 11: Get All Schedules in Account
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ScheduleFilter:
    """The ``filter`` JSON of article 11 (and of article 10)."""

    visual_proctoring: VisualProctoring | None = None
    web_proctoring: WebProctoring | None = None
    type: AccessType | str | None = None
    schedule_type: ScheduleType | str | None = None

    def problems(self) -> list[ValidationProblem]:
        """Every problem Mettl would reject, each with its wire path; empty when valid."""
        from mettl_async._validation import schedule_filter_problems

        return schedule_filter_problems(self)

    def validate(self) -> None:
        """Raise one :class:`~mettl_async.ValidationError` listing every problem, if any."""
        from mettl_async._validation import raise_if

        raise_if(self.problems(), subject="schedule filter")


@attrs.define(kw_only=True)
class AssessmentDetails:
    """``assessmentDetails`` of a schedule (article 11)."""

    id: int | None = None
    duration: int | None = None
    name: str | None = None
    instructions: str | None = None
    created_at: datetime | None = None


@attrs.define(kw_only=True)
class Schedule:
    """A schedule (test link) as article 11 lists it; nulls wherever Mettl sends them."""

    id: int | None = None
    name: str | None = None
    access_key: str | None = None
    access_url: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    image_proctoring: bool | None = None
    web_proctoring: WebProctoring | None = None
    schedule_type: ScheduleType | str | None = None
    schedule_window: ScheduleWindow | None = None
    access: Access | None = None
    ip_access_restriction: IPAccessRestriction | None = None
    source_app: str | None = None
    test_start_notification_url: str | None = None
    test_finish_notification_url: str | None = None
    test_graded_notification_url: str | None = None
    test_resume_enabled_for_expired_test_url: str | None = None
    is_candidate_auth_proctored: bool | None = None
    test_grade_notification: TestGradeNotification | None = None
    visual_proctoring: VisualProctoring | None = None
    allow_test_resume: str | None = None
    secure_browser: SecureBrowser | None = None
    assessment_details: AssessmentDetails | None = None
    protected: Protection | str | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.define(kw_only=True)
class Paging:
    """``paging`` of a listing: links to the neighbouring pages and the total (articles 6, 16)."""

    previous: str | None = None
    next: str | None = None
    total_records: int | None = None
