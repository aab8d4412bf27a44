"""Article 15's rules: what a registration must hold before anything is sent.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from mettl_async._errors import ValidationProblem
from mettl_async._models import EMAIL_FIELD, FIRST_NAME_FIELD, CandidateRegistration
from mettl_async._models.checks import raise_if
from mettl_async._numbers import is_whole_number
from mettl_async._validation.base import Problems, is_email

__all__ = ["checked_registrations", "registration_problems"]


def checked_registrations(
    candidates: Iterable[CandidateRegistration | Mapping[str, str]],
    *,
    time_limit_seconds: int | None,
) -> list[CandidateRegistration]:
    """The candidates as registrations (a mapping holds field labels), every rule checked.

    Every problem of every candidate is raised at once, in one ValidationError.
    """
    registrations: list[Any] = [
        CandidateRegistration(fields=dict(item)) if isinstance(item, Mapping) else item
        for item in candidates
    ]
    raise_if(
        registration_problems(registrations, time_limit_seconds=time_limit_seconds),
        subject="candidate registration",
    )
    return registrations


def registration_problems(
    candidates: Sequence[object], *, time_limit_seconds: object = None
) -> list[ValidationProblem]:
    """Every rule of article 15 that a registration breaks, the whole list at once.

    Paths count candidates from the start of the list given (it is sent in
    chunks of 20): ``rd.registrationDetails[23]["Email Address"]``. An email
    given twice is a problem: each candidate's outcome is matched by email.
    """
    problems = Problems()
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
        elif not isinstance(email, str) or not is_email(email):
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
