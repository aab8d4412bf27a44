"""Checks a request model against the rules of Mettl's articles, before any I/O.

Each ``*_problems`` function returns every problem it finds (never stopping at
the first), each a :class:`~mettl_async.ValidationProblem` whose path uses wire
names from the request parameter down, as Mettl would name it:
``sc.scheduleWindow.timeZone``, ``assessments.sections[0].skills[1].correctGrade``.
The models' ``validate()`` methods raise them together as one
:class:`~mettl_async.ValidationError`. Pure: no I/O, no clock.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Final, TypeGuard, TypeVar
from urllib.parse import urlsplit

from ._enums import (
    AccessType,
    FixedAccessOption,
    IPRestrictionType,
    MettlEnum,
    Protection,
    QuestionType,
    ScheduleType,
    SkillLevel,
    VisualProctoringMode,
)
from ._errors import ValidationError, ValidationProblem
from ._models import (
    REQUEST_PARAMETERS,
    Access,
    Assessment,
    Candidate,
    IPAccessRestriction,
    IPRange,
    ScheduleFilter,
    ScheduleSettings,
    ScheduleWindow,
    Section,
    Skill,
    TestGradeNotification,
    VisualProctoring,
    VisualProctoringOptions,
    WebProctoring,
    wire_names,
)

__all__ = [
    "LIMIT_RANGE",
    "assessment_problems",
    "check_limit",
    "raise_if",
    "schedule_filter_problems",
    "schedule_settings_problems",
]

M = TypeVar("M")

#: ``limit`` of every paginated listing: 1 to 100 (articles 6, 11, 16).
LIMIT_RANGE: Final = range(1, 101)

# A pragmatic check, not RFC 5322: something@domain.tld, no spaces.
_EMAIL_RE: Final = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
# article 13: "UTC+05:30", "UTC-08:00"
_UTC_OFFSET_RE: Final = re.compile(r"UTC[+-](?:0\d|1[0-4]):[0-5]\d")
# article 13: "Asia/Kolkata", "America/Los_Angeles" (tz database names)
_LOCATION_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)+|UTC")


class _Path:
    """A wire path under construction: ``sc`` -> ``sc.access`` -> ``sc.access.candidates[0]``."""

    __slots__ = ("cls", "text")

    def __init__(self, text: str, cls: type) -> None:
        self.text = text
        self.cls = cls

    def __str__(self) -> str:
        return self.text

    def field(self, attribute: str, cls: type | None = None) -> _Path:
        """The path of ``attribute`` of this object; ``cls`` is the attribute's own model."""
        return _Path(f"{self.text}.{wire_names(self.cls)[attribute]}", cls or self.cls)

    def item(self, index: int) -> _Path:
        return _Path(f"{self.text}[{index}]", self.cls)


class _Problems:
    def __init__(self) -> None:
        self.found: list[ValidationProblem] = []

    def add(self, path: _Path | str, message: str) -> None:
        self.found.append(ValidationProblem(str(path), message))


def _root(cls: type) -> _Path:
    return _Path(REQUEST_PARAMETERS[cls], cls)


def raise_if(problems: Sequence[ValidationProblem], *, subject: str) -> None:
    """Raise one :class:`~mettl_async.ValidationError` carrying every problem, if there is any."""
    if problems:
        raise ValidationError(problems, subject=subject)


def check_limit(limit: object) -> int:
    """Return ``limit`` if it is a valid page size (1 to 100), else raise ``ValidationError``."""
    if _is_int(limit) and limit in LIMIT_RANGE:
        return limit
    raise ValidationError(
        [ValidationProblem("limit", f"must be an integer from 1 to 100, got {limit!r}")],
        subject="listing parameters",
    )


# --------------------------------------------------------------------------
# Value checks
# --------------------------------------------------------------------------


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _is_email(value: object) -> bool:
    return isinstance(value, str) and _EMAIL_RE.fullmatch(value) is not None


