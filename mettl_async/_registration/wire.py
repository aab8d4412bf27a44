"""Article 15 on the wire: what each chunk sends, and how its answer is read.

The candidates are cut into chunks of at most :data:`REGISTRATION_CHUNK`
(:func:`chunked`); each chunk sends its ``rd`` (:func:`registration_json`)
with the call's options (:func:`registration_options`), and its answer is
read into one :class:`RegistrationOutcome` per candidate
(:func:`registration_outcomes`); :func:`merged_outcomes` puts the chunks back
together. Nothing here sends a request or imports aiohttp.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn, TypeVar

import orjson

from mettl_async._errors import DecodeError, MettlError, RegistrationError, RequestError
from mettl_async._models import CandidateRegistration, RegistrationOutcome

__all__ = [
    "REGISTRATION_CHUNK",
    "chunked",
    "failed_outcome",
    "merged_outcomes",
    "raise_failures",
    "registration_json",
    "registration_options",
    "registration_outcomes",
]

T = TypeVar("T")

#: Article 15: at most 20 candidates per Register Candidates call.
REGISTRATION_CHUNK: Final = 20
#: Per-candidate statuses that mean "not registered" (matched case-insensitively).
_FAILED_STATUSES: Final = frozenset({"ERROR", "FAILED", "FAILURE", "FAIL"})
_CODE_IN_MESSAGE: Final = re.compile(r"\s*\(?(E\d{3})\b")


def registration_options(
    *,
    allow_missing_mandatory_fields: bool,
    show_custom_instructions: bool,
    time_limit_seconds: int | None,
) -> dict[str, str]:
    """Article 15's optional parameters, sent with every chunk; only those asked for."""
    options: dict[str, str] = {}
    if allow_missing_mandatory_fields:
        options["allowMissingMandatoryRegistrationFields"] = "true"
    if show_custom_instructions:
        options["showCustomInstructions"] = "true"
    if time_limit_seconds is not None:
        options["timeLimitInSec"] = str(time_limit_seconds)
    return options


def chunked(items: Sequence[T], size: int = REGISTRATION_CHUNK) -> list[Sequence[T]]:
    """``items`` in order, in slices of at most ``size``."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def registration_json(chunk: Sequence[CandidateRegistration]) -> str:
    """Article 15's ``rd``: the labels of each candidate, and ``optionalParams`` if any."""
    optional: list[dict[str, str]] = []
    for candidate in chunk:
        if candidate.context_data is None and candidate.compensatory_time is None:
            continue
        params = {"email": candidate.email}
        if candidate.context_data is not None:
            params["context_data"] = candidate.context_data
        if candidate.compensatory_time is not None:
            params["compensatory_time"] = str(candidate.compensatory_time)
        optional.append(params)
    rd: dict[str, Any] = {"registrationDetails": [dict(c.fields) for c in chunk]}
    if optional:
        rd["optionalParams"] = optional
    return orjson.dumps(rd).decode()


def registration_outcomes(
    chunk: Sequence[CandidateRegistration], envelope: Mapping[str, Any], *, path: str
) -> list[RegistrationOutcome]:
    """Each candidate's item of ``registrationStatus``, matched by email (else by position)."""
    items = envelope.get("registrationStatus")
    if not isinstance(items, list):
        raise DecodeError("Mettl sent no 'registrationStatus' list", method="POST", path=path)
    by_email: dict[str, dict[str, Any]] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("email"), str):
            by_email.setdefault(item["email"].casefold(), item)
    outcomes = []
    for position, candidate in enumerate(chunk):
        found = by_email.get(candidate.email.casefold())
        if found is None and position < len(items):
            same_place = items[position]
            if isinstance(same_place, dict) and not same_place.get("email"):
                found = same_place  # an answer without emails: read in the order sent
        outcomes.append(_item_outcome(candidate.email, found))
    return outcomes


def merged_outcomes(
    chunks: Sequence[Sequence[CandidateRegistration]],
    answers: Sequence[list[RegistrationOutcome] | RequestError],
) -> list[RegistrationOutcome]:
    """Every candidate's outcome, in the order sent, from each chunk's answer.

    A chunk whose request failed as a whole fails each of its candidates with
    that error. When every chunk failed so (no candidate got an answer), the
    failure is raised instead (see :func:`raise_failures`).
    """
    failures = [answer for answer in answers if isinstance(answer, RequestError)]
    if len(failures) == len(answers):
        raise_failures(failures)
    outcomes: list[RegistrationOutcome] = []
    for chunk, answer in zip(chunks, answers, strict=True):
        if isinstance(answer, RequestError):
            outcomes += [failed_outcome(candidate.email, answer) for candidate in chunk]
        else:
            outcomes += answer
    return outcomes


def raise_failures(errors: Sequence[MettlError]) -> NoReturn:
    """Raise every failure of a registration: the one as itself, several joined.

    Several are raised as one :class:`~mettl_async.RegistrationError` carrying
    each, caught by ``except`` of the class they share, its cause the first.
    """
    if len(errors) == 1:
        raise errors[0]
    raise RegistrationError(errors) from errors[0]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _item_outcome(email: str, item: dict[str, Any] | None) -> RegistrationOutcome:
    if item is None:
        return RegistrationOutcome(
            email=email,
            registered=False,
            message="Mettl's answer does not mention this candidate: not known to be registered",
        )
    status = _text(item.get("status"))
    url = _text(item.get("url"))
    error = item.get("error")
    nested = error if isinstance(error, dict) else {}
    code = _text(item.get("code")) or _text(nested.get("code"))
    message = _text(item.get("message")) or _text(nested.get("message"))
    if code is None and message is not None:
        found = _CODE_IN_MESSAGE.match(message)
        code = found.group(1) if found else None
    failed = (
        (status is not None and status.strip().upper() in _FAILED_STATUSES)
        or isinstance(error, dict)
        or (code is not None and url is None)
    )
    registered = not failed and (url is not None or (status or "").strip().upper() == "SUCCESS")
    if not registered and message is None:
        message = f"Mettl sent no test link for this candidate (status {status!r})"
    return RegistrationOutcome(
        email=email,
        registered=registered,
        url=url,
        status=status,
        code=code,
        message=message,
        raw=item,
    )


def failed_outcome(email: str, error: RequestError) -> RegistrationOutcome:
    """The outcome of a candidate whose chunk's request failed as a whole."""
    return RegistrationOutcome(
        email=email, registered=False, code=error.code, message=str(error), error=error
    )
