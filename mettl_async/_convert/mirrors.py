"""Mirrors: msgspec structs with the wire names, and msgspec's errors as problems.

The mirror of each class is generated from the same rename table as the
converter (the classification of ``fields``), and msgspec decodes a page
straight into them (msgspec does not read attrs ``alias``, hence mirrors rather
than the public classes). Scalars are taken as sent (``Any``) except what
Mettl always sends, which must be there with its JSON type; enums must be
text; lazy parts are kept as their JSON text (``msgspec.Raw``), decoded when
read. A page the mirrors do not accept is read record by record through the
dict path instead, so a typed page is never stricter nor more lenient than the
records it holds. Mirrors are ``gc=False``: pages waiting in a walk's window
cost the garbage collector nothing.

The dict path checks a mapping with a second struct per class (its
*validator*): what Mettl always sends, eager parts only. A refusal of either
becomes a :class:`~mettl_async.ValidationError` naming the wire path
(``testStatus.result.totalMarks``).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final, Union, cast

import msgspec

from mettl_async._errors import ValidationError, ValidationProblem
from mettl_async._models import CandidateResult, Schedule, TestInstance
from mettl_async._paging import WireRecord

from .fields import Field, fields_of, strict_scalar

__all__ = [
    "NULL",
    "RECORD_MIRRORS",
    "check",
    "lazy_decoder",
    "lazy_error",
    "lazy_type",
    "mirror",
]

_MIRRORS: dict[type, type[msgspec.Struct]] = {}
#: The mirrors a typed page holds at its top level, by model class.
RECORD_MIRRORS: dict[type, type[WireRecord]] = {}
# The identity of a record in its listing (RawRecord.key's counterpart).
_KEY_ATTRIBUTE: Final[dict[type, str]] = {
    CandidateResult: "email",
    TestInstance: "email",
    Schedule: "access_key",
}
#: A lazy part Mettl sent as ``null`` (or did not send).
NULL: Final = msgspec.Raw(b"null")


def mirror(cls: type) -> type[msgspec.Struct]:
    """The mirror struct of ``cls`` (made once); top-level ones are :class:`WireRecord`\\ s."""
    existing = _MIRRORS.get(cls)
    if existing is not None:
        return existing
    specs: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in fields_of(cls):
        default: Any = None
        if field.lazy and field.model is not None:
            t: Any = msgspec.Raw
            default = NULL
        elif field.kind == "model":
            assert field.model is not None
            t = mirror(field.model)
        elif field.kind == "models":
            assert field.model is not None
            # a tuple of untracked structs is itself untracked after one collection
            t = tuple[mirror(field.model), ...]  # type: ignore[misc]
        elif field.required:
            t = strict_scalar(field.hint)
        elif field.enum is not None:
            t = str
        else:
            t = Any
        if field.required:
            specs.append((field.attr, t))
        else:
            optional = t if t is Any or t is msgspec.Raw else t | None
            specs.append((field.attr, optional, default))
    top = cls in _KEY_ATTRIBUTE
    struct = msgspec.defstruct(
        f"_{cls.__name__}Wire",
        specs,
        bases=(WireRecord,) if top else None,
        namespace={"key_attribute": _KEY_ATTRIBUTE[cls]} if top else None,
        rename={field.attr: field.wire for field in fields_of(cls)},
        kw_only=True,
        gc=False,  # decoded from JSON: no cycles possible
        module=__name__,
    )
    _MIRRORS[cls] = struct
    if top:
        RECORD_MIRRORS[cls] = cast("type[WireRecord]", struct)
    return struct


@functools.cache
def lazy_type(field: Field) -> Any:
    """What the value of a lazy nested part must be: its mirror(s), ``null`` if optional."""
    assert field.model is not None
    t: Any = mirror(field.model)
    if field.kind == "models":
        t = tuple[t, ...]
    return t if field.required else t | None


@functools.cache
def lazy_decoder(field: Field) -> msgspec.json.Decoder[Any]:
    """The decoder of a lazy nested part's JSON text."""
    return msgspec.json.Decoder(lazy_type(field))


# Any JSON value but null: a required lazy part must be there; its shape is
# checked when it is read.
_NOT_NULL: Final = Union[dict[str, Any], list[Any], str, int, float, bool]  # noqa: UP007


