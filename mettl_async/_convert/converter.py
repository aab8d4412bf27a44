"""The one cattrs converter of mettl-async, its hooks, and webhook events.

``converter`` is built once, here, from ``cattrs.preconf.orjson``; no hook is
ever registered on cattrs' global converter. It maps the wire names of
:func:`mettl_async._models.wire_names` to snake_case attributes (cattrs
``override(rename=...)``), decodes enums and timestamps leniently, keeps the
decoded mapping of every response model in ``raw``, and leaves out unset
(``None``) properties when serializing, in the articles' property order.

The hot classes (candidate results and their parts, see ``fields.HOT``) are
not structured by cattrs' generated code: ``records`` registers their hooks,
which run the generated builders of ``builders``.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any, Final, TypeVar, cast

import attrs
import cattrs
import msgspec
import orjson
from cattrs.gen import (
    make_dict_structure_fn,
    make_dict_unstructure_fn,
    make_mapping_structure_fn,
    override,
)
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from mettl_async import _models, _timefmt
from mettl_async._enums import MettlEnum, WebhookEventType, enum_decoder
from mettl_async._errors import ValidationError, ValidationProblem
from mettl_async._models import (
    Candidate,
    CandidateTestResumedEvent,
    FinishTestEvent,
    GradedAssessmentEvent,
    SectionalScore,
    Skill,
    StartAssessmentEvent,
    wire_names,
)

__all__ = [
    "DATA_ERRORS",
    "NONE_TYPE",
    "converter",
    "decode_error",
    "enum_of",
    "has_raw",
    "is_model",
    "optional_parser",
    "structure",
    "to_json",
    "union_args",
    "unstructure",
]

T = TypeVar("T")
logger = logging.getLogger("mettl_async.models")

#: The converter. Hooks are registered below, once, at import.
converter: Final[OrjsonConverter] = make_converter(omit_if_default=True, detailed_validation=False)

NONE_TYPE: Final = type(None)
_SCALARS: Final = frozenset({str, int, float, bool, NONE_TYPE})

#: What decoding raises when the data is not the shape Mettl documents: the
#: converter's own hooks raise ``TypeError`` for a value of the wrong JSON
#: type, cattrs' generated code ``KeyError``/``TypeError``/``ValueError``, the
#: checks ``msgspec.ValidationError``. Anything else is a bug, not bad data,
#: and is left to propagate as it is.
DATA_ERRORS: Final = (
    TypeError,
    ValueError,
    KeyError,
    cattrs.BaseValidationError,
    msgspec.ValidationError,
)


# --------------------------------------------------------------------------
# Type introspection (shared with the fast path's classification, ``fields``)
# --------------------------------------------------------------------------


def union_args(t: Any) -> tuple[Any, ...]:
    """The members of a union type, ``()`` for any other type."""
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return typing.get_args(t)
    return ()


def enum_of(t: Any) -> type[MettlEnum] | None:
    """``TheEnum`` for a field typed ``TheEnum | str`` (optionally ``| None``)."""
    args = union_args(t)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, MettlEnum)]
    if len(enums) == 1 and set(args) - {enums[0]} <= {str, NONE_TYPE}:
        return enums[0]
    return None


_OPTIONAL_PARSERS: Final[dict[type, Callable[[object], Any]]] = {
    datetime: _timefmt.parse_timestamp,
    date: _timefmt.parse_date,
    time: _timefmt.parse_time,
}


def optional_parser(t: Any) -> Callable[[object], Any] | None:
    """The lenient parser of a field typed ``datetime | None`` (``date``, ``time``)."""
    args = union_args(t)
    if len(args) == 2 and NONE_TYPE in args:
        (inner,) = (a for a in args if a is not NONE_TYPE)
        return _OPTIONAL_PARSERS.get(inner)
    return None


def is_model(t: Any) -> bool:
    """Whether ``t`` is one of the library's attrs models."""
    return (
        isinstance(t, type) and t.__module__.rpartition(".")[0] == _models.__name__ and attrs.has(t)
    )


def has_raw(cls: type) -> bool:
    """Whether the model keeps the mapping it was decoded from (``raw``)."""
    return any(field.name == "raw" for field in attrs.fields(cls))


# --------------------------------------------------------------------------
# Leaf hooks: scalars, enums, timestamps, dates, times
# --------------------------------------------------------------------------


