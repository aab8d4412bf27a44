"""The one cattrs converter of mettl-async, and the fast path for candidate results.

``converter`` is built once, here, from ``cattrs.preconf.orjson``; no hook is
ever registered on cattrs' global converter. It maps the wire names of
:func:`mettl_async._models.wire_names` to snake_case attributes (cattrs
``override(rename=...)``), decodes enums and timestamps leniently, keeps the
decoded mapping of every response model in ``raw``, and leaves out unset
(``None``) properties when serializing, in the articles' property order.

Decoding policy for responses: unknown keys are ignored (they stay in ``raw``);
scalars are taken as JSON gives them, unchecked (Mettl writes ``2`` in one
place and ``2.0`` in the next); enum values and timestamps never fail (see
``_enums`` and ``_timefmt``). Only a structural mismatch (a string where an
object belongs) raises, as :class:`~mettl_async.ValidationError`.

The hot path. :class:`CandidateResult` and everything under it are not built
by cattrs-generated functions but by builders generated here from the same
rename table: straight-line code that creates the instance without
``__init__`` (``object.__new__`` plus slot stores) and copies scalars with
``dict.get``. The expensive parts are lazy: nested marks lists, the analysis
and every timestamp of :class:`TestStatus` get a "not yet structured" sentinel
at build time; the attribute is a property (installed over the attrs slot)
that structures the value from ``raw`` on first read and stores it in the
slot, so later reads cost a slot read. A record whose marks are never read
never pays for them, and a record read completely costs about what an eager
build would. Two threads reading the same lazy attribute for the first time
may both structure it; each gets an equal value and the last one is kept.
"""

from __future__ import annotations

import linecache
import logging
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any, Final, TypeVar, cast

import attrs
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from . import _models
from ._enums import MettlEnum, WebhookEventType, enum_decoder
from ._errors import ValidationError, ValidationProblem
from ._models import (
    Analysis,
    Candidate,
    CandidateResult,
    CandidateTestResumedEvent,
    DifficultyMarks,
    FinishTestEvent,
    GradedAssessmentEvent,
    QuestionResponse,
    Schedule,
    SectionalScore,
    SectionMarks,
    SkillMarks,
    StartAssessmentEvent,
    TestInstance,
    TestResult,
    TestStatus,
    WebhookEvent,
    wire_names,
)
from ._timefmt import (
    format_date,
    format_time,
    format_timestamp,
    parse_date,
    parse_time,
    parse_timestamp,
)

__all__ = [
    "candidate_result_from_wire",
    "converter",
    "instance_from_wire",
    "parse_webhook_event",
    "schedule_from_wire",
    "structure",
    "to_json",
    "unstructure",
]

T = TypeVar("T")
logger = logging.getLogger("mettl_async")

#: The converter. Hooks are registered below, once, at import.
converter: Final[OrjsonConverter] = make_converter(omit_if_default=True, detailed_validation=False)

_NONE_TYPE: Final = type(None)
_SCALARS: Final = frozenset({str, int, float, bool, _NONE_TYPE})


# --------------------------------------------------------------------------
# Leaf hooks: scalars, enums, timestamps, dates, times
# --------------------------------------------------------------------------


def _union_args(t: Any) -> tuple[Any, ...]:
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return typing.get_args(t)
    return ()


def _enum_of(t: Any) -> type[MettlEnum] | None:
    """``TheEnum`` for a field typed ``TheEnum | str`` (optionally ``| None``)."""
    args = _union_args(t)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, MettlEnum)]
    if len(enums) == 1 and set(args) - {enums[0]} <= {str, _NONE_TYPE}:
        return enums[0]
    return None


def _is_enum_union(t: Any) -> bool:
    return _enum_of(t) is not None


def _structure_enum_union(t: Any) -> Callable[[Any, Any], Any]:
    enum = _enum_of(t)
    assert enum is not None  # guaranteed by the predicate
    decode = enum_decoder(enum)
    return lambda value, _: decode(value)


def _is_scalar_union(t: Any) -> bool:
    args = _union_args(t)
    return bool(args) and set(args) <= _SCALARS


def _passthrough(value: Any, _: Any) -> Any:
    return value


_OPTIONAL_PARSERS: Final[dict[type, Callable[[object], Any]]] = {
    datetime: parse_timestamp,
    date: parse_date,
    time: parse_time,
}


def _optional_parser(t: Any) -> Callable[[object], Any] | None:
    args = _union_args(t)
    if len(args) == 2 and _NONE_TYPE in args:
        (inner,) = (a for a in args if a is not _NONE_TYPE)
        return _OPTIONAL_PARSERS.get(inner)
    return None


def _is_optional_time(t: Any) -> bool:
    return _optional_parser(t) is not None


def _structure_optional_time(t: Any) -> Callable[[Any, Any], Any]:
    parse = _optional_parser(t)
    assert parse is not None  # guaranteed by the predicate
    return lambda value, _: parse(value)


