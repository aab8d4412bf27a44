"""Article 15, Register Candidates: its rules, its wire format, its fan-out in chunks.

The client checks the candidates (``rules``: every problem of every candidate
at once, nothing sent), then sends them in concurrent chunks of 20
(``fanout``), each chunk's body and answer read by ``wire``. ``rules`` and
``wire`` are pure; ``fanout`` only awaits the requests it is given a way to
send.
"""

from __future__ import annotations

from .fanout import register_in_chunks
from .rules import checked_registrations, registration_problems
from .wire import (
    REGISTRATION_CHUNK,
    chunked,
    failed_outcome,
    merged_outcomes,
    registration_json,
    registration_options,
    registration_outcomes,
)

__all__ = [
    "REGISTRATION_CHUNK",
    "checked_registrations",
    "chunked",
    "failed_outcome",
    "merged_outcomes",
    "register_in_chunks",
    "registration_json",
    "registration_options",
    "registration_outcomes",
    "registration_problems",
]
