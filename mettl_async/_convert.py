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

import functools
import linecache
import logging
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any, Final, TypeVar, Union, cast

import attrs
import msgspec
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
    Recommendation,
    ResponseStyle,
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
from ._paging import RawRecord, WireRecord, decode_typed_listing
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
    "decode_instance_page",
    "decode_result_page",
    "instance_from_record",
    "instance_from_wire",
    "parse_webhook_event",
    "result_from_record",
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

        def structure_hot(data: Any, _: Any) -> Any:
            if not isinstance(data, Mapping):  # reported as the shape of what holds it
                raise TypeError(f"{cls.__name__} is a JSON object, not {type(data).__name__}")
            return _from_mapping(cls, build, data)

        return structure_hot
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
# The hot path: generated builders, wire-named mirrors and lazy attributes
# --------------------------------------------------------------------------

# Built by the generated builders below, never by cattrs' generated code.
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
# Everything a typed page decodes into: the hot classes and what they hold.
_MIRRORED: Final[tuple[type, ...]] = (*_HOT, Recommendation, ResponseStyle)

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
}


@attrs.frozen
class _Field:
    """One attribute of a mirrored class, classified once for every builder."""

    attr: str
    wire: str
    kind: str  # "plain", "call" (a leaf decoder), "model" (one nested), "models" (a list)
    required: bool
    hint: Any
    call: Callable[[Any], Any] | None = None
    model: type | None = None