converter.register_structure_hook_factory(_is_enum_union, _structure_enum_union)
converter.register_structure_hook_factory(_is_optional_time, _structure_optional_time)
# Scalars pass through unchecked: decoding a response never fails on 2 vs 2.0.
converter.register_structure_hook_func(_is_scalar_union, _passthrough)
# date before datetime: singledispatch picks the most specific class either way.
converter.register_unstructure_hook(date, format_date)
converter.register_unstructure_hook(datetime, format_timestamp)
converter.register_unstructure_hook(time, format_time)


def _compact_number(value: Any) -> Any:
    """``1.0`` -> ``1``: article 8 writes integral grades as integers (``"correctGrade":1``)."""
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# --------------------------------------------------------------------------
# Model hooks (everything but the hot classes): cattrs-generated, renamed
# --------------------------------------------------------------------------


def _is_model(t: Any) -> bool:
    return (
        isinstance(t, type) and t.__module__.rpartition(".")[0] == _models.__name__ and attrs.has(t)
    )


def _has_raw(cls: type) -> bool:
    return any(field.name == "raw" for field in attrs.fields(cls))


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
    if cls in _HOT:
        build = _builder(cls)
        return lambda data, _: build(data)
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
    keep_raw = _has_raw(cls)

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
    if cls is _models.Skill:
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
_EVENT_BY_NAME: Final = {kind.value.casefold(): cls for kind, cls in _EVENT_CLASSES.items()}
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


# --------------------------------------------------------------------------
# The hot path: generated builders and lazy attributes
# --------------------------------------------------------------------------

_HOT: Final[tuple[type, ...]] = (
    CandidateResult,
    TestInstance,
    TestStatus,
    TestResult,
    SectionMarks,
    SkillMarks,
    DifficultyMarks,
    QuestionResponse,
    Analysis,
)

# Attributes structured on first read rather than at build time: the bulk of a
# result (marks trees, essay answers) and the timestamps (a parse each).
_LAZY: Final[dict[type, frozenset[str]]] = {
    TestStatus: frozenset(
        {
            "start_time",
            "end_time",
            "last_response_time",
            "start_time_gmt",
            "end_time_gmt",
            "analysis",
        }
    ),
    TestResult: frozenset({"section_marks", "difficulty_marks", "analysis"}),
    SectionMarks: frozenset({"skill_marks", "difficulty_marks"}),
    SkillMarks: frozenset({"questions", "difficulty_marks"}),
    DifficultyMarks: frozenset({"questions"}),
}

_BUILDERS: dict[type, Callable[[Any], Any]] = {}


def _element_builder(cls: type) -> Callable[[Any], Any]:
    """How to build one ``cls`` from its mapping: a generated builder or the converter's hook."""
    if cls in _HOT:
        return _builder(cls)
    hook = converter.get_structure_hook(cls)
    return lambda data: hook(data, cls)


def _value_converter(t: Any) -> tuple[str, Callable[[Any], Any] | None]:
    """Classify a field type: ("plain", None), ("call", fn) or ("nested", fn).

    ``call`` functions accept ``None`` themselves; ``nested`` ones are only
    called on a value that is not ``None``.
    """
    enum = _enum_of(t)
    if enum is not None:
        return "call", enum_decoder(enum)
    parse = _optional_parser(t)
    if parse is not None:
        return "call", parse
    args = [a for a in _union_args(t) if a is not _NONE_TYPE] or [t]
    if len(args) == 1:
        (inner,) = args
        if typing.get_origin(inner) is list:
            (element_type,) = typing.get_args(inner)
            if _is_model(element_type):
                build = _element_builder(element_type)
                return "nested", lambda items: [build(item) for item in items]
        elif _is_model(inner):
            return "nested", _element_builder(inner)
    return "plain", None