def _is_enum_union(t: Any) -> bool:
    return enum_of(t) is not None


def _structure_enum_union(t: Any) -> Callable[[Any, Any], Any]:
    enum = enum_of(t)
    assert enum is not None  # guaranteed by the predicate
    decode = enum_decoder(enum)
    return lambda value, _: decode(value)


def _is_scalar_union(t: Any) -> bool:
    args = union_args(t)
    return bool(args) and set(args) <= _SCALARS


def _passthrough(value: Any, _: Any) -> Any:
    return value


def _is_optional_time(t: Any) -> bool:
    return optional_parser(t) is not None


def _structure_optional_time(t: Any) -> Callable[[Any, Any], Any]:
    parse = optional_parser(t)
    assert parse is not None  # guaranteed by the predicate
    return lambda value, _: parse(value)


def _is_dict(t: Any) -> bool:
    return typing.get_origin(t) is dict


def _structure_dict(t: Any) -> Callable[[Any, Any], Any]:
    """cattrs' own mapping hook, after a check that the value is a JSON object."""
    # (not converter.gen_structure_mapping: it registers its function over this one)
    generated = make_mapping_structure_fn(
        t, converter, dict, detailed_validation=converter.detailed_validation
    )

    def structure_mapping(value: Any, _: Any) -> Any:
        # cattrs' code would fail on ``value.items()``: an AttributeError, the mark of a bug
        if not isinstance(value, Mapping):
            raise TypeError(f"a JSON object, not {type(value).__name__}")
        return generated(value, t)

    return structure_mapping


converter.register_structure_hook_factory(_is_enum_union, _structure_enum_union)
converter.register_structure_hook_factory(_is_optional_time, _structure_optional_time)
converter.register_structure_hook_factory(_is_dict, _structure_dict)
# Scalars pass through unchecked: decoding a response never fails on 2 vs 2.0.
converter.register_structure_hook_func(_is_scalar_union, _passthrough)
# date before datetime: singledispatch picks the most specific class either way.
converter.register_unstructure_hook(date, _timefmt.format_date)
converter.register_unstructure_hook(datetime, _timefmt.format_timestamp)
converter.register_unstructure_hook(time, _timefmt.format_time)


def _compact_number(value: Any) -> Any:
    """``1.0`` -> ``1``: article 8 writes integral grades as integers (``"correctGrade":1``)."""
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# --------------------------------------------------------------------------
# Model hooks (everything but the hot classes): cattrs-generated, renamed
# --------------------------------------------------------------------------


def _renames(cls: type, **extra: Any) -> dict[str, Any]:
    """cattrs overrides: every attribute renamed to its wire name; ``raw`` & co. left out."""
    names = wire_names(cls)
    overrides: dict[str, Any] = {
        field.name: override(rename=names[field.name])
        if field.name in names
        else override(omit=True)
        for field in attrs.fields(cls)
    }
    overrides.update(extra)
    return overrides


def _structure_model(cls: type) -> Callable[[Any, Any], Any]:
    if cls is Candidate:
        generated: Callable[[Any, Any], Any] = _structure_candidate
    else:
        extra: dict[str, Any] = {}
        if cls is GradedAssessmentEvent:
            extra["sectional_scores"] = override(
                rename="sectional_scores", struct_hook=_structure_sectional_scores
            )
        generated = make_dict_structure_fn(cls, converter, **_renames(cls, **extra))
    if cls in _EVENT_CLASSES.values():
        generated = _accept_both_assessment_ids(cls, generated)
    keep_raw = has_raw(cls)

    def structure_object(data: Any, _: Any) -> Any:
        # cattrs' generated code would read a string as an empty object ("type" in "text")
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__} is a JSON object, not {type(data).__name__}")
        obj = generated(data, cls)
        if keep_raw:
            obj.raw = data
        return obj

    return structure_object


def _unstructure_model(cls: type) -> Callable[[Any], Any]:
    extra: dict[str, Any] = {}
    if cls is Skill:
        for attr in ("correct_grade", "incorrect_grade"):
            extra[attr] = override(rename=wire_names(cls)[attr], unstruct_hook=_unstructure_grade)
    if cls is GradedAssessmentEvent:
        extra["sectional_scores"] = override(
            rename="sectional_scores", unstruct_hook=_unstructure_sectional_scores
        )
    generated: Callable[[Any], Any] = make_dict_unstructure_fn(
        cls, converter, _cattrs_omit_if_default=True, **_renames(cls, **extra)
    )
    if cls is not Candidate:
        return generated

    def unstructure_candidate(obj: Candidate) -> dict[str, Any]:
        data: dict[str, Any] = generated(obj)
        # article 13: further registration fields travel inline, under their labels
        for label, value in obj.extra_fields.items():
            data.setdefault(label, value)
        return data

    return unstructure_candidate


