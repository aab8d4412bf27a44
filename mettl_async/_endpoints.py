"""The sans-I/O half of ``MettlClient``'s endpoint methods.

The checks of their arguments, the parameters they encode, and the readers of
the answers and records they get back: everything an endpoint method does but
send. Nothing here sends a request or imports aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

import orjson

from ._convert import (
    instance_from_record,
    result_from_record,
    schedule_from_record,
    structure,
    to_json,
)
from ._errors import DecodeError, ValidationError, ValidationProblem
from ._models import PBT, AssessmentInfo, ScheduleFilter, ScheduleSettings, wire_names
from ._models.checks import raise_if
from ._paging import RawRecord

__all__ = [
    "ASSESSMENT_SORTS",
    "IR_RECOMMENDATION",
    "RESULT_SORTS",
    "SCHEDULE_SORTS",
    "SORT_ORDERS",
    "AssessmentSort",
    "ResultSort",
    "ScheduleSort",
    "SortOrder",
    "check_access_key",
    "check_assessment_id",
    "check_choice",
    "check_email",
    "check_schedule_edit",
    "created_assessment_id",
    "filter_param",
    "member",
    "minified",
    "newest_first",
    "result_params",
    "schedule_record",
    "typed_assessment",
    "typed_instance",
    "typed_pbt",
    "typed_result",
    "typed_schedule",
]

Raw = RawRecord

#: Article 11's ``sort`` values (Mettl's default: ``createdAt``).
ScheduleSort = Literal["createdAt", "testTaken", "name"]
#: Article 6's ``sort`` values (Mettl's default: ``createdAt``).
AssessmentSort = Literal["createdAt", "testTaken", "name"]
#: Article 16's ``sort`` values (Mettl's default: ``testStartTime``).
ResultSort = Literal["testStartTime", "name"]
#: ``sort_order`` of every sorted listing (Mettl's default: ``desc``, newest first).
SortOrder = Literal["asc", "desc"]
# The same values at run time, for callers without a type checker.
SCHEDULE_SORTS: Final[tuple[str, ...]] = get_args(ScheduleSort)
ASSESSMENT_SORTS: Final[tuple[str, ...]] = get_args(AssessmentSort)
RESULT_SORTS: Final[tuple[str, ...]] = get_args(ResultSort)
SORT_ORDERS: Final[tuple[str, ...]] = get_args(SortOrder)
#: Articles 16 and 17's ``ir``: include the recommendation.
IR_RECOMMENDATION: Final = '{"recommendation":true}'


def newest_first(params: Mapping[str, str], default_sort: str) -> bool:
    """Whether a listing is in Mettl's default order, newest first, where records arrive."""
    return params.get("sort", default_sort) == default_sort and params.get("sort_order") in (
        None,
        "desc",
    )


#: A record of a schedules page (typed or raw) -> :class:`Schedule`.
typed_schedule: Final = schedule_from_record


#: A record of a results page (typed or raw) -> :class:`CandidateResult` (no wrapper:
#: it runs once per result of a walk).
typed_result: Final = result_from_record


def minified(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value).decode("utf-8")


def check_choice(
    name: str, value: str | None, allowed: tuple[str, ...], params: dict[str, str]
) -> None:
    if value is None:
        return
    text = str(getattr(value, "value", value))
    if text not in allowed:
        raise ValidationError(
            [ValidationProblem(name, f"must be one of {', '.join(allowed)}; got {text!r}")]
        )
    params[name] = text


def typed_pbt(record: Raw) -> PBT:
    return structure(record.to_dict(), PBT)


def typed_assessment(record: Raw) -> AssessmentInfo:
    return structure(record.to_dict(), AssessmentInfo)


#: A record of a ``testInstances`` page (typed or raw) -> :class:`TestInstance`.
typed_instance: Final = instance_from_record


def member(envelope: Mapping[str, Any], key: str, method: str, path: str) -> dict[str, Any]:
    """The object under ``key`` in a SUCCESS envelope, or a DecodeError."""
    value = envelope.get(key)
    if not isinstance(value, dict):
        raise DecodeError(f"Mettl sent no {key!r} object", method=method, path=path)
    return value


def filter_param(
    value: ScheduleFilter | Mapping[str, Any] | str | None, params: dict[str, str]
) -> None:
    """Articles 10 and 11's ``filter``: a model (validated), a mapping, or JSON text as is."""
    if isinstance(value, ScheduleFilter):
        value.validate()
        params["filter"] = to_json(value)
    elif value is not None:
        params["filter"] = value if isinstance(value, str) else minified(value)


def check_assessment_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(
            [ValidationProblem("assessment_id", f"must be an integer > 0, got {value!r}")],
            subject="assessment id",
        )
    return value


def check_access_key(access_key: object) -> None:
    if not isinstance(access_key, str) or not access_key.strip():
        raise ValidationError(
            [ValidationProblem("access_key", f"must be a non-empty string, got {access_key!r}")],
            subject="access key",
        )


def check_email(email: object) -> None:
    if not isinstance(email, str) or not email.strip():
        raise ValidationError(
            [ValidationProblem("email", f"must be a non-empty string, got {email!r}")],
            subject="email",
        )


def result_params(
    *, recommendation: bool = False, response_styles: bool = False, essay_responses: bool = False
) -> dict[str, str]:
    """Articles 16 to 18's optional parts of a result: ``ir``, ``rs``, ``qr``, those asked for."""
    params: dict[str, str] = {}
    if recommendation:
        params["ir"] = IR_RECOMMENDATION
    if response_styles:
        params["rs"] = "true"
    if essay_responses:
        params["qr"] = "true"
    return params


def created_assessment_id(envelope: Mapping[str, Any]) -> int:
    """Article 8's answer: the new assessment's integer ``assessmentId``, or a DecodeError."""
    assessment_id = envelope.get("assessmentId")
    if isinstance(assessment_id, bool) or not isinstance(assessment_id, int):
        raise DecodeError(
            f"Mettl sent no integer assessmentId (got {assessment_id!r})",
            method="POST",
            path="/assessments",
        )
    return assessment_id


def check_schedule_edit(settings: ScheduleSettings) -> None:
    """Article 14's ``sc``: valid for an edit, and changing at least one property."""
    problems = settings.problems(for_create=False)
    if all(getattr(settings, name) is None for name in wire_names(ScheduleSettings)):
        problems.append(ValidationProblem("sc", "nothing to change: set at least one property"))
    raise_if(problems, subject="schedule settings")


def schedule_record(item: object) -> Raw:
    """A schedule to walk, given as a Schedule or a mapping, as the record Mettl sent."""
    if isinstance(item, RawRecord):
        return item
    if not isinstance(item, Mapping):
        item = getattr(item, "raw", None)  # a typed Schedule keeps what Mettl sent
    if isinstance(item, Mapping):
        if not item.get("accessKey"):
            raise ValidationError([ValidationProblem("schedules", "a schedule has no accessKey")])
        return RawRecord.from_mapping(item, item["accessKey"])
    raise ValidationError(
        [
            ValidationProblem(
                "schedules", f"expected a Schedule, a mapping or an access key, got {item!r}"
            )
        ]
    )
