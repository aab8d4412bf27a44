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
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Final, TypeGuard, TypeVar, cast
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
from ._errors import ValidationProblem
from ._models import (
    EMAIL_FIELD,
    FIRST_NAME_FIELD,
    REQUEST_PARAMETERS,
    Access,
    Assessment,
    AssessmentSettings,
    Candidate,
    CandidateRegistration,
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
    WhiteLabel,
    wire_names,
)
from ._models.checks import raise_if, register_checks

__all__ = [
    "FAVICON_MAX_BYTES",
    "IMAGE_CONTENT_TYPES",
    "LOGO_MAX_BYTES",
    "MAX_SUPPORT_NUMBERS",
    "assessment_problems",
    "assessment_settings_problems",
    "image_problems",
    "is_finite_number",
    "is_whole_number",
    "pbt_id_problems",
    "raise_if",
    "registration_problems",
    "schedule_filter_problems",
    "schedule_settings_problems",
    "sniff_image",
    "support_number_problems",
    "white_label_problems",
]

M = TypeVar("M")

#: ``limit`` of every paginated listing: 1 to 100 (articles 6, 11, 16).

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


# --------------------------------------------------------------------------
# Value checks
# --------------------------------------------------------------------------


def is_whole_number(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[float]:
    """An ``int`` or ``float``, not a ``bool``, neither ``nan`` nor infinite."""
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
    if value is not None and (not is_whole_number(value) or value <= 0):
        problems.add(path, f"must be an integer greater than 0, got {value!r}")


def _check_non_negative_int(problems: _Problems, path: _Path, value: object) -> None:
    if value is not None and (not is_whole_number(value) or value < 0):
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
    elif not is_finite_number(skill.correct_grade) or skill.correct_grade <= 0:
        problems.add(grade_path, f"must be a number greater than 0, got {skill.correct_grade!r}")
    penalty = skill.incorrect_grade
    if penalty is not None and (not is_finite_number(penalty) or penalty > 0):
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


# --------------------------------------------------------------------------
# Articles 2 and 3: uploaded images (logo, favicon, cover)
# --------------------------------------------------------------------------

#: Article 2: a logo is at most 100 KB (read as 100 * 1024 bytes).
LOGO_MAX_BYTES: Final = 100 * 1024
#: Article 3: a favicon is at most 10 KB (read as 10 * 1024 bytes).
FAVICON_MAX_BYTES: Final = 10 * 1024
#: The media type each image format is sent with.
IMAGE_CONTENT_TYPES: Final = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "ico": "image/x-icon",
}
_CONTENT_TYPE_KINDS: Final = {
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/pjpeg": "jpeg",
    "image/png": "png",
    "image/gif": "gif",
    "image/x-icon": "ico",
    "image/vnd.microsoft.icon": "ico",
}
_EXTENSION_KINDS: Final = {
    "jpeg": "jpeg",
    "jpg": "jpeg",
    "png": "png",
    "gif": "gif",
    "ico": "ico",
}


