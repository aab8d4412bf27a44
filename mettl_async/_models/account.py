"""What Mettl answers about the account (articles 1 to 15, the results aside).

The account and its PBTs, its assessments and schedules as listed and read,
and the answers to the requests that create or register something. Like
every response, these are mutable and keep the mapping they were decoded
from in ``raw`` (excluded from ``==`` and ``repr``): unknown fields are
accepted silently and nothing the server sent is lost. A value an enum does
not know stays a plain ``str``; a timestamp that cannot be read is ``None``
(its text is in ``raw``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from mettl_async._enums import Protection, ScheduleType

from .requests import (
    Access,
    IPAccessRestriction,
    ScheduleWindow,
    SecureBrowser,
    TestGradeNotification,
    VisualProctoring,
    WebProctoring,
)

if TYPE_CHECKING:
    from mettl_async._errors import RequestError

__all__ = [
    "PBT",
    "AccountInfo",
    "AssessmentDetails",
    "AssessmentInfo",
    "CreatedAssessment",
    "CreatedSchedule",
    "Paging",
    "RegistrationOutcome",
    "Schedule",
]


# --------------------------------------------------------------------------
# Articles 1 to 5: the account and the pre-built tests (PBTs)
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
# Articles 6 to 8: listing, reading and creating assessments
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


@attrs.define(kw_only=True)
class CreatedAssessment:
    """The answer to Create Assessment: the new assessment's id (article 8)."""

    assessment_id: int | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


# --------------------------------------------------------------------------
# Article 11: Get All Schedules in Account
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Article 13: Create Schedule
# --------------------------------------------------------------------------


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