def _is_ipv4(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_name(problems: _Problems, path: _Path, value: object, what: str) -> None:
    if value is None:
        problems.add(path, f"required: {what}")
    elif not isinstance(value, str) or not value.strip():
        problems.add(path, f"must be a non-empty string ({what}), got {value!r}")


def _check_enum(problems: _Problems, path: _Path, value: object, enum: type[MettlEnum]) -> None:
    """A request may only send a documented value (an enum member or its exact text)."""
    if value is None or isinstance(value, enum):
        return
    if isinstance(value, str) and value in enum._value2member_map_:
        return
    allowed = ", ".join(repr(member.value) for member in enum)
    problems.add(path, f"must be one of {allowed}, got {value!r}")


def _check_bool(problems: _Problems, path: _Path, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        problems.add(path, f"must be true or false, got {value!r}")


def _check_positive_int(problems: _Problems, path: _Path, value: object) -> None:
    if value is not None and (not _is_int(value) or value <= 0):
        problems.add(path, f"must be an integer greater than 0, got {value!r}")


def _check_non_negative_int(problems: _Problems, path: _Path, value: object) -> None:
    if value is not None and (not _is_int(value) or value < 0):
        problems.add(path, f"must be an integer of 0 or more, got {value!r}")


def _check_url(problems: _Problems, path: _Path, value: object) -> None:
    if value is not None and not _is_http_url(value):
        problems.add(path, f"must be an absolute http(s) URL, got {value!r}")


def _check_email(problems: _Problems, path: _Path, value: object) -> None:
    if value is None:
        problems.add(path, "required: an email address")
    elif not _is_email(value):
        problems.add(path, f"must be a valid email address, got {value!r}")


def _items(
    problems: _Problems, path: _Path, value: object, what: str, *, required: bool
) -> list[object]:
    """The items of a list property, for the caller to check; a problem if it is not a
    list, or if it is ``required`` and missing or empty."""
    if value is None:
        if required:
            problems.add(path, f"required: {what}")
        return []
    if not isinstance(value, list):
        problems.add(path, f"must be a list ({what}), got {value!r}")
        return []
    if not value and required:
        problems.add(path, f"must not be empty ({what})")
    return value


def _check_type(value: object, cls: type[M], problems: _Problems, path: _Path) -> TypeGuard[M]:
    """True if ``value`` is a ``cls`` (a nested model); a problem otherwise."""
    if isinstance(value, cls):
        return True
    problems.add(path, f"must be a {cls.__name__}, got {type(value).__name__}")
    return False


# --------------------------------------------------------------------------
# Article 8: assessments
# --------------------------------------------------------------------------


def assessment_problems(assessment: Assessment) -> list[ValidationProblem]:
    """Every rule of article 8's ``assessments`` table that ``assessment`` breaks."""
    problems = _Problems()
    root = _root(Assessment)
    _check_name(problems, root.field("name"), assessment.name, "the assessment's name")
    _check_positive_int(problems, root.field("duration"), assessment.duration)
    _check_bool(problems, root.field("allow_copy_paste"), assessment.allow_copy_paste)
    _check_bool(
        problems,
        root.field("show_report_to_candidate_on_exit"),
        assessment.show_report_to_candidate_on_exit,
    )
    _check_bool(problems, root.field("on_screen_calculator"), assessment.on_screen_calculator)
    sections_path = root.field("sections", Section)
    sections = _items(
        problems, sections_path, assessment.sections, "at least one section", required=True
    )
    for index, section in enumerate(sections):
        path = sections_path.item(index)
        if _check_type(section, Section, problems, path):
            _section_problems(problems, path, section, assessment.duration is None)
    return problems.found


def _section_problems(
    problems: _Problems, path: _Path, section: Section, needs_duration: bool
) -> None:
    _check_name(problems, path.field("name"), section.name, "the section's name")
    if section.duration is None and needs_duration:
        problems.add(
            path.field("duration"),
            "required: the assessment has no duration, so every section needs one",
        )
    _check_positive_int(problems, path.field("duration"), section.duration)
    _check_bool(problems, path.field("all_questions_mandatory"), section.all_questions_mandatory)
    _check_bool(problems, path.field("randomize_questions"), section.randomize_questions)
    skills_path = path.field("skills", Skill)
    skills = _items(problems, skills_path, section.skills, "at least one skill", required=True)
    for index, skill in enumerate(skills):
        skill_path = skills_path.item(index)
        if _check_type(skill, Skill, problems, skill_path):
            _skill_problems(problems, skill_path, skill)


def _skill_problems(problems: _Problems, path: _Path, skill: Skill) -> None:
    _check_name(problems, path.field("name"), skill.name, "a skill of the question bank")
    if skill.level is None:
        problems.add(path.field("level"), "required: 'easy', 'medium' or 'difficult'")
    _check_enum(problems, path.field("level"), skill.level, SkillLevel)
    if skill.question_count is None:
        problems.add(path.field("question_count"), "required: the number of questions")
    _check_positive_int(problems, path.field("question_count"), skill.question_count)
    _check_bool(problems, path.field("question_pooling"), skill.question_pooling)
    _check_enum(problems, path.field("question_type"), skill.question_type, QuestionType)
    grade_path = path.field("correct_grade")
    if skill.correct_grade is None:
        problems.add(grade_path, "required: the marks for a correct answer")
    elif not _is_number(skill.correct_grade) or skill.correct_grade <= 0:
        problems.add(grade_path, f"must be a number greater than 0, got {skill.correct_grade!r}")
    penalty = skill.incorrect_grade
    if penalty is not None and (not _is_number(penalty) or penalty > 0):
        problems.add(
            path.field("incorrect_grade"), f"must be a number of 0 or less, got {penalty!r}"
        )


# --------------------------------------------------------------------------
# Articles 13 and 14: sc
# --------------------------------------------------------------------------


def schedule_settings_problems(
    settings: ScheduleSettings, *, for_create: bool = True
) -> list[ValidationProblem]:
    """Every rule of article 13's ``sc`` table that ``settings`` breaks.

    With ``for_create=False`` (Edit Schedule, article 14) nothing is mandatory
    except ``access.type`` when ``access`` is sent; every value sent is still checked.
    """
    problems = _Problems()
    root = _root(ScheduleSettings)
    if for_create or settings.name is not None:
        _check_name(
            problems,
            root.field("name"),
            settings.name,
            "the schedule's name, unique in its assessment",
        )
    if for_create or settings.source_app is not None:
        _check_name(
            problems, root.field("source_app"), settings.source_app, "the name of your application"
        )

    access_path = root.field("access", Access)
    if settings.access is None:
        if for_create:
            problems.add(access_path, "required: the access settings, with their type")
    elif _check_type(settings.access, Access, problems, access_path):
        _access_problems(problems, access_path, settings.access, for_create)

    schedule_type = settings.schedule_type
    if schedule_type is None and for_create:
        problems.add(root.field("schedule_type"), "required: 'AlwaysOn' or 'Fixed'")
    _check_enum(problems, root.field("schedule_type"), schedule_type, ScheduleType)
    window_path = root.field("schedule_window", ScheduleWindow)
    fixed = schedule_type == ScheduleType.FIXED
    if settings.schedule_window is None:
        if fixed:
            problems.add(window_path, f"required when {root.field('schedule_type')} is 'Fixed'")
    elif _check_type(settings.schedule_window, ScheduleWindow, problems, window_path):
        _window_problems(problems, window_path, settings.schedule_window, complete=fixed)

    if settings.web_proctoring is not None:
        _web_proctoring_problems(
            problems, root.field("web_proctoring", WebProctoring), settings.web_proctoring
        )
    if settings.visual_proctoring is not None:
        _visual_proctoring_problems(
            problems, root.field("visual_proctoring", VisualProctoring), settings.visual_proctoring
        )
    _check_enum(problems, root.field("protected"), settings.protected, Protection)
    for attribute in (
        "test_start_notification_url",
        "test_finish_notification_url",
        "test_graded_notification_url",
        "test_resume_enabled_for_expired_test_url",
    ):
        _check_url(problems, root.field(attribute), getattr(settings, attribute))
    notification = settings.test_grade_notification
    notification_path = root.field("test_grade_notification", TestGradeNotification)
    if notification is not None and _check_type(
        notification, TestGradeNotification, problems, notification_path
    ):
        _grade_notification_problems(problems, notification_path, notification)
    restriction = settings.ip_access_restriction
    restriction_path = root.field("ip_access_restriction", IPAccessRestriction)
    if restriction is not None and _check_type(
        restriction, IPAccessRestriction, problems, restriction_path
    ):
        _ip_restriction_problems(problems, restriction_path, restriction)
    return problems.found


def _access_problems(problems: _Problems, path: _Path, access: Access, for_create: bool) -> None:
    type_path = path.field("type")
    if access.type is None:
        # article 14 too: access.type is mandatory whenever access is sent
        problems.add(type_path, "required: 'OpenForAll' or 'ByInvitation'")
    _check_enum(problems, type_path, access.type, AccessType)
    _check_bool(problems, path.field("send_email"), access.send_email)
    _check_bool(
        problems, path.field("is_candidate_crf_prefilled"), access.is_candidate_crf_prefilled
    )
    candidates_path = path.field("candidates", Candidate)
    # article 13: mandatory for ByInvitation; article 14 may edit without resending them
    candidates = _items(
        problems,
        candidates_path,
        access.candidates,
        "the invited candidates",
        required=access.type == AccessType.BY_INVITATION and for_create,
    )
    for index, candidate in enumerate(candidates):
        item = candidates_path.item(index)
        if _check_type(candidate, Candidate, problems, item):
            _check_name(problems, item.field("name"), candidate.name, "the candidate's name")
            _check_email(problems, item.field("email"), candidate.email)
            _check_non_negative_int(
                problems, item.field("compensatory_time"), candidate.compensatory_time
            )


def _window_problems(
    problems: _Problems, path: _Path, window: ScheduleWindow, *, complete: bool
) -> None:
    _check_enum(
        problems, path.field("fixed_access_option"), window.fixed_access_option, FixedAccessOption
    )
    for attribute, kind, example in (
        ("starts_on_date", date, "Mon, 07 Feb 2022"),
        ("starts_on_time", time, "12:00:00"),
        ("ends_on_date", date, "Fri, 11 Feb 2022"),
        ("ends_on_time", time, "18:00:00"),
    ):
        value = getattr(window, attribute)
        if value is None:
            if complete:
                problems.add(path.field(attribute), f"required, like {example!r}")
        elif not isinstance(value, kind) or isinstance(value, datetime):
            problems.add(path.field(attribute), f"must be a {kind.__name__} (sent as {example!r})")
    if window.time_zone is None and window.location_time_zone is None and complete:
        problems.add(
            path.field("time_zone"),
            f"required: this (like 'UTC+05:30') or {path.field('location_time_zone')} "
            "(like 'Asia/Kolkata')",
        )
    if window.time_zone is not None and not (
        isinstance(window.time_zone, str) and _UTC_OFFSET_RE.fullmatch(window.time_zone)
    ):
        problems.add(
            path.field("time_zone"), f"must look like 'UTC+05:30', got {window.time_zone!r}"
        )
    location = window.location_time_zone
    if location is not None and not (
        isinstance(location, str) and _LOCATION_RE.fullmatch(location)
    ):
        problems.add(
            path.field("location_time_zone"),
            f"must be a tz database name like 'Asia/Kolkata', got {location!r}",
        )
    start_date, start_time = window.starts_on_date, window.starts_on_time
    end_date, end_time = window.ends_on_date, window.ends_on_time
    if (
        isinstance(start_date, date)
        and isinstance(end_date, date)
        and isinstance(start_time, time)
        and isinstance(end_time, time)
    ):
        starts = datetime.combine(start_date, start_time)
        ends = datetime.combine(end_date, end_time)
        if ends <= starts:
            problems.add(
                path.field("ends_on_date"), f"the window ends ({ends}) before it starts ({starts})"
            )
        elif window.fixed_access_option == FixedAccessOption.SLOT_WISE and end_time <= start_time:
            problems.add(
                path.field("ends_on_time"),
                f"a SlotWise window's daily slot ends ({end_time}) before it starts ({start_time})",
            )


def _web_proctoring_problems(
    problems: _Problems, path: _Path, web: WebProctoring, *, enabled_required: bool = False
) -> None:
    if not _check_type(web, WebProctoring, problems, path):
        return
    if web.enabled is None and enabled_required:
        problems.add(path.field("enabled"), f"required within {path}")
    _check_bool(problems, path.field("enabled"), web.enabled)
    _check_non_negative_int(problems, path.field("count"), web.count)
    _check_bool(problems, path.field("show_remaining_counts"), web.show_remaining_counts)


def _visual_proctoring_problems(problems: _Problems, path: _Path, visual: VisualProctoring) -> None:
    if not _check_type(visual, VisualProctoring, problems, path):
        return
    _check_enum(problems, path.field("mode"), visual.mode, VisualProctoringMode)
    options = visual.options
    options_path = path.field("options", VisualProctoringOptions)
    if options is not None and _check_type(
        options, VisualProctoringOptions, problems, options_path
    ):
        for attribute in wire_names(VisualProctoringOptions):
            _check_bool(problems, options_path.field(attribute), getattr(options, attribute))


def _grade_notification_problems(
    problems: _Problems, path: _Path, notification: TestGradeNotification
) -> None:
    _check_bool(problems, path.field("enabled"), notification.enabled)
    recipients_path = path.field("recipients")
    recipients = _items(
        problems,
        recipients_path,
        notification.recipients,
        "who gets the result emails",
        required=notification.enabled is True,
    )
    for index, recipient in enumerate(recipients):
        _check_email(problems, recipients_path.item(index), recipient)


def _ip_restriction_problems(
    problems: _Problems, path: _Path, restriction: IPAccessRestriction
) -> None:
    _check_bool(problems, path.field("enabled"), restriction.enabled)
    type_path = path.field("type")
    kind = restriction.type
    if restriction.enabled and kind is None:
        problems.add(type_path, "required when enabled: 'SINGLE' or 'RANGE'")
    _check_enum(problems, type_path, kind, IPRestrictionType)
    ip_path = path.field("ip")
    if restriction.ip is None:
        if restriction.enabled and kind == IPRestrictionType.SINGLE:
            problems.add(ip_path, "required when type is 'SINGLE'")
    elif not _is_ipv4(restriction.ip):
        problems.add(ip_path, f"must be an IPv4 address like '10.0.0.1', got {restriction.ip!r}")
    ranges_path = path.field("ranges", IPRange)
    ranges = _items(
        problems,
        ranges_path,
        restriction.ranges,
        "the IPv4 ranges allowed",
        required=restriction.enabled is True and kind == IPRestrictionType.RANGE,
    )
    for index, item in enumerate(ranges):
        item_path = ranges_path.item(index)
        if not _check_type(item, IPRange, problems, item_path):
            continue
        ends_valid = True
        for attribute in ("start", "end"):
            value = getattr(item, attribute)
            if not _is_ipv4(value):
                ends_valid = False
                problems.add(
                    item_path.field(attribute),
                    "required" if value is None else f"must be an IPv4 address, got {value!r}",
                )
        if ends_valid and ipaddress.IPv4Address(item.start) > ipaddress.IPv4Address(item.end):
            problems.add(
                item_path.field("end"),
                f"the range ends ({item.end}) before it starts ({item.start})",
            )


# --------------------------------------------------------------------------
# Article 11: filter
# --------------------------------------------------------------------------


def schedule_filter_problems(schedule_filter: ScheduleFilter) -> list[ValidationProblem]:
    """Every rule of article 11's ``filter`` table that ``schedule_filter`` breaks."""
    problems = _Problems()
    root = _root(ScheduleFilter)
    if schedule_filter.visual_proctoring is not None:
        _visual_proctoring_problems(
            problems,
            root.field("visual_proctoring", VisualProctoring),
            schedule_filter.visual_proctoring,
        )
    if schedule_filter.web_proctoring is not None:
        # article 11: "enabled" is mandatory within webProctoring
        _web_proctoring_problems(
            problems,
            root.field("web_proctoring", WebProctoring),
            schedule_filter.web_proctoring,
            enabled_required=True,
        )
    _check_enum(problems, root.field("type"), schedule_filter.type, AccessType)
    _check_enum(problems, root.field("schedule_type"), schedule_filter.schedule_type, ScheduleType)
    return problems.found
