"""The sans-I/O half of ``MettlClient``'s endpoint methods.

The checks of their arguments, the parameters they encode, and the readers of
the answers and records they get back: everything an endpoint method does but
send. Nothing here sends a request or imports aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from ._convert import (
    candidate_result_from_wire,
    instance_from_wire,
    schedule_from_wire,
    structure,
    to_json,
)
from ._errors import DecodeError, ValidationError, ValidationProblem
from ._models import PBT, AssessmentInfo, CandidateResult, Schedule, ScheduleFilter, TestInstance
from ._paging import RawRecord
from ._protocol import FilePart
from ._validation import IMAGE_CONTENT_TYPES, sniff_image

__all__ = [
    "ASSESSMENT_SORTS",
    "IR_RECOMMENDATION",
    "RESULT_SORTS",
    "SCHEDULE_SORTS",
    "SORT_ORDERS",
    "check_access_key",
    "check_assessment_id",
    "check_choice",
    "check_email",
    "filter_param",
    "image_part",
    "member",
    "minified",
    "newest_first",
    "typed_assessment",
    "typed_instance",
    "typed_pbt",
    "typed_result",
    "typed_schedule",
]

Raw = RawRecord

#: Article 11's ``sort`` values (Mettl's default: ``createdAt``).
SCHEDULE_SORTS: Final = ("createdAt", "testTaken", "name")
#: Article 6's ``sort`` values (Mettl's default: ``createdAt``).
ASSESSMENT_SORTS: Final = ("createdAt", "testTaken", "name")
#: Article 16's ``sort`` values (Mettl's default: ``testStartTime``).
RESULT_SORTS: Final = ("testStartTime", "name")
SORT_ORDERS: Final = ("asc", "desc")
#: Articles 16 and 17's ``ir``: include the recommendation.
IR_RECOMMENDATION: Final = '{"recommendation":true}'


def newest_first(params: Mapping[str, str], default_sort: str) -> bool:
    """Whether a listing is in Mettl's default order, newest first, where records arrive."""
    return params.get("sort", default_sort) == default_sort and params.get("sort_order") in (
        None,
        "desc",
    )


def typed_schedule(record: Raw) -> Schedule:
    return schedule_from_wire(record.to_dict())


def typed_result(record: Raw) -> CandidateResult:
    return candidate_result_from_wire(record.to_dict())


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


def typed_instance(record: Raw) -> TestInstance:
    return instance_from_wire(record.to_dict())


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


def image_part(
    field: str,
    content: bytes,
    filename: str | None,
    content_type: str | None,
    *,
    stem: str | None = None,
) -> FilePart:
    kind = sniff_image(content) or "png"
    extension = "jpg" if kind == "jpeg" else kind
    return FilePart(
        field,
        filename or f"{stem or field}.{extension}",
        content,
        content_type or IMAGE_CONTENT_TYPES[kind],
    )