def _unstructure_grade(value: float | None) -> Any:
    return _compact_number(value)


_CANDIDATE_ATTRS: Final = {wire: attr for attr, wire in wire_names(Candidate).items()}


def _structure_candidate(data: Mapping[str, Any], _: Any) -> Candidate:
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        attr = _CANDIDATE_ATTRS.get(key)
        if attr is None:
            extra[key] = value
        else:
            known[attr] = value
    return Candidate(**known, extra_fields=extra)


# --------------------------------------------------------------------------
# Webhook events (article 13)
# --------------------------------------------------------------------------

_EVENT_CLASSES: Final[dict[WebhookEventType, type[Any]]] = {
    WebhookEventType.START_ASSESSMENT: StartAssessmentEvent,
    WebhookEventType.FINISH_TEST: FinishTestEvent,
    WebhookEventType.GRADED_ASSESSMENT: GradedAssessmentEvent,
    WebhookEventType.CANDIDATE_TEST_RESUMED: CandidateTestResumedEvent,
}
# The graded payload says "assessmentId", the others "assessment_id" (article 13).
_ASSESSMENT_ID_SPELLINGS: Final = ("assessment_id", "assessmentId")


def _accept_both_assessment_ids(
    cls: type, generated: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    own = wire_names(cls)["assessment_id"]
    (other,) = (name for name in _ASSESSMENT_ID_SPELLINGS if name != own)

    def structure_event(data: Any, _: Any) -> Any:
        if own not in data and other in data:
            data = {**data, own: data[other]}
        return generated(data, cls)

    return structure_event


_SECTIONAL_SCORE_WIRE: Final = wire_names(SectionalScore)


def _structure_sectional_scores(value: Any, _: Any) -> list[SectionalScore] | None:
    """The graded webhook sends ``sectional_scores`` as JSON inside a string (article 13)."""
    if value is None or value == "":
        return None
    try:
        items = orjson.loads(value) if isinstance(value, str | bytes) else value
        return [
            SectionalScore(**{attr: item.get(wire) for attr, wire in _SECTIONAL_SCORE_WIRE.items()})
            for item in items
        ]
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        logger.warning(
            "sectional_scores is not the JSON list Mettl documents: left None "
            "(the text stays in raw): %.200r",
            value,
        )
        return None


def _unstructure_sectional_scores(value: list[SectionalScore] | None) -> str | None:
    if value is None:
        return None
    return orjson.dumps(converter.unstructure(value, list[SectionalScore])).decode()


converter.register_structure_hook_factory(is_model, _structure_model)
converter.register_unstructure_hook_factory(is_model, _unstructure_model)


# --------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------


def decode_error(cls: type, exc: Exception) -> ValidationError:
    """``exc`` (one of :data:`DATA_ERRORS`) as the error of a ``cls`` Mettl sent."""
    return ValidationError(
        [ValidationProblem(cls.__name__, f"not the shape Mettl documents: {exc!r}")],
        subject=f"{cls.__name__} data",
    )


def structure(data: Any, cls: type[T]) -> T:
    """Build a ``cls`` from decoded JSON (wire names), leniently.

    Raises :class:`~mettl_async.ValidationError` only when ``data`` does not
    have the documented structure (for example a string where an object belongs).
    """
    try:
        return converter.structure(data, cls)
    except ValidationError:
        raise
    except DATA_ERRORS as exc:
        raise decode_error(cls, exc) from exc


def unstructure(obj: Any) -> dict[str, Any]:
    """A model -> a ``dict``: wire names, the articles' order, ``None`` properties left out."""
    if not is_model(type(obj)):
        raise TypeError(f"unstructure() takes a mettl_async model, not {type(obj).__name__}")
    return cast("dict[str, Any]", converter.unstructure(obj))


def to_json(obj: Any) -> str:
    """A model -> minified JSON with exact wire names: the one string that is signed and sent."""
    return orjson.dumps(unstructure(obj)).decode()
