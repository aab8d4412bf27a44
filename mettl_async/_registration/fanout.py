"""Article 15's fan-out: every chunk of a registration sent at once, every answer kept.

The chunks go concurrently (the client's bound on requests in flight paces
them). A chunk whose request fails as a whole is an answer, not an exception:
its candidates fail with that error while the others keep theirs. Only when
no candidate got an answer is anything raised, and then every failure, not
the first (:func:`~mettl_async._registration.wire.raise_failures`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

from mettl_async._errors import MettlError, RequestError
from mettl_async._models import CandidateRegistration, RegistrationOutcome
from mettl_async._protocol import Request

from .wire import chunked, merged_outcomes, raise_failures, registration_json, registration_outcomes

__all__ = ["Call", "register_in_chunks"]

#: Sends one request and returns Mettl's envelope (``Transport.call``).
Call: TypeAlias = Callable[[Request], Awaitable[dict[str, Any]]]


async def register_in_chunks(
    call: Call,
    url: str,
    registrations: Sequence[CandidateRegistration],
    options: Mapping[str, str],
) -> list[RegistrationOutcome]:
    """Send ``registrations`` to ``url`` in chunks of 20, concurrently; each one's outcome."""
    chunks = chunked(registrations)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_answer(call, url, chunk, options)) for chunk in chunks]
    except ExceptionGroup as failed:
        group_error = failed
    else:
        return merged_outcomes(chunks, [task.result() for task in tasks])
    # Request failures are answers (see _answer); what escaped them, such as a closed
    # client, is raised here as itself, and several as one error carrying each. A
    # programming error among several leaves the group as Python raised it.
    escaped = group_error.exceptions
    if len(escaped) == 1:
        raise escaped[0]
    failures = [error for error in escaped if isinstance(error, MettlError)]
    if len(failures) == len(escaped):
        raise_failures(failures)
    raise group_error


async def _answer(
    call: Call, url: str, chunk: Sequence[CandidateRegistration], options: Mapping[str, str]
) -> list[RegistrationOutcome] | RequestError:
    request = Request("POST", url, {"rd": registration_json(chunk), **options})
    try:
        envelope = await call(request)
        return registration_outcomes(chunk, envelope, path=request.path)
    except RequestError as error:
        return error