def sniff_image(content: bytes) -> str | None:
    """The format of an image from its first bytes: jpeg, png, gif, ico, or ``None``."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if content.startswith(b"\x00\x00\x01\x00"):
        return "ico"
    return None


def image_problems(
    content: object,
    *,
    field: str,
    kinds: Sequence[str],
    max_bytes: int | None,
    filename: str | None = None,
    content_type: str | None = None,
) -> list[ValidationProblem]:
    """Whether an upload is an image Mettl takes: its format, size, name and media type.

    The format is read from the bytes themselves; a ``filename`` extension or
    a ``content_type``, when given, must name the same format.
    """
    problems = _Problems()
    allowed = " or ".join(kind.upper() for kind in kinds)
    if not isinstance(content, bytes | bytearray | memoryview):
        problems.add(field, f"must be the image's bytes ({allowed}), got {type(content).__name__}")
        return problems.found
    data = bytes(content)
    if not data:
        problems.add(field, "is empty")
        return problems.found
    if max_bytes is not None and len(data) > max_bytes:
        problems.add(
            field,
            f"is {len(data):,} bytes; Mettl takes at most {max_bytes // 1024} KB "
            f"({max_bytes:,} bytes)",
        )
    kind = sniff_image(data)
    if kind is None or kind not in kinds:
        found = f"a {kind.upper()} image" if kind else "not an image Mettl reads"
        problems.add(field, f"must be a {allowed} image; these bytes are {found}")
        return problems.found
    if filename is not None:
        extension = filename.rpartition(".")[2].lower() if "." in filename else ""
        if not filename.strip() or "/" in filename or "\\" in filename:
            problems.add(f"{field}.filename", f"must be a plain file name, got {filename!r}")
        elif _EXTENSION_KINDS.get(extension) != kind:
            problems.add(
                f"{field}.filename",
                f"must end in .{'jpg' if kind == 'jpeg' else kind} for a {kind.upper()} "
                f"image, got {filename!r}",
            )
    if content_type is not None:
        named = _CONTENT_TYPE_KINDS.get(content_type.split(";")[0].strip().lower())
        if named != kind:
            problems.add(
                f"{field}.content_type",
                f"must be {IMAGE_CONTENT_TYPES[kind]!r} for a {kind.upper()} image, "
                f"got {content_type!r}",
            )
    return problems.found


# --------------------------------------------------------------------------
# Article 3: wl and sn
# --------------------------------------------------------------------------

#: Article 3: at most two support phone numbers.
MAX_SUPPORT_NUMBERS: Final = 2
_HEX_COLOUR_RE: Final = re.compile(r"[0-9A-Fa-f]{6}|[0-9A-Fa-f]{3}")
_PHONE_RE: Final = re.compile(r"\+?[0-9][0-9 ()\-.]*[0-9]")


def white_label_problems(white_label: WhiteLabel) -> list[ValidationProblem]:
    """Every rule of article 3's ``wl`` table that ``white_label`` breaks."""
    problems = _Problems()
    root = _root(WhiteLabel)
    for attribute in wire_names(WhiteLabel):
        value = getattr(white_label, attribute)
        if value is None:
            continue
        path = root.field(attribute)
        if isinstance(value, str) and value.startswith("#"):
            problems.add(
                path, f"must be a hex colour without '#' (like {value[1:]!r}), got {value!r}"
            )
        elif not isinstance(value, str) or not _HEX_COLOUR_RE.fullmatch(value):
            problems.add(path, f"must be a hex colour without '#' (like '1A2B3C'), got {value!r}")
    return problems.found


def support_number_problems(numbers: object) -> list[ValidationProblem]:
    """Article 3's ``sn``: a list of at most two phone numbers."""
    problems = _Problems()
    if isinstance(numbers, str) or not isinstance(numbers, Sequence):
        problems.add("sn", f"must be a list of phone numbers, got {numbers!r}")
        return problems.found
    if len(numbers) > MAX_SUPPORT_NUMBERS:
        problems.add(
            "sn", f"takes at most {MAX_SUPPORT_NUMBERS} support numbers, got {len(numbers)}"
        )
    for index, number in enumerate(numbers):
        if not isinstance(number, str) or not _PHONE_RE.fullmatch(number.strip()):
            problems.add(
                f"sn[{index}]", f"must be a phone number like '+1-650-924-9221', got {number!r}"
            )
    return problems.found


# --------------------------------------------------------------------------
# Article 5: pbts
# --------------------------------------------------------------------------


def pbt_id_problems(ids: Sequence[object]) -> list[ValidationProblem]:
    """Article 5's ``pbts``: a non-empty list of PBT ids (positive integers)."""
    problems = _Problems()
    if not ids:
        problems.add("pbts", "must not be empty: the ids of the PBTs to add")
    for index, value in enumerate(ids):
        if not is_whole_number(value) or value <= 0:
            problems.add(f"pbts[{index}]", f"must be a PBT id (an integer > 0), got {value!r}")
    return problems.found


# --------------------------------------------------------------------------
# Article 9: as
# --------------------------------------------------------------------------


