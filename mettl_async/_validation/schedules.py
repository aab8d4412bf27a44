"""The rules of articles 11, 13 and 14: a schedule filter, a schedule's settings (``sc``).

Article 14 edits with article 13's model, every property optional
(``for_create=False``); article 11 filters with parts of it (proctoring,
access and schedule types). The checks of :class:`ScheduleSettings` and
:class:`ScheduleFilter` are registered at the end.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date, datetime, time
from typing import Final

from mettl_async._enums import (
    AccessType,
    FixedAccessOption,
    IPRestrictionType,
    Protection,
    ScheduleType,
    VisualProctoringMode,
)
from mettl_async._errors import ValidationProblem
from mettl_async._models import (
    Access,
    Candidate,
    IPAccessRestriction,
    IPRange,
    ScheduleFilter,
    ScheduleSettings,
    ScheduleWindow,
    TestGradeNotification,
    VisualProctoring,
    VisualProctoringOptions,
    WebProctoring,
    wire_names,
)
from mettl_async._models.checks import register_checks

from .base import (
    Problems,
    WirePath,
    check_bool,
    check_email,
    check_enum,
    check_name,
    check_non_negative_int,
    check_type,
    check_url,
    is_ipv4,
    items_of,
    root_path,
)

__all__ = ["schedule_filter_problems", "schedule_settings_problems"]

# article 13: "UTC+05:30", "UTC-08:00"
_UTC_OFFSET_RE: Final = re.compile(r"UTC[+-](?:0\d|1[0-4]):[0-5]\d")
# article 13: "Asia/Kolkata", "America/Los_Angeles" (tz database names)
_LOCATION_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)+|UTC")


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
    problems = Problems()
    root = root_path(ScheduleSettings)
    if for_create or settings.name is not None:
        check_name(
            problems,
            root.field("name"),
            settings.name,
            "the schedule's name, unique in its assessment",
        )
    if for_create or settings.source_app is not None:
        check_name(
            problems, root.field("source_app"), settings.source_app, "the name of your application"
        )

    access_path = root.field("access", Access)
    if settings.access is None:
        if for_create:
            problems.add(access_path, "required: the access settings, with their type")
    elif check_type(settings.access, Access, problems, access_path):
        _access_problems(problems, access_path, settings.access, for_create)

    schedule_type = settings.schedule_type
    if schedule_type is None and for_create:
        problems.add(root.field("schedule_type"), "required: 'AlwaysOn' or 'Fixed'")
    check_enum(problems, root.field("schedule_type"), schedule_type, ScheduleType)
    window_path = root.field("schedule_window", ScheduleWindow)
    fixed = schedule_type == ScheduleType.FIXED
    if settings.schedule_window is None:
        if fixed:
            problems.add(window_path, f"required when {root.field('schedule_type')} is 'Fixed'")
    elif check_type(settings.schedule_window, ScheduleWindow, problems, window_path):
        _window_problems(problems, window_path, settings.schedule_window, complete=fixed)

    if settings.web_proctoring is not None:
        _web_proctoring_problems(
            problems, root.field("web_proctoring", WebProctoring), settings.web_proctoring
        )
    if settings.visual_proctoring is not None:
        _visual_proctoring_problems(
            problems, root.field("visual_proctoring", VisualProctoring), settings.visual_proctoring
        )
    check_enum(problems, root.field("protected"), settings.protected, Protection)
    for attribute in (
        "test_start_notification_url",
        "test_finish_notification_url",
        "test_graded_notification_url",
        "test_resume_enabled_for_expired_test_url",
    ):
        check_url(problems, root.field(attribute), getattr(settings, attribute))
    notification = settings.test_grade_notification
    notification_path = root.field("test_grade_notification", TestGradeNotification)
    if notification is not None and check_type(
        notification, TestGradeNotification, problems, notification_path
    ):
        _grade_notification_problems(problems, notification_path, notification)
    restriction = settings.ip_access_restriction
    restriction_path = root.field("ip_access_restriction", IPAccessRestriction)
    if restriction is not None and check_type(
        restriction, IPAccessRestriction, problems, restriction_path
    ):
        _ip_restriction_problems(problems, restriction_path, restriction)
    return problems.found


def _access_problems(problems: Problems, path: WirePath, access: Access, for_create: bool) -> None:
    type_path = path.field("type")
    if access.type is None:
        # article 14 too: access.type is mandatory whenever access is sent
        problems.add(type_path, "required: 'OpenForAll' or 'ByInvitation'")
    check_enum(problems, type_path, access.type, AccessType)
    check_bool(problems, path.field("send_email"), access.send_email)
    check_bool(
        problems, path.field("is_candidate_crf_prefilled"), access.is_candidate_crf_prefilled
    )
    candidates_path = path.field("candidates", Candidate)
    # article 13: mandatory for ByInvitation; article 14 may edit without resending them
    candidates = items_of(
        problems,
        candidates_path,
        access.candidates,
        "the invited candidates",
        required=access.type == AccessType.BY_INVITATION and for_create,
    )
    for index, candidate in enumerate(candidates):
        item = candidates_path.item(index)
        if check_type(candidate, Candidate, problems, item):
            check_name(problems, item.field("name"), candidate.name, "the candidate's name")
            check_email(problems, item.field("email"), candidate.email)
            check_non_negative_int(
                problems, item.field("compensatory_time"), candidate.compensatory_time
            )


def _window_problems(
    problems: Problems, path: WirePath, window: ScheduleWindow, *, complete: bool
) -> None:
    check_enum(
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
    problems: Problems, path: WirePath, web: WebProctoring, *, enabled_required: bool = False
) -> None:
    if not check_type(web, WebProctoring, problems, path):
        return
    if web.enabled is None and enabled_required:
        problems.add(path.field("enabled"), f"required within {path}")
    check_bool(problems, path.field("enabled"), web.enabled)
    check_non_negative_int(problems, path.field("count"), web.count)
    check_bool(problems, path.field("show_remaining_counts"), web.show_remaining_counts)


def _visual_proctoring_problems(
    problems: Problems, path: WirePath, visual: VisualProctoring
) -> None:
    if not check_type(visual, VisualProctoring, problems, path):
        return
    check_enum(problems, path.field("mode"), visual.mode, VisualProctoringMode)
    options = visual.options
    options_path = path.field("options", VisualProctoringOptions)
    if options is not None and check_type(options, VisualProctoringOptions, problems, options_path):
        for attribute in wire_names(VisualProctoringOptions):
            check_bool(problems, options_path.field(attribute), getattr(options, attribute))


def _grade_notification_problems(
    problems: Problems, path: WirePath, notification: TestGradeNotification
) -> None:
    check_bool(problems, path.field("enabled"), notification.enabled)
    recipients_path = path.field("recipients")
    recipients = items_of(
        problems,
        recipients_path,
        notification.recipients,
        "who gets the result emails",
        required=notification.enabled is True,
    )
    for index, recipient in enumerate(recipients):
        check_email(problems, recipients_path.item(index), recipient)


def _ip_restriction_problems(
    problems: Problems, path: WirePath, restriction: IPAccessRestriction
) -> None:
    check_bool(problems, path.field("enabled"), restriction.enabled)
    type_path = path.field("type")
    kind = restriction.type
    if restriction.enabled and kind is None:
        problems.add(type_path, "required when enabled: 'SINGLE' or 'RANGE'")
    check_enum(problems, type_path, kind, IPRestrictionType)
    ip_path = path.field("ip")
    if restriction.ip is None:
        if restriction.enabled and kind == IPRestrictionType.SINGLE:
            problems.add(ip_path, "required when type is 'SINGLE'")
    elif not is_ipv4(restriction.ip):
        problems.add(ip_path, f"must be an IPv4 address like '10.0.0.1', got {restriction.ip!r}")
    ranges_path = path.field("ranges", IPRange)
    ranges = items_of(
        problems,
        ranges_path,
        restriction.ranges,
        "the IPv4 ranges allowed",
        required=restriction.enabled is True and kind == IPRestrictionType.RANGE,
    )
    for index, item in enumerate(ranges):
        item_path = ranges_path.item(index)
        if not check_type(item, IPRange, problems, item_path):
            continue
        ends_valid = True
        for attribute in ("start", "end"):
            value = getattr(item, attribute)
            if not is_ipv4(value):
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
    problems = Problems()
    root = root_path(ScheduleFilter)
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
    check_enum(problems, root.field("type"), schedule_filter.type, AccessType)
    check_enum(problems, root.field("schedule_type"), schedule_filter.schedule_type, ScheduleType)
    return problems.found


register_checks(ScheduleSettings, schedule_settings_problems, subject="schedule settings")
register_checks(ScheduleFilter, schedule_filter_problems, subject="schedule filter")