@functools.cache
def _fields(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    required = {f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING}
    fields = []
    for attr, wire in wire_names(cls).items():
        hint = hints[attr]
        common = {"attr": attr, "wire": wire, "required": attr in required, "hint": hint}
        enum = _enum_of(hint)
        parse = _optional_parser(hint)
        args = [a for a in _union_args(hint) if a is not _NONE_TYPE] or [hint]
        inner = args[0] if len(args) == 1 else None
        if enum is not None:
            fields.append(_Field(kind="call", call=enum_decoder(enum), **common))
        elif parse is not None:
            fields.append(_Field(kind="call", call=parse, **common))
        elif typing.get_origin(inner) is list and typing.get_args(inner)[0] in _MIRRORED:
            fields.append(_Field(kind="models", model=typing.get_args(inner)[0], **common))
        elif inner in _MIRRORED:
            fields.append(_Field(kind="model", model=inner, **common))
        else:
            fields.append(_Field(kind="plain", **common))
    return tuple(fields)


def _strict_scalar(hint: Any) -> Any:
    """The mirror type of a required scalar: what Mettl always sends, ``null`` refused."""
    if _enum_of(hint) is not None:
        return str
    bare = [a for a in _union_args(hint) if a is not _NONE_TYPE] or [hint]
    base = typing.get_origin(bare[0]) or bare[0]
    return {float: int | float, dict: dict[str, Any]}.get(base, base)


# --------------------------------------------------------------------------
# Mirrors: msgspec structs with the wire names, one per mirrored class
# --------------------------------------------------------------------------

# The mirror of each class, generated from the same rename table as the
# converter. msgspec decodes a page straight into them (attrs ``alias`` is not
# something msgspec reads, hence mirrors instead of the public classes). The
# fast path is strict where the dict path is lenient: a page with anything the
# mirrors do not accept (a string where marks belong, a required field
# missing) is not decoded here but record by record through the dict path,
# which keeps its lazy, per-record failures.
_MIRRORS: dict[type, type[msgspec.Struct]] = {}
#: the mirrors a typed page holds at its top level, by model class
_RECORD_MIRRORS: dict[type, type[WireRecord]] = {}
# The identity of a record in its listing (RawRecord.key's counterpart).
_KEY_ATTRIBUTE: Final[dict[type, str]] = {CandidateResult: "email", TestInstance: "email"}


def _mirror(cls: type) -> type[msgspec.Struct]:
    existing = _MIRRORS.get(cls)
    if existing is not None:
        return existing
    specs: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in _fields(cls):
        if field.kind == "model":
            assert field.model is not None
            t: Any = _mirror(field.model)
        elif field.kind == "models":
            assert field.model is not None
            # a tuple of untracked structs is itself untracked after one collection
            t = tuple[_mirror(field.model), ...]  # type: ignore[misc]
        elif field.required:
            t = _strict_scalar(field.hint)
        else:
            t = Any
        if field.required:
            specs.append((field.attr, t))
        else:
            specs.append((field.attr, t if t is Any else t | None, None))
    top = cls in _KEY_ATTRIBUTE
    mirror = msgspec.defstruct(
        f"_{cls.__name__}Wire",
        specs,
        bases=(WireRecord,) if top else None,
        namespace={"key_attribute": _KEY_ATTRIBUTE[cls]} if top else None,
        rename={field.attr: field.wire for field in _fields(cls)},
        kw_only=True,
        gc=False,  # decoded from JSON: no cycles possible
        module=__name__,
    )
    _MIRRORS[cls] = mirror
    if top:
        _RECORD_MIRRORS[cls] = cast("type[WireRecord]", mirror)
    return mirror


# Values of any JSON type but an object: where a nested part is not what the
# model says, the dict path still builds the record and fails when it is read.
_NOT_AN_OBJECT: Final = (list[Any], str, int, float, bool)


def _tolerant(model_type: Any, *, nullable: bool) -> Any:
    options: tuple[Any, ...] = (model_type, *_NOT_AN_OBJECT)
    return Union[(*options, None) if nullable else options]  # noqa: UP007


@functools.cache
def _validator(cls: type) -> type[msgspec.Struct]:
    """What the dict path checks before building: the required fields, at any depth.

    Only the required fields and the nested parts are declared; a nested part
    of the wrong JSON type passes here (it fails when read, as it always did).
    """
    specs: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in _fields(cls):
        if field.kind == "model":
            assert field.model is not None
            nested = _validator(field.model)
            t: Any = nested if field.required else _tolerant(nested, nullable=True)
        elif field.kind == "models":
            assert field.model is not None
            element = _tolerant(_validator(field.model), nullable=True)
            t = Union[list[element], dict[str, Any], str, int, float, bool]  # type: ignore[valid-type]  # noqa: UP007
            if not field.required:
                t = t | None
        elif field.required:
            t = _strict_scalar(field.hint)
        else:
            continue
        specs.append((field.attr, t) if field.required else (field.attr, t, None))
    return msgspec.defstruct(
        f"_{cls.__name__}Check",
        specs,
        rename={field.attr: field.wire for field in _fields(cls)},
        kw_only=True,
        module=__name__,
    )


_MSGSPEC_MISSING: Final = re.compile(
    r"Object missing required field `(?P<field>[^`]+)`(?: - at `\$(?P<at>.*)`)?$"
)
_MSGSPEC_AT: Final = re.compile(r"(?P<what>.*) - at `\$(?P<at>.*)`$")


def _problem(cls: type, error: msgspec.ValidationError) -> ValidationProblem:
    """msgspec's message -> a problem at a wire path (``testStatus.result.totalMarks``)."""
    text = str(error)
    missing = _MSGSPEC_MISSING.match(text)
    if missing is not None:
        at = (missing["at"] or "").lstrip(".")
        path = f"{at}.{missing['field']}" if at else missing["field"]
        return ValidationProblem(path, "missing; Mettl always sends it")
    located = _MSGSPEC_AT.match(text)
    if located is not None:
        what = located["what"].replace("`", "")
        return ValidationProblem(
            located["at"].lstrip(".") or cls.__name__, what[:1].lower() + what[1:]
        )
    return ValidationProblem(cls.__name__, text.replace("`", ""))


def _check(cls: type, data: Any) -> None:
    """Raise :class:`ValidationError` if ``data`` lacks what Mettl always sends."""
    try:
        msgspec.convert(data, _validator(cls))
    except msgspec.ValidationError as exc:
        raise ValidationError([_problem(cls, exc)], subject=f"{cls.__name__} data") from None


# --------------------------------------------------------------------------
# Builders: mapping -> instance (the dict path), mirror -> instance (typed pages)
# --------------------------------------------------------------------------


class _Unstructured:
    """The value of a lazy slot that has not been read yet (only builders create it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not yet structured>"


_UNSTRUCTURED: Final = _Unstructured()

# Where the ``raw`` of an instance built from a mirror comes from: the slot holds
# the record's WireRecord (top level), or a source tuple for a nested part:
# ``(mirror, parent's source, wire name, index or None)``. Reading ``raw``
# resolves it from the record's JSON text; the mirror stays for the lazy parts.
_Source = tuple[Any, Any, str, int | None]


def _resolve(source: Any) -> Any:
    if type(source) is tuple:
        _, parent, wire, index = source
        value = _resolve(parent)[wire]
        return value if index is None else value[index]
    return cast("WireRecord", source).data()


_DICT_BUILDERS: dict[type, Callable[[Any], Any]] = {}
_MIRROR_BUILDERS: dict[type, Callable[[Any, Any], Any]] = {}


def _compile(name: str, lines: list[str], namespace: dict[str, Any]) -> Callable[..., Any]:
    source = "\n".join([*lines, ""])
    filename = f"<mettl_async {name}>"
    # keep the source reachable for tracebacks, as cattrs does for its own functions
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return cast("Callable[..., Any]", namespace[name])


def _dict_converter(field: _Field) -> Callable[[Any], Any] | None:
    """How the dict path structures a field's value (``None`` for a plain copy).

    ``model``/``models`` converters are only called on a value that is not ``None``.
    """
    if field.kind == "call":
        return field.call
    if field.model is None:
        return None
    build = _element_builder(field.model)
    if field.kind == "model":
        return build
    return lambda items: [build(item) for item in items]


def _element_builder(cls: type) -> Callable[[Any], Any]:
    """How to build one ``cls`` from its mapping: a generated builder or the converter's hook."""
    if cls in _HOT:
        return _builder(cls)
    hook = converter.get_structure_hook(cls)
    return lambda data: hook(data, cls)


def _builder(cls: type) -> Callable[[Any], Any]:
    """The dict path's builder of a hot class: mapping -> instance, lazy parts unset.

    Straight-line code from the rename table: ``dict.get`` per attribute, the
    instance created without ``__init__``; ``raw`` is the mapping itself.
    """
    existing = _DICT_BUILDERS.get(cls)
    if existing is not None:
        return existing
    lazy = _LAZY.get(cls, frozenset())
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_U": _UNSTRUCTURED}
    lines = [f"def build_{cls.__name__}(o):", "    g = o.get", "    r = _new(_cls)"]
    for field in _fields(cls):
        attr, wire = field.attr, field.wire
        convert = _dict_converter(field)
        if attr in lazy:
            # nothing to structure later when there is nothing (most lazy parts are null)
            lines.append(f"    r.{attr} = None if g({wire!r}) is None else _U")
        elif convert is None:
            lines.append(f"    r.{attr} = g({wire!r})")
        elif field.kind == "call":
            namespace[f"_c_{attr}"] = convert
            lines.append(f"    r.{attr} = _c_{attr}(g({wire!r}))")
        else:
            namespace[f"_c_{attr}"] = convert
            lines.append(f"    v = g({wire!r})")
            lines.append(f"    r.{attr} = None if v is None else _c_{attr}(v)")
    lines += ["    r.raw = o", "    return r"]
    build = _compile(f"build_{cls.__name__}", lines, namespace)
    _DICT_BUILDERS[cls] = build
    return build


def _mirror_converter(field: _Field) -> Callable[[Any, Any], Any] | None:
    """How a mirror's value becomes the attribute: ``(value, parent source) -> value``."""
    if field.kind == "call":
        call = field.call
        assert call is not None
        return lambda value, _: call(value)
    if field.model is None:
        return None
    build = _mirror_builder(field.model)
    wire = field.wire
    if field.kind == "model":
        return lambda value, source: (
            None if value is None else build(value, (value, source, wire, None))
        )
    return lambda values, source: (
        None
        if values is None
        else [build(value, (value, source, wire, i)) for i, value in enumerate(values)]
    )


def _mirror_builder(cls: type) -> Callable[[Any, Any], Any]:
    """The typed page's builder of a mirrored class: ``(mirror, source) -> instance``.

    ``source`` is what ``raw`` resolves from (see ``_Source``); scalars are
    copied, enums decoded, nested parts built (or left lazy, as in the dict path).
    """
    existing = _MIRROR_BUILDERS.get(cls)
    if existing is not None:
        return existing
    lazy = _LAZY.get(cls, frozenset())
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_U": _UNSTRUCTURED}
    lines = [f"def mirror_{cls.__name__}(m, s):", "    r = _new(_cls)"]
    for field in _fields(cls):
        attr = field.attr
        if attr in lazy:
            lines.append(f"    r.{attr} = None if m.{attr} is None else _U")
        elif field.kind == "plain":
            lines.append(f"    r.{attr} = m.{attr}")
        elif field.kind == "call":
            namespace[f"_c_{attr}"] = field.call
            lines.append(f"    r.{attr} = _c_{attr}(m.{attr})")
        else:
            wire = field.wire
            namespace[f"_b_{attr}"] = _mirror_builder(cast("type", field.model))
            lines.append(f"    v = m.{attr}")
            if field.kind == "model":
                lines.append(
                    f"    r.{attr} = None if v is None else _b_{attr}(v, (v, s, {wire!r}, None))"
                )
            else:
                lines.append(
                    f"    r.{attr} = None if v is None else "
                    f"[_b_{attr}(x, (x, s, {wire!r}, i)) for i, x in enumerate(v)]"
                )
    if _has_raw(cls):
        lines.append("    r.raw = s")
    lines.append("    return r")
    build = _compile(f"mirror_{cls.__name__}", lines, namespace)
    _MIRROR_BUILDERS[cls] = build
    return build


# --------------------------------------------------------------------------
# Lazy attributes and ``raw``: properties over the attrs slots
# --------------------------------------------------------------------------


# The attrs slot of each hot class's ``raw`` (the member descriptor, captured
# before ``raw`` becomes a property): the lazy properties read their source there.
_RAW_SLOTS: dict[type, Any] = {}


def _lazy_attribute(cls: type, field: _Field) -> None:
    """Replace the attrs slot ``cls.attr`` by a property that fills it on first read.

    The value comes from the mirror when the instance was built from a typed
    page, else from ``raw``. Writes and deletes go straight to the slot (the
    C-level ``member.__set__`` is the property's setter), so ``__init__``,
    ``evolve`` and unpickling work as on any attrs class. A builder stores
    ``_UNSTRUCTURED`` in the slot (a sentinel test is cheaper than catching
    the AttributeError of an empty slot).
    """
    attr, wire = field.attr, field.wire
    member = cls.__dict__[attr]
    read_slot: Callable[[Any], Any] = member.__get__
    write_slot: Callable[[Any, Any], None] = member.__set__
    read_source: Callable[[Any], Any] = _RAW_SLOTS[cls].__get__
    from_dict = _dict_converter(field)
    assert from_dict is not None, f"{cls.__name__}.{attr} is lazy but needs no structuring"
    convert_dict: Callable[[Any], Any] = (
        from_dict
        if field.kind == "call"
        else (lambda value: None if value is None else from_dict(value))
    )
    from_mirror = _mirror_converter(field)
    assert from_mirror is not None

    def read(obj: Any) -> Any:
        value = read_slot(obj)
        if value is not _UNSTRUCTURED:
            return value
        source = read_source(obj)
        if type(source) is tuple:
            value = from_mirror(getattr(source[0], attr), source)
        elif isinstance(source, WireRecord):
            value = from_mirror(getattr(source, attr), source)
        else:
            try:
                value = convert_dict(source.get(wire))
            except (TypeError, AttributeError, ValueError, KeyError) as exc:
                # an AttributeError must not escape a property: it would read as "no attribute"
                raise ValidationError(
                    [ValidationProblem(f"{cls.__name__}.{wire}", f"cannot be decoded: {exc}")],
                    subject=f"{cls.__name__} data",
                ) from exc
        write_slot(obj, value)
        return value

    setattr(cls, attr, property(read, write_slot, member.__delete__, f"``{wire}`` (lazy)"))


def _raw_attribute(cls: type) -> None:
    """``raw`` as a property: the mapping, resolved from the JSON text when built from a page."""
    member = _RAW_SLOTS[cls]
    read_slot: Callable[[Any], Any] = member.__get__

    def read(obj: Any) -> Any:
        source = read_slot(obj)
        if type(source) is tuple or isinstance(source, WireRecord):
            return _resolve(source)
        return source

    doc = "The mapping this was decoded from, exactly as Mettl sent it (parsed on first read)."
    setattr(cls, "raw", property(read, member.__set__, member.__delete__, doc))  # noqa: B010


def _install_properties() -> None:
    for cls in _HOT:
        # a subclass (TestInstance) inherits its base's slot, and then its property
        _RAW_SLOTS[cls] = next(k.__dict__["raw"] for k in cls.__mro__ if "raw" in k.__dict__)
    for cls in _HOT:
        if "raw" in cls.__dict__:
            _raw_attribute(cls)
        lazy = _LAZY.get(cls, frozenset())
        for field in _fields(cls):
            if field.attr in lazy:
                _lazy_attribute(cls, field)


converter.register_structure_hook_factory(_is_model, _structure_model)
converter.register_unstructure_hook_factory(_is_model, _unstructure_model)
# Before any instance exists: the lazy properties and raw, then the builders.
_install_properties()
_build_candidate_result: Final = _builder(CandidateResult)
_build_test_instance: Final = _builder(TestInstance)
_mirror_candidate_result: Final = _mirror_builder(CandidateResult)
_mirror_test_instance: Final = _mirror_builder(TestInstance)
_mirror(CandidateResult)
_mirror(TestInstance)
_CANDIDATE_RESULT_WIRE: Final = _RECORD_MIRRORS[CandidateResult]
_TEST_INSTANCE_WIRE: Final = _RECORD_MIRRORS[TestInstance]
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


def _from_mapping(cls: type, build: Callable[[Any], Any], data: Any) -> Any:
    """The dict path: check what Mettl always sends, then build (lazy parts unset)."""
    if not isinstance(data, Mapping):
        raise ValidationError(
            [ValidationProblem(cls.__name__, f"a JSON object, not {type(data).__name__}")],
            subject=f"{cls.__name__} data",
        )
    _check(cls, data if isinstance(data, dict) else dict(data))
    try:
        return build(data)
    except (TypeError, AttributeError, ValueError, KeyError) as exc:
        raise _decode_error(cls, exc) from exc


def candidate_result_from_wire(raw: dict[str, Any]) -> CandidateResult:
    """One element of article 16's ``candidates`` -> :class:`CandidateResult`.

    Marks, analysis and timestamps are structured when first read. ``raw`` is
    kept (not copied) as the result's ``raw``. A record without what Mettl
    always sends (its ``email``, ``registration``, ``testStatus``...) raises
    :class:`~mettl_async.ValidationError` naming the wire path.
    """
    return cast("CandidateResult", _from_mapping(CandidateResult, _build_candidate_result, raw))


def instance_from_wire(raw: dict[str, Any]) -> TestInstance:
    """One element of article 18's ``testInstances`` -> :class:`TestInstance`."""
    return cast("TestInstance", _from_mapping(TestInstance, _build_test_instance, raw))


def result_from_record(record: Any) -> CandidateResult:
    """A record of a typed results page -> :class:`CandidateResult`.

    A record the page decoded into its mirror is built from it (no parsing);
    any other (a :class:`~mettl_async.RawRecord` of a page that had to be read
    record by record, or a mapping) goes through :func:`candidate_result_from_wire`.
    """
    if type(record) is _CANDIDATE_RESULT_WIRE:
        return cast("CandidateResult", _mirror_candidate_result(record, record))
    return candidate_result_from_wire(record.to_dict() if isinstance(record, RawRecord) else record)


def instance_from_record(record: Any) -> TestInstance:
    """A record of a typed ``testInstances`` page -> :class:`TestInstance` (see above)."""
    if type(record) is _TEST_INSTANCE_WIRE:
        return cast("TestInstance", _mirror_test_instance(record, record))
    return instance_from_wire(record.to_dict() if isinstance(record, RawRecord) else record)


#: Page decoders of typed listings (``_paging.decode_typed_listing`` with its mirror):
#: pass to a ``Listing`` with :func:`result_from_record` / :func:`instance_from_record`.
decode_result_page: Final = functools.partial(
    decode_typed_listing, record_type=_CANDIDATE_RESULT_WIRE
)
decode_instance_page: Final = functools.partial(
    decode_typed_listing, record_type=_TEST_INSTANCE_WIRE
)


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