def assessment_settings_problems(settings: AssessmentSettings) -> list[ValidationProblem]:
    """Every rule of article 9's ``as`` table that ``settings`` breaks."""
    problems = _Problems()
    root = _root(AssessmentSettings)
    if all(getattr(settings, attribute) is None for attribute in wire_names(AssessmentSettings)):
        problems.add(root, "nothing to change: set at least one property")
    instructions: object = settings.instructions
    if instructions is not None and not isinstance(instructions, str):
        problems.add(root.field("instructions"), f"must be a string (HTML), got {instructions!r}")
    _check_bool(problems, root.field("allow_copy_paste"), settings.allow_copy_paste)
    _check_url(problems, root.field("exit_redirection_url"), settings.exit_redirection_url)
    _check_bool(problems, root.field("show_report_to_candidate"), settings.show_report_to_candidate)
    _check_bool(problems, root.field("on_screen_calculator"), settings.on_screen_calculator)
    return problems.found


# --------------------------------------------------------------------------
# Article 15: rd
# --------------------------------------------------------------------------


def registration_problems(
    candidates: Sequence[object], *, time_limit_seconds: object = None
) -> list[ValidationProblem]:
    """Every rule of article 15 that a registration breaks, the whole list at once.

    Paths count candidates from the start of the list given (it is sent in
    chunks of 20): ``rd.registrationDetails[23]["Email Address"]``. An email
    given twice is a problem: each candidate's outcome is matched by email.
    """
    problems = _Problems()
    seen: dict[str, int] = {}
    for index, candidate in enumerate(candidates):
        details = f"rd.registrationDetails[{index}]"
        if not isinstance(candidate, CandidateRegistration):
            problems.add(
                details,
                f"must be a CandidateRegistration or a mapping, got {type(candidate).__name__}",
            )
            continue
        fields: Mapping[object, object] = cast("Mapping[object, object]", candidate.fields)
        for label, value in fields.items():
            if not isinstance(label, str) or not label.strip():
                problems.add(details, f"a registration field label must be text, got {label!r}")
            elif not isinstance(value, str):
                problems.add(
                    f"{details}[{label!r}]", f"must be a string (the field's value), got {value!r}"
                )
        email = fields.get(EMAIL_FIELD)
        email_path = f'{details}["{EMAIL_FIELD}"]'
        if email is None or (isinstance(email, str) and not email.strip()):
            problems.add(email_path, "required: every candidate needs an email address")
        elif not isinstance(email, str) or not _is_email(email):
            problems.add(email_path, f"must be a valid email address, got {email!r}")
        elif (earlier := seen.setdefault(email.casefold(), index)) != index:
            problems.add(
                email_path,
                f"{email!r} is also candidate {earlier}: register each candidate once",
            )
        first_name = fields.get(FIRST_NAME_FIELD)
        if first_name is None or (isinstance(first_name, str) and not first_name.strip()):
            problems.add(
                f'{details}["{FIRST_NAME_FIELD}"]',
                "required: Mettl never registers a candidate without a first name",
            )
        optional = f"rd.optionalParams[{index}]"
        context_data: object = candidate.context_data
        if context_data is not None and not isinstance(context_data, str):
            problems.add(f"{optional}.context_data", f"must be a string, got {context_data!r}")
        compensatory: object = candidate.compensatory_time
        if compensatory is not None and (not is_whole_number(compensatory) or compensatory < 0):
            problems.add(
                f"{optional}.compensatory_time",
                f"must be a whole number of extra minutes (0 or more), got {compensatory!r}",
            )
    if time_limit_seconds is not None and (
        not is_whole_number(time_limit_seconds) or time_limit_seconds <= 0
    ):
        problems.add(
            "timeLimitInSec",
            f"must be a whole number of seconds greater than 0, got {time_limit_seconds!r}",
        )
    return problems.found


# --------------------------------------------------------------------------
# The request models' problems() and validate() (see _models.checks)
# --------------------------------------------------------------------------

register_checks(WhiteLabel, white_label_problems, subject="white label")
register_checks(Assessment, assessment_problems, subject="assessment")
register_checks(AssessmentSettings, assessment_settings_problems, subject="assessment settings")
register_checks(ScheduleSettings, schedule_settings_problems, subject="schedule settings")
register_checks(ScheduleFilter, schedule_filter_problems, subject="schedule filter")