def _tolerant(model_type: Any, *, nullable: bool) -> Any:
    """The model, or any value that is not an object (that one fails when read)."""
    options: tuple[Any, ...] = (model_type, list[Any], str, int, float, bool)
    return Union[(*options, None) if nullable else options]  # noqa: UP007


@functools.cache
def _validator(cls: type) -> type[msgspec.Struct]:
    """What the dict path checks before building: what Mettl always sends, eager parts only.

    The required fields with their JSON types, in this object and in nested
    objects built with it; a lazy part only has to be there (it is checked
    in full when read) and a nested part of the wrong JSON type passes (it
    fails when read, as it always did).
    """
    specs: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in fields_of(cls):
        if field.lazy and field.model is not None:
            if not field.required:
                continue
            t: Any = _NOT_NULL
        elif field.kind == "model":
            assert field.model is not None
            nested = _validator(field.model)
            t = nested if field.required else _tolerant(nested, nullable=True)
        elif field.kind == "models":
            assert field.model is not None
            element = _tolerant(_validator(field.model), nullable=True)
            t = Union[list[element], dict[str, Any], str, int, float, bool]  # type: ignore[valid-type]  # noqa: UP007
            if not field.required:
                t = t | None
        elif field.required:
            t = strict_scalar(field.hint)
        else:
            continue
        specs.append((field.attr, t) if field.required else (field.attr, t, None))
    return msgspec.defstruct(
        f"_{cls.__name__}Check",
        specs,
        rename={field.attr: field.wire for field in fields_of(cls)},
        kw_only=True,
        module=__name__,
    )


# --------------------------------------------------------------------------
# msgspec's errors -> problems at wire paths
# --------------------------------------------------------------------------

# msgspec (0.23) has no structured form of a ValidationError: where it failed
# is only in the message text ("Expected `int`, got `str` - at `$.a.b`"), no
# attribute holds the path (msgspec issues #264 and #1158 ask for one). So the
# text is read, here only: if msgspec changes its wording, this is the one
# function to change (tests/test_typed_pages.py checks the paths it gives).
_MISSING: Final = re.compile(
    r"Object missing required field `(?P<field>[^`]+)`(?: - at `\$(?P<at>.*)`)?$"
)
_AT: Final = re.compile(r"(?P<what>.*) - at `\$(?P<at>.*)`$")


def _read_message(error: msgspec.ValidationError) -> tuple[str, str, str | None]:
    """msgspec's message -> (what is wrong, where, relative: ``a.b[0]``, the missing field)."""
    text = str(error)
    missing = _MISSING.match(text)
    if missing is not None:
        return "", (missing["at"] or "").lstrip("."), missing["field"]
    located = _AT.match(text)
    if located is None:
        return text, "", None
    return located["what"], located["at"].lstrip("."), None


def _join(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix + path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def _problem(error: msgspec.ValidationError, prefix: str, root: str) -> ValidationProblem:
    """msgspec's error -> a problem at a wire path (``testStatus.result.totalMarks``).

    ``prefix`` is where the checked value sits (``""`` for a whole record);
    ``root`` names the value itself when the problem is with all of it.
    """
    what, at, missing = _read_message(error)
    at = _join(prefix, at)
    if missing is not None:
        return ValidationProblem(_join(at, missing), "missing; Mettl always sends it")
    what = what.replace("`", "")
    return ValidationProblem(at or root, what[:1].lower() + what[1:])


def check(cls: type, data: Any) -> None:
    """Raise :class:`ValidationError` if ``data`` lacks what Mettl always sends."""
    try:
        msgspec.convert(data, _validator(cls))
    except msgspec.ValidationError as exc:
        problem = _problem(exc, "", cls.__name__)
        raise ValidationError([problem], subject=f"{cls.__name__} data") from None


def lazy_error(field: Field, error: Exception) -> ValidationError:
    """A lazy part that cannot be decoded: the problem at ``Owner.wireName[...]``."""
    if isinstance(error, msgspec.ValidationError):
        problem = _problem(error, field.where, field.where)
    else:
        problem = ValidationProblem(field.where, f"cannot be decoded: {error}")
    return ValidationError([problem], subject=f"{field.owner.__name__} data")
