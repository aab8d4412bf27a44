"""What every rule of a request shares: wire paths, the list of problems, value checks.

A rule module (``assessments``, ``schedules``; the uploads and registrations
have theirs beside their builders) walks a model and adds each problem it
finds to a :class:`Problems`, at the :class:`WirePath` Mettl would name:
``sc.scheduleWindow.timeZone``. Pure: no I/O, no clock.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, TypeGuard, TypeVar
from urllib.parse import urlsplit

from mettl_async._enums import MettlEnum
from mettl_async._errors import ValidationProblem
from mettl_async._models import REQUEST_PARAMETERS, wire_names
from mettl_async._numbers import is_whole_number

__all__ = [
    "Problems",
    "WirePath",
    "check_bool",
    "check_email",
    "check_enum",
    "check_name",
    "check_non_negative_int",
    "check_positive_int",
    "check_type",
    "check_url",
    "is_email",
    "is_http_url",
    "is_ipv4",
    "items_of",
    "root_path",
]

M = TypeVar("M")

# A pragmatic check, not RFC 5322: something@domain.tld, no spaces.
_EMAIL_RE: Final = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


class WirePath:
    """A wire path under construction: ``sc`` -> ``sc.access`` -> ``sc.access.candidates[0]``."""

    __slots__ = ("cls", "text")

    def __init__(self, text: str, cls: type) -> None:
        self.text = text
        self.cls = cls

    def __str__(self) -> str:
        return self.text

    def field(self, attribute: str, cls: type | None = None) -> WirePath:
        """The path of ``attribute`` of this object; ``cls`` is the attribute's own model."""
        return WirePath(f"{self.text}.{wire_names(self.cls)[attribute]}", cls or self.cls)

    def item(self, index: int) -> WirePath:
        return WirePath(f"{self.text}[{index}]", self.cls)


class Problems:
    """Every problem found so far, each at its wire path."""

    def __init__(self) -> None:
        self.found: list[ValidationProblem] = []

    def add(self, path: WirePath | str, message: str) -> None:
        self.found.append(ValidationProblem(str(path), message))


def root_path(cls: type) -> WirePath:
    """The path of a request model: its parameter's name (``sc``, ``as``, ``wl``)."""
    return WirePath(REQUEST_PARAMETERS[cls], cls)


def is_email(value: object) -> bool:
    return isinstance(value, str) and _EMAIL_RE.fullmatch(value) is not None


def is_ipv4(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def is_http_url(value: object) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_name(problems: Problems, path: WirePath, value: object, what: str) -> None:
    if value is None:
        problems.add(path, f"required: {what}")
    elif not isinstance(value, str) or not value.strip():
        problems.add(path, f"must be a non-empty string ({what}), got {value!r}")


def check_enum(problems: Problems, path: WirePath, value: object, enum: type[MettlEnum]) -> None:
    """A request may only send a documented value (an enum member or its exact text)."""
    if value is None or isinstance(value, enum):
        return
    if isinstance(value, str) and value in enum._value2member_map_:
        return
    allowed = ", ".join(repr(member.value) for member in enum)
    problems.add(path, f"must be one of {allowed}, got {value!r}")


def check_bool(problems: Problems, path: WirePath, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        problems.add(path, f"must be true or false, got {value!r}")


def check_positive_int(problems: Problems, path: WirePath, value: object) -> None:
    if value is not None and (not is_whole_number(value) or value <= 0):
        problems.add(path, f"must be an integer greater than 0, got {value!r}")


def check_non_negative_int(problems: Problems, path: WirePath, value: object) -> None:
    if value is not None and (not is_whole_number(value) or value < 0):
        problems.add(path, f"must be an integer of 0 or more, got {value!r}")


def check_url(problems: Problems, path: WirePath, value: object) -> None:
    if value is not None and not is_http_url(value):
        problems.add(path, f"must be an absolute http(s) URL, got {value!r}")


def check_email(problems: Problems, path: WirePath, value: object) -> None:
    if value is None:
        problems.add(path, "required: an email address")
    elif not is_email(value):
        problems.add(path, f"must be a valid email address, got {value!r}")


def items_of(
    problems: Problems, path: WirePath, value: object, what: str, *, required: bool
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


def check_type(value: object, cls: type[M], problems: Problems, path: WirePath) -> TypeGuard[M]:
    """True if ``value`` is a ``cls`` (a nested model); a problem otherwise."""
    if isinstance(value, cls):
        return True
    problems.add(path, f"must be a {cls.__name__}, got {type(value).__name__}")
    return False
