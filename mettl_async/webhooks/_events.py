"""A webhook body -> its typed event (the one validating parser), and its deduplication key.

Framework-neutral: no web framework is imported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

from mettl_async._convert import structure
from mettl_async._enums import WebhookEventType
from mettl_async._errors import ValidationError, ValidationProblem, WebhookPayloadError
from mettl_async._models import (
    CandidateTestResumedEvent,
    FinishTestEvent,
    GradedAssessmentEvent,
    StartAssessmentEvent,
    WebhookEvent,
)
from mettl_async._numbers import is_whole_number
from mettl_async._timefmt import format_timestamp

__all__ = ["EVENT_TYPES", "event_key", "parse_event"]

#: The event type of each event class.
EVENT_TYPES: Final[Mapping[type, WebhookEventType]] = {
    StartAssessmentEvent: WebhookEventType.START_ASSESSMENT,
    FinishTestEvent: WebhookEventType.FINISH_TEST,
    GradedAssessmentEvent: WebhookEventType.GRADED_ASSESSMENT,
    CandidateTestResumedEvent: WebhookEventType.CANDIDATE_TEST_RESUMED,
}
# EVENT_TYPE is matched case-insensitively, like every other value set.
_CLASS_BY_NAME: Final = {kind.value.casefold(): cls for cls, kind in EVENT_TYPES.items()}

_EXCERPT_CHARS: Final = 200
_BOM: Final = "\ufeff"


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def _not_an_object(value: object, *, excerpt: str) -> WebhookPayloadError:
    return WebhookPayloadError(
        [ValidationProblem("body", f"is JSON {type(value).__name__}, not the object Mettl sends")],
        excerpt=excerpt,
    )


def parse_event(data: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> WebhookEvent:
    """A webhook body (bytes or text of JSON, or the decoded mapping) -> its typed event.

    Returns a :class:`~mettl_async.StartAssessmentEvent`,
    :class:`~mettl_async.FinishTestEvent`, :class:`~mettl_async.GradedAssessmentEvent`
    (``sectional_scores`` decoded) or :class:`~mettl_async.CandidateTestResumedEvent`,
    chosen by ``EVENT_TYPE`` (in any case). Unknown extra fields are accepted and kept
    in ``raw``. The ids are checked: ``candidate_instance_id`` and ``assessment_id``
    (or ``assessmentId``) are whole numbers (a string of digits is the same number, and
    the event holds it as one), ``invitation_key`` and ``timestamp_GMT`` strings.

    Raises :class:`~mettl_async.WebhookPayloadError` (a ``ValidationError``) when
    the body is not JSON, not a JSON object, names no known event type, has an id
    of the wrong type or a field of the wrong shape. This is also
    :func:`mettl_async.parse_webhook_event`.
    """
    if isinstance(data, Mapping):
        return _event_from_mapping(data, excerpt="")
    if isinstance(data, str):
        text = data
        raw: bytes | str = data.removeprefix(_BOM)
    elif isinstance(data, bytes | bytearray | memoryview):
        blob = bytes(data)
        # enough bytes for one character more than the excerpt (UTF-8: at most 4 each),
        # so that a longer body is seen to be longer
        text = blob[: (_EXCERPT_CHARS + 1) * 4].decode("utf-8", "replace")
        raw = blob.removeprefix(_BOM.encode())
    else:  # already decoded, but not an object (a list, a number, ...)
        raise _not_an_object(data, excerpt="")
    excerpt = _excerpt(text)
    if not raw.strip():
        raise WebhookPayloadError([ValidationProblem("body", "is empty")], excerpt=excerpt)
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebhookPayloadError(
            [ValidationProblem("body", f"is not JSON ({exc})")], excerpt=excerpt
        ) from None
    if not isinstance(decoded, dict):
        raise _not_an_object(decoded, excerpt=excerpt)
    return _event_from_mapping(decoded, excerpt=excerpt)


# Fields that identify an event (its deduplication key): their wire names and types.
_WHOLE_NUMBER_IDS: Final = ("candidate_instance_id", "assessment_id")
_TEXT_IDS: Final = ("invitation_key", "timestamp_GMT")


def _id_problems(data: Mapping[str, Any]) -> list[ValidationProblem]:
    problems = []
    for name in _WHOLE_NUMBER_IDS:
        value = data.get(name)
        if value is None or _whole_number(value) is not None:
            continue
        problems.append(
            ValidationProblem(
                name, f"must be a whole number, got {type(value).__name__} {_short(value)}"
            )
        )
    for name in _TEXT_IDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(
                ValidationProblem(
                    name, f"must be a string, got {type(value).__name__} {_short(value)}"
                )
            )
    return problems


def _whole_number(value: object) -> int | None:
    """An id as Mettl sends it (a JSON number), or a string of digits; else ``None``."""
    if is_whole_number(value):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 30:
        return int(value)
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _event_from_mapping(data: Mapping[str, Any], *, excerpt: str) -> WebhookEvent:
    problems = _id_problems(data)
    if problems:
        raise WebhookPayloadError(problems, excerpt=excerpt)
    kind = data.get("EVENT_TYPE")
    cls = _CLASS_BY_NAME.get(kind.casefold()) if isinstance(kind, str) else None
    if cls is None:
        expected = ", ".join(repr(k.value) for k in EVENT_TYPES.values())
        raise WebhookPayloadError(
            [ValidationProblem("EVENT_TYPE", f"unknown event type {kind!r}; expected {expected}")],
            excerpt=excerpt,
        )
    try:
        event: WebhookEvent = structure(dict(data), cls)
    except ValidationError as exc:
        raise WebhookPayloadError(exc.problems, excerpt=excerpt) from None
    # Ids sent as strings of digits are the same ids: the event holds them as numbers.
    for name in _WHOLE_NUMBER_IDS:
        value = getattr(event, name)
        if isinstance(value, str):
            setattr(event, name, _whole_number(value))
    return event


def event_key(event: WebhookEvent) -> str:
    """The deduplication key:
    ``"<EVENT_TYPE>:<candidate_instance_id>:<invitation_key>:<timestamp_GMT>"``.

    Two deliveries with the same key are the same event: Mettl's retry of a
    delivery is byte-identical, while a new event of the same candidate (a
    second ``finishTest`` after ``candidateTestResumed``) has a new
    ``timestamp_GMT``, kept as sent. In each part ``%`` and ``:`` are written
    ``%25`` and ``%3A``, so that no two events share a key
    (``"finishTest:12:34%3Ak:…"`` is not ``"finishTest:12%3A34:k:…"``). When the
    payload has neither id, the key is the event type and a SHA-256 of the
    payload instead (``"<EVENT_TYPE>:sha256:<hex>"``), so only identical
    payloads collapse.
    """
    kind = EVENT_TYPES[type(event)].value
    cid, invitation = event.candidate_instance_id, event.invitation_key
    if cid is None and invitation is None:
        digest = hashlib.sha256(orjson.dumps(event.raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"{kind}:sha256:{digest}"
    stamp = event.raw.get("timestamp_GMT")
    if not isinstance(stamp, str):
        stamp = format_timestamp(event.timestamp_gmt) if event.timestamp_gmt is not None else ""
    parts = ("" if cid is None else str(cid), invitation or "", stamp)
    return ":".join((kind, *(_key_part(part) for part in parts)))


def _key_part(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A")
