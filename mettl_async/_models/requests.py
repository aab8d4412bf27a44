"""Request models: the JSON a request carries (articles 3, 8, 9, 11, 13 to 15).

Attributes are snake_case; the wire names live in the rename table of
``_models.wire`` (:func:`wire_names`), which both the converter and the
validation read. Attribute order is the order the articles list properties in,
so serializing a request reproduces the articles' JSON byte for byte.

Requests (:class:`Assessment`, :class:`ScheduleSettings`,
:class:`ScheduleFilter` and the settings they nest, :class:`WhiteLabel`,
:class:`AssessmentSettings`, :class:`CandidateRegistration`) are frozen:
what is signed is what was validated. Every property is optional (``None``,
not sent): article 14 (Edit Schedule) reuses the Create Schedule shape with
everything optional, and a missing mandatory property is reported by
``validate()`` together with every other problem, with its wire path, before
any I/O. The models a request parameter carries whole (``wl``,
``assessments``, ``as``, ``sc``, ``filter``) take ``problems()`` and
``validate()`` from the :class:`~mettl_async._models.checks.Checked` mixin;
the rules themselves are in ``_validation`` (``wl``'s in ``_uploads``). Article 11's schedules reuse
the settings classes nested in ``sc`` (:class:`Access`,
:class:`ScheduleWindow`, ...); ``_models.account`` reads them into
:class:`~mettl_async.Schedule`.
"""

from __future__ import annotations

from datetime import date, time
from typing import TYPE_CHECKING, Final

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

from .checks import Checked, checks_of, raise_if

if TYPE_CHECKING:
    from mettl_async._errors import ValidationProblem

__all__ = [
    "Access",
    "Assessment",
    "AssessmentSettings",
    "Candidate",
    "CandidateRegistration",
    "IPAccessRestriction",
    "IPRange",
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

# The decorators are spelled out on each class: mypy's attrs plugin needs to see them.


# --------------------------------------------------------------------------
# Article 3: Update White Label (the ``wl`` JSON)
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class WhiteLabel(Checked):
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
class Assessment(Checked):
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


# --------------------------------------------------------------------------
# Article 9: Edit Assessment Settings (the ``as`` JSON)
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AssessmentSettings(Checked):
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
class ScheduleSettings(Checked):
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
        return checks_of(type(self)).problems(self, for_create=for_create)

    def validate(self, *, for_create: bool = True) -> None:
        """Raise one :class:`~mettl_async.ValidationError` listing every problem, if any."""
        raise_if(self.problems(for_create=for_create), subject=checks_of(type(self)).subject)


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


# --------------------------------------------------------------------------
# Article 11: Get All Schedules in Account (the ``filter`` JSON)
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ScheduleFilter(Checked):
    """The ``filter`` JSON of article 11 (and of article 10)."""

    visual_proctoring: VisualProctoring | None = None
    web_proctoring: WebProctoring | None = None
    type: AccessType | str | None = None
    schedule_type: ScheduleType | str | None = None