class _Unstructured:
    """The value of a lazy slot that has not been read yet (only builders create it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not yet structured>"


_UNSTRUCTURED: Final = _Unstructured()


def _lazy_attribute(cls: type, attr: str, wire: str, kind: str, fn: Callable[[Any], Any]) -> None:
    """Replace the attrs slot ``cls.attr`` by a property that fills it from ``raw`` on first read.

    Writes and deletes go straight to the slot (the C-level ``member.__set__``
    is the property's setter), so ``__init__``, ``evolve`` and unpickling work
    as on any attrs class. A builder stores ``_UNSTRUCTURED`` in the slot (a
    sentinel test is cheaper than catching the AttributeError of an empty slot).
    """
    member = cls.__dict__[attr]
    read_slot: Callable[[Any], Any] = member.__get__
    write_slot: Callable[[Any, Any], None] = member.__set__
    convert: Callable[[Any], Any] = (
        fn if kind == "call" else (lambda value: None if value is None else fn(value))
    )

    def read(obj: Any) -> Any:
        value = read_slot(obj)
        if value is not _UNSTRUCTURED:
            return value
        try:
            value = convert(obj.raw.get(wire))
        except (TypeError, AttributeError, ValueError, KeyError) as exc:
            # an AttributeError must not escape a property: it would read as "no attribute"
            raise ValidationError(
                [ValidationProblem(f"{cls.__name__}.{wire}", f"cannot be decoded: {exc}")],
                subject=f"{cls.__name__} data",
            ) from exc
        write_slot(obj, value)
        return value

    setattr(cls, attr, property(read, write_slot, member.__delete__, f"``{wire}`` (lazy)"))


def _builder(cls: type) -> Callable[[Any], Any]:
    """Generate (once) the builder of a hot class: ``dict`` -> instance, lazy parts unset."""
    existing = _BUILDERS.get(cls)
    if existing is not None:
        return existing
    hints = typing.get_type_hints(cls)
    lazy = _LAZY.get(cls, frozenset())
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_U": _UNSTRUCTURED}
    lines = [f"def build_{cls.__name__}(o):", "    g = o.get", "    r = _new(_cls)"]
    for attr, wire in wire_names(cls).items():
        kind, fn = _value_converter(hints[attr])
        if attr in lazy:
            assert fn is not None, f"{cls.__name__}.{attr} is lazy but needs no structuring"
            _lazy_attribute(cls, attr, wire, kind, fn)
            lines.append(f"    r.{attr} = _U")
            continue
        if kind == "plain":
            lines.append(f"    r.{attr} = g({wire!r})")
        elif kind == "call":
            namespace[f"_c_{attr}"] = fn
            lines.append(f"    r.{attr} = _c_{attr}(g({wire!r}))")
        else:
            namespace[f"_c_{attr}"] = fn
            lines.append(f"    v = g({wire!r})")
            lines.append(f"    r.{attr} = None if v is None else _c_{attr}(v)")
    lines += ["    r.raw = o", "    return r", ""]
    source = "\n".join(lines)
    filename = f"<mettl_async build {cls.__name__}>"
    # keep the source reachable for tracebacks, as cattrs does for its own functions
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    build = cast("Callable[[Any], Any]", namespace[f"build_{cls.__name__}"])
    _BUILDERS[cls] = build
    return build


converter.register_structure_hook_factory(_is_model, _structure_model)
converter.register_unstructure_hook_factory(_is_model, _unstructure_model)
# Build the hot path now: it installs the lazy properties before any instance exists.
_build_candidate_result: Final = _builder(CandidateResult)
_build_test_instance: Final = _builder(TestInstance)
_structure_schedule: Final = converter.get_structure_hook(Schedule)


# --------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------


def _decode_error(cls: type, exc: Exception) -> ValidationError:
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
    except Exception as exc:
        raise _decode_error(cls, exc) from exc


def unstructure(obj: Any) -> dict[str, Any]:
    """A model -> a ``dict``: wire names, the articles' order, ``None`` properties left out."""
    if not _is_model(type(obj)):
        raise TypeError(f"unstructure() takes a mettl_async model, not {type(obj).__name__}")
    return cast("dict[str, Any]", converter.unstructure(obj))


def to_json(obj: Any) -> str:
    """A model -> minified JSON with exact wire names: the one string that is signed and sent."""
    return orjson.dumps(unstructure(obj)).decode()


def candidate_result_from_wire(raw: dict[str, Any]) -> CandidateResult:
    """One element of article 16's ``candidates`` -> :class:`CandidateResult`, the fast way.

    Marks, analysis and timestamps are structured when first read. ``raw`` is
    kept (not copied) as the result's ``raw``.
    """
    try:
        return cast("CandidateResult", _build_candidate_result(raw))
    except (TypeError, AttributeError, ValueError, KeyError) as exc:
        raise _decode_error(CandidateResult, exc) from exc


def instance_from_wire(raw: dict[str, Any]) -> TestInstance:
    """One element of article 18's ``testInstances`` -> :class:`TestInstance`, the fast way."""
    try:
        return cast("TestInstance", _build_test_instance(raw))
    except (TypeError, AttributeError, ValueError, KeyError) as exc:
        raise _decode_error(TestInstance, exc) from exc


def schedule_from_wire(raw: dict[str, Any]) -> Schedule:
    """One element of article 11's ``schedules`` -> :class:`Schedule`."""
    try:
        return cast("Schedule", _structure_schedule(raw, Schedule))
    except ValidationError:
        raise
    except Exception as exc:
        raise _decode_error(Schedule, exc) from exc


def parse_webhook_event(data: Mapping[str, Any]) -> WebhookEvent:
    """A webhook payload (article 13) -> the event class its ``EVENT_TYPE`` names.

    Raises :class:`~mettl_async.ValidationError` when the payload is not an
    object or its ``EVENT_TYPE`` is missing or unknown.
    """
    if not isinstance(data, Mapping):
        raise ValidationError(
            [
                ValidationProblem(
                    "EVENT_TYPE", f"a webhook payload is a JSON object, not {type(data).__name__}"
                )
            ],
            subject="webhook payload",
        )
    kind = data.get("EVENT_TYPE")
    cls = _EVENT_BY_NAME.get(kind.casefold()) if isinstance(kind, str) else None
    if cls is None:
        expected = ", ".join(repr(k.value) for k in _EVENT_CLASSES)
        raise ValidationError(
            [ValidationProblem("EVENT_TYPE", f"unknown event type {kind!r}; expected {expected}")],
            subject="webhook payload",
        )
    return cast("WebhookEvent", structure(dict(data), cls))
