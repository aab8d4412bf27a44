"""The one cattrs converter of mettl-async, and the fast paths of results and schedules.

``converter`` is built once, here, from ``cattrs.preconf.orjson``; no hook is
ever registered on cattrs' global converter. It maps the wire names of
:func:`mettl_async._models.wire_names` to snake_case attributes (cattrs
``override(rename=...)``), decodes enums and timestamps leniently, keeps the
decoded mapping of every response model in ``raw``, and leaves out unset
(``None``) properties when serializing, in the articles' property order.

Decoding policy for responses: unknown keys are ignored (they stay in ``raw``);
scalars are taken as JSON gives them, unchecked (Mettl writes ``2`` in one
place and ``2.0`` in the next), except the attributes Mettl always sends (a
result's ``email``, its ``testStatus.status``, its marks totals), which must be
there with their JSON type; enum values and timestamps never fail (see
``_enums`` and ``_timefmt``). A structural mismatch (a string where an object
belongs) or a missing required field raises :class:`~mettl_async.ValidationError`
naming the wire path (``testStatus.result.totalMarks``).

Candidate results and schedules have a fast path besides the converter, in
two routes generated from the same rename table:

- Typed pages (listings). msgspec decodes the whole page in one pass into
  *mirrors*: ``msgspec.Struct`` classes with the wire names (msgspec does not
  read attrs aliases, hence mirrors). They are ``gc=False``, so pages waiting
  in a walk's window cost the garbage collector nothing, and the lazy parts of
  a result (its marks trees and analysis) stay JSON text (``msgspec.Raw``)
  until read. A listing then builds each model from its mirror as it yields
  it. ``raw`` is resolved from the page's text on first read. A page the
  mirrors refuse (anything missing or of another JSON type, anywhere) is read
  record by record through the dict path instead: a typed page is never
  stricter or more lenient than its records, and fails the same way.
- The dict path (a single record, webhooks, refused pages): straight-line
  builders that copy with ``dict.get`` after one msgspec check of the fields
  Mettl always sends; ``raw`` is the mapping itself.

Both create instances without ``__init__`` (``object.__new__`` plus slot
stores). Lazy attributes (marks, analysis, timestamps) get a "not yet
structured" sentinel at build time; the attribute is a property (installed
over the attrs slot, the slot kept reachable under ``_slot_<name>``) that
structures the value on first read, checking its shape then (an error names
``TestResult.sectionMarks[0]...``), and stores it, so later reads cost a slot
read and a test. Two threads reading the same lazy attribute for the first time
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
    Schedule,
    SectionalScore,
    SectionMarks,
    SkillMarks,
    StartAssessmentEvent,
    TestInstance,
    TestResult,
    TestStatus,
    wire_names,
)
from ._paging import RawRecord, WireRecord, decode_typed_listing
from ._timefmt import (
    INLINE_TIMESTAMP_NAMES,
    format_date,
    format_time,
    format_timestamp,
    inline_timestamp_source,
    parse_date,
    parse_time,
    parse_timestamp,
)

__all__ = [
    "candidate_result_from_wire",
    "converter",
    "decode_instance_page",
    "decode_result_page",
    "decode_schedule_page",
    "instance_from_record",
    "instance_from_wire",
    "result_from_record",
    "schedule_from_record",
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


def _mirrorable(t: Any) -> bool:
    """Whether a typed page decodes ``t`` into a mirror (any model, but one).

    A :class:`Candidate` keeps every registration field it does not name
    (``extra_fields``): a mirror would drop them, so candidates inside a typed
    page are decoded as JSON and structured by the converter.
    """
    return _is_model(t) and t is not Candidate


# Attributes structured on first read rather than at build time: the bulk of a
# result (its marks trees and analysis) and the timestamps (a parse each). A
# typed page does not even decode the lazy parts: they stay JSON text until read.
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

    owner: type
    attr: str
    wire: str
    # "plain", "call" (a leaf decoder), "model" (one nested), "models" (a list of them),
    # "hooked" (a model that is not mirrored: the converter's hook structures it)
    kind: str
    required: bool
    lazy: bool
    hint: Any
    call: Callable[[Any], Any] | None = None
    enum: type[MettlEnum] | None = None
    model: type | None = None
    hook: Callable[[Any], Any] | None = None

    @property
    def where(self) -> str:
        """The path of this attribute's errors when it is read lazily."""
        return f"{self.owner.__name__}.{self.wire}"


def _hooked(hook: Callable[[Any, Any], Any], target: Any, value: Any) -> Any:
    return hook(value, target)


@functools.cache
def _fields(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    required = {f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING}
    lazy = _LAZY.get(cls, frozenset())
    fields = []
    for attr, wire in wire_names(cls).items():
        hint = hints[attr]
        common: dict[str, Any] = {
            "owner": cls,
            "attr": attr,
            "wire": wire,
            "required": attr in required,
            "lazy": attr in lazy,
            "hint": hint,
        }
        enum = _enum_of(hint)
        parse = _optional_parser(hint)
        args = [a for a in _union_args(hint) if a is not _NONE_TYPE] or [hint]
        inner = args[0] if len(args) == 1 else None
        if enum is not None:
            fields.append(_Field(kind="call", call=enum_decoder(enum), enum=enum, **common))
        elif parse is not None:
            fields.append(_Field(kind="call", call=parse, **common))
        elif typing.get_origin(inner) is list and _mirrorable(typing.get_args(inner)[0]):
            fields.append(_Field(kind="models", model=typing.get_args(inner)[0], **common))
        elif _mirrorable(inner):
            fields.append(_Field(kind="model", model=inner, **common))
        elif _is_model(inner) or (
            typing.get_origin(inner) is list and _is_model(typing.get_args(inner)[0])
        ):
            hook = converter.get_structure_hook(inner)
            fields.append(
                _Field(kind="hooked", hook=functools.partial(_hooked, hook, inner), **common)
            )
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

# The mirror of each class is generated from the same rename table as the
# converter, and msgspec decodes a page straight into them (msgspec does not
# read attrs ``alias``, hence mirrors rather than the public classes). Scalars
# are taken as sent (``Any``) except what Mettl always sends, which must be
# there with its JSON type; enums must be text; lazy parts are kept as their
# JSON text (``msgspec.Raw``), decoded when read. A page the mirrors do not
# accept is read record by record through the dict path instead, so a typed
# page is never stricter nor more lenient than the records it holds.
_MIRRORS: dict[type, type[msgspec.Struct]] = {}
#: the mirrors a typed page holds at its top level, by model class
_RECORD_MIRRORS: dict[type, type[WireRecord]] = {}
# The identity of a record in its listing (RawRecord.key's counterpart).
_KEY_ATTRIBUTE: Final[dict[type, str]] = {
    CandidateResult: "email",
    TestInstance: "email",
    Schedule: "access_key",
}
_NULL: Final = msgspec.Raw(b"null")


def _mirror(cls: type) -> type[msgspec.Struct]:
    existing = _MIRRORS.get(cls)
    if existing is not None:
        return existing
    specs: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in _fields(cls):
        default: Any = None
        if field.lazy and field.model is not None:
            t: Any = msgspec.Raw
            default = _NULL
        elif field.kind == "model":
            assert field.model is not None
            t = _mirror(field.model)
        elif field.kind == "models":
            assert field.model is not None
            # a tuple of untracked structs is itself untracked after one collection
            t = tuple[_mirror(field.model), ...]  # type: ignore[misc]
        elif field.required:
            t = _strict_scalar(field.hint)
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


@functools.cache
def _lazy_type(field: _Field) -> Any:
    """What the value of a lazy nested part must be: its mirror(s), ``null`` if optional."""
    assert field.model is not None
    t: Any = _mirror(field.model)
    if field.kind == "models":
        t = tuple[t, ...]
    return t if field.required else t | None


@functools.cache
def _lazy_decoder(field: _Field) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(_lazy_type(field))


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
    for field in _fields(cls):
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


def _join(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix + path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def _problem(error: msgspec.ValidationError, prefix: str, root: str) -> ValidationProblem:
    """msgspec's message -> a problem at a wire path (``testStatus.result.totalMarks``).

    ``prefix`` is where the checked value sits (``""`` for a whole record);
    ``root`` names the value itself when the problem is with all of it.
    """
    text = str(error)
    missing = _MSGSPEC_MISSING.match(text)
    if missing is not None:
        at = _join(prefix, (missing["at"] or "").lstrip("."))
        return ValidationProblem(_join(at, missing["field"]), "missing; Mettl always sends it")
    located = _MSGSPEC_AT.match(text)
    what, at = (located["what"], located["at"].lstrip(".")) if located else (text, "")
    what = what.replace("`", "")
    return ValidationProblem(_join(prefix, at) or root, what[:1].lower() + what[1:])


def _check(cls: type, data: Any) -> None:
    """Raise :class:`ValidationError` if ``data`` lacks what Mettl always sends."""
    try:
        msgspec.convert(data, _validator(cls))
    except msgspec.ValidationError as exc:
        problem = _problem(exc, "", cls.__name__)
        raise ValidationError([problem], subject=f"{cls.__name__} data") from None


def _lazy_error(field: _Field, error: Exception) -> ValidationError:
    """A lazy part that cannot be decoded: the problem at ``Owner.wireName[...]``."""
    if isinstance(error, msgspec.ValidationError):
        problem = _problem(error, field.where, field.where)
    else:
        problem = ValidationProblem(field.where, f"cannot be decoded: {error}")
    return ValidationError([problem], subject=f"{field.owner.__name__} data")


# --------------------------------------------------------------------------
# Builders: mapping -> instance (the dict path), mirror -> instance (typed pages)
# --------------------------------------------------------------------------


class _Unstructured:
    """The value of a lazy slot that has not been read yet (only builders create it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not yet structured>"


_UNSTRUCTURED: Final = _Unstructured()


class _Fallback(Exception):  # control flow, never seen outside this module
    """A mirror the fast path cannot build from: the record goes through the dict path."""


# Where the ``raw`` of an instance built from a mirror comes from: the slot holds
# the record's WireRecord (top level), or a source tuple for a nested part:
# ``(mirror, parent's source, wire name, index or None)``. Reading ``raw``
# resolves it from the record's JSON text; the mirror stays for the lazy parts.
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


def _element_builder(cls: type) -> Callable[[Any], Any]:
    """How to build one ``cls`` from its mapping: a generated builder or the converter's hook."""
    if cls in _HOT:
        return _builder(cls)
    hook = converter.get_structure_hook(cls)
    return lambda data: hook(data, cls)


def _dict_converter(field: _Field) -> Callable[[Any], Any] | None:
    """How the dict path structures a field's value (``None`` for a plain copy).

    ``model``/``models`` converters are only called on a value that is not ``None``.
    """
    if field.kind == "call":
        return field.call
    if field.kind == "hooked":
        return field.hook
    if field.model is None:
        return None
    build = _element_builder(field.model)
    if field.kind == "model":
        return build
    return lambda items: [build(item) for item in items]


def _builder(cls: type) -> Callable[[Any], Any]:
    """The dict path's builder of a hot class: mapping -> instance, lazy parts unset.

    Straight-line code from the rename table: ``dict.get`` per attribute, the
    instance created without ``__init__``; ``raw`` is the mapping itself.
    """
    existing = _DICT_BUILDERS.get(cls)
    if existing is not None:
        return existing
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_U": _UNSTRUCTURED}
    lines = [f"def build_{cls.__name__}(o):", "    g = o.get", "    r = _new(_cls)"]
    for field in _fields(cls):
        attr, wire = field.attr, field.wire
        convert = _dict_converter(field)
        if field.lazy:
            # nothing to structure later when there is nothing (most lazy parts are null)
            lines.append(f"    r.{_slot_alias(attr)} = None if g({wire!r}) is None else _U")
        elif convert is None:
            lines.append(f"    r.{attr} = g({wire!r})")
        elif field.kind == "call":
            namespace[f"_c_{attr}"] = convert
            lines.append(f"    r.{attr} = _c_{attr}(g({wire!r}))")
        else:
            namespace[f"_c_{attr}"] = convert
            lines.append(f"    v = g({wire!r})")
            lines.append(f"    r.{attr} = None if v is None else _c_{attr}(v)")
    lines += [f"    r.{_slot_alias('raw')} = o", "    return r"]
    build = _compile(f"build_{cls.__name__}", lines, namespace)
    _DICT_BUILDERS[cls] = build
    return build


# Enough spellings for any real data, few enough for untrusted input (see _enums).
_SPELLINGS_LIMIT: Final = 256


def _exact_members(field: _Field) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
    """The enum decoder's common case inlined: text -> member, learning spellings.

    The mapping starts with each wire value (and ``None``); the function decodes
    anything else (case-insensitively, warning once about unknown values) and
    remembers each new spelling of a member (``"EASY"`` for ``easy``).
    """
    assert field.enum is not None
    assert field.call is not None
    decode = field.call
    known: dict[Any, Any] = {None: None, **{member.value: member for member in field.enum}}
    enum = field.enum

    def learn(value: Any) -> Any:
        member = decode(value)
        if isinstance(member, enum) and len(known) < _SPELLINGS_LIMIT:
            known[value] = member
        return member

    return known, learn


def _mirror_builder(cls: type) -> Callable[[Any, Any], Any]:
    """The typed page's builder of a mirrored class: ``(mirror, source) -> instance``.

    ``source`` is what ``raw`` resolves from (see ``_resolve``); scalars are
    copied, enums decoded, nested parts built, lazy parts left as JSON text.
    """
    existing = _MIRROR_BUILDERS.get(cls)
    if existing is not None:
        return existing
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_cls": cls,
        "_U": _UNSTRUCTURED,
        "_NULL": _NULL,
        "_Fallback": _Fallback,
    }
    lines = [f"def mirror_{cls.__name__}(m, s):", "    r = _new(_cls)"]
    # attrs.frozen refuses stores with its own __setattr__
    frozen = any("__setattr__" in vars(k) for k in cls.__mro__[:-1])

    def store(attr: str, value: str) -> str:
        """The line storing ``value`` in ``r.attr`` (a frozen class: through its slot)."""
        if not frozen:
            return f"r.{attr} = {value}"
        namespace[f"_s_{attr}"] = _slot_member(cls, attr).__set__
        return f"_s_{attr}(r, {value})"

    for field in _fields(cls):
        attr, wire = field.attr, field.wire
        # lazy attributes and raw are properties: their slots are written by their alias
        slot = _slot_alias(attr) if field.lazy else attr
        if field.lazy and field.model is not None:
            if field.required:  # null: the dict path says what is wrong, in its words
                lines += [f"    if m.{attr} == _NULL:", "        raise _Fallback"]
                lines.append("    " + store(slot, "_U"))
            else:
                lines.append("    " + store(slot, f"None if m.{attr} == _NULL else _U"))
        elif field.lazy:
            lines.append("    " + store(slot, f"None if m.{attr} is None else _U"))
        elif field.kind == "plain":
            lines.append("    " + store(attr, f"m.{attr}"))
        elif field.kind == "hooked":
            namespace[f"_h_{attr}"] = field.hook
            lines.append(f"    v = m.{attr}")
            lines.append("    " + store(attr, f"None if v is None else _h_{attr}(v)"))
        elif field.enum is not None:
            namespace[f"_x_{attr}"], namespace[f"_c_{attr}"] = _exact_members(field)
            lines.append(f"    v = m.{attr}")
            lines.append("    " + store(attr, f"_x_{attr}[v] if v in _x_{attr} else _c_{attr}(v)"))
        elif field.kind == "call":
            namespace[f"_c_{attr}"] = field.call
            lines.append("    " + store(attr, f"_c_{attr}(m.{attr})"))
        else:
            model = cast("type", field.model)
            namespace[f"_b_{attr}"] = _mirror_builder(model)
            lines.append(f"    v = m.{attr}")
            # nested parts with a raw of their own learn where it is (see _resolve)
            here = f"(v, s, {wire!r}, None)" if _has_raw(model) else "None"
            if field.kind == "model":
                lines.append("    " + store(attr, f"None if v is None else _b_{attr}(v, {here})"))
            else:
                here = f"(x, s, {wire!r}, i)" if _has_raw(model) else "None"
                lines += [
                    "    if v is None:",
                    "        " + store(attr, "None"),
                    "    else:",
                    "        out = []",
                    "        i = 0",
                    "        for x in v:",  # a loop: cheaper than a comprehension's call
                    f"            out.append(_b_{attr}(x, {here}))",
                    "            i += 1",
                    "        " + store(attr, "out"),
                ]
    if _has_raw(cls):
        lines.append("    " + store(_slot_alias("raw"), "s"))
    lines.append("    return r")
    build = _compile(f"mirror_{cls.__name__}", lines, namespace)
    _MIRROR_BUILDERS[cls] = build
    return build


# --------------------------------------------------------------------------
# Lazy attributes and ``raw``: properties over the attrs slots
# --------------------------------------------------------------------------


def _slot_alias(attr: str) -> str:
    """The name under which a property's attrs slot stays reachable (``_slot_raw``).

    The member descriptor of the slot, set on the class under this second name:
    reads and writes through it are plain slot accesses, which the interpreter
    specializes (a property call costs about twenty times more).
    """
    return f"_slot_{attr}"


def _slot_member(cls: type, attr: str) -> Any:
    """The attrs slot (member descriptor) of ``attr``, from the class that declares it."""
    return next(k.__dict__[attr] for k in cls.__mro__ if attr in k.__dict__)


def _alias_slot(cls: type, attr: str) -> Any:
    """Keep the attrs slot ``cls.attr`` reachable under its alias; return its descriptor."""
    alias = _slot_alias(attr)
    member = _slot_member(cls, attr)
    if alias not in cls.__dict__ and not any(alias in k.__dict__ for k in cls.__mro__[1:]):
        setattr(cls, alias, member)
    return member


def _from_dict(field: _Field) -> Callable[[Any], Any]:
    """A lazy attribute's value from the owner's mapping (checked first, as a typed page is)."""
    convert = _dict_converter(field)
    assert convert is not None, f"{field.where} is lazy but needs no structuring"
    if field.model is None:
        return convert
    lazy_type = _lazy_type(field)

    def checked(value: Any) -> Any:
        msgspec.convert(value, lazy_type)
        return None if value is None else convert(value)

    return checked


def _lazy_attribute(field: _Field) -> None:
    """Replace the attrs slot ``owner.attr`` by a property that fills it on first read.

    The value comes from the mirror when the instance was built from a typed
    page, else from ``raw``. Writes and deletes go straight to the slot (the
    C-level ``member.__set__`` is the property's setter), so ``__init__``,
    ``evolve`` and unpickling work as on any attrs class. A builder stores
    ``_UNSTRUCTURED`` in the slot (a sentinel test is cheaper than catching
    the AttributeError of an empty slot).
    """
    cls, attr, wire = field.owner, field.attr, field.wire
    member = _alias_slot(cls, attr)
    write_slot: Callable[[Any, Any], None] = member.__set__
    from_dict = _from_dict(field)
    read: Callable[[Any], Any]

    slot = _slot_alias(attr)
    if field.model is None:
        # A leaf (a timestamp): its decoder never fails. The whole read is generated:
        # slot reads and stores through the alias are what the interpreter does fastest.
        read = _compile(
            f"read_{attr}",
            [
                f"def read_{attr}(obj):",
                f"    value = obj.{slot}",
                "    if value is not _U:",
                "        return value",
                "    source = obj._slot_raw",
                "    if type(source) is tuple:",
                f"        text = source[0].{attr}",
                "    elif isinstance(source, _WireRecord):",
                f"        text = source.{attr}",
                "    else:",
                f"        text = source.get({wire!r})",
                *(
                    inline_timestamp_source("value", "text", "_call")
                    if field.call is parse_timestamp
                    else ["    value = _call(text)"]
                ),
                f"    obj.{slot} = value",
                "    return value",
            ],
            {
                "_U": _UNSTRUCTURED,
                "_call": field.call,
                "_WireRecord": WireRecord,
                **INLINE_TIMESTAMP_NAMES,
            },
        )
    else:
        # A nested part: its JSON text decoded into mirrors, each built with the place of
        # its own raw (see _resolve); from the owner's mapping on the dict path. The whole
        # read is generated: reading a result's marks is one call. An AttributeError must
        # not escape a property (it would read as "no attribute"): it becomes the error.
        build = (
            [f"            value = _build(x, (x, source, {wire!r}, None))"]
            if field.kind == "model"
            else [
                "            value = []",
                "            i = 0",
                "            for y in x:",  # a loop: cheaper than a comprehension's call
                f"                value.append(_build(y, (y, source, {wire!r}, i)))",
                "                i += 1",
            ]
        )
        read = _compile(
            f"read_{attr}",
            [
                f"def read_{attr}(obj):",
                f"    value = obj.{slot}",
                "    if value is not _U:",
                "        return value",  # once filled, a read is a slot read and a test
                "    source = obj._slot_raw",
                "    try:",
                "        if type(source) is tuple:",
                f"            x = _decode(source[0].{attr})",
                "        elif isinstance(source, _WireRecord):",
                f"            x = _decode(source.{attr})",
                "        else:",
                f"            value = _from_dict(source.get({wire!r}))",
                f"            obj.{slot} = value",
                "            return value",
                "        if x is None:",
                "            value = None",
                "        else:",
                *build,
                "    except _Refused as exc:",
                "        raise _lazy_error(_field, exc) from exc",
                f"    obj.{slot} = value",
                "    return value",
            ],
            {
                "_U": _UNSTRUCTURED,
                "_WireRecord": WireRecord,
                "_decode": _lazy_decoder(field).decode,
                "_build": _mirror_builder(field.model),
                "_from_dict": from_dict,
                "_Refused": (msgspec.ValidationError, TypeError, AttributeError, ValueError),
                "_lazy_error": _lazy_error,
                "_field": field,
            },
        )
    setattr(cls, attr, property(read, write_slot, member.__delete__, f"``{wire}`` (lazy)"))


def _raw_attribute(cls: type) -> None:
    """``raw`` as a property: the mapping, resolved from the JSON text if built from a page."""
    member = _alias_slot(cls, "raw")

    def read(obj: Any) -> Any:
        source = obj._slot_raw
        if type(source) is tuple or isinstance(source, WireRecord):
            return _resolve(source)
        return source

    doc = "The mapping this was decoded from, exactly as Mettl sent it (parsed on first read)."
    setattr(cls, "raw", property(read, member.__set__, member.__delete__, doc))  # noqa: B010


# Models a typed page holds at its top level: their raw is read from the page's text.
_RECORDS: Final = (*_HOT, Schedule)


def _install_properties() -> None:
    for cls in _RECORDS:
        # a subclass (TestInstance) inherits its base's slot, its alias and its property
        _alias_slot(cls, "raw")
    for cls in _RECORDS:
        if "raw" in cls.__dict__:
            _raw_attribute(cls)
        for field in _fields(cls) if cls in _LAZY else ():
            if field.lazy:
                _lazy_attribute(field)


converter.register_structure_hook_factory(_is_model, _structure_model)
converter.register_unstructure_hook_factory(_is_model, _unstructure_model)
# Before any instance exists: the lazy properties and raw, then the builders.
_install_properties()
_build_candidate_result: Final = _builder(CandidateResult)
_build_test_instance: Final = _builder(TestInstance)
_mirror_candidate_result: Final = _mirror_builder(CandidateResult)
_mirror_test_instance: Final = _mirror_builder(TestInstance)
_structure_schedule: Final = converter.get_structure_hook(Schedule)
_mirror_schedule: Final = _mirror_builder(Schedule)
for _root in (CandidateResult, TestInstance, Schedule):
    _mirror(_root)
_CANDIDATE_RESULT_WIRE: Final = _RECORD_MIRRORS[CandidateResult]
_TEST_INSTANCE_WIRE: Final = _RECORD_MIRRORS[TestInstance]
_SCHEDULE_WIRE: Final = _RECORD_MIRRORS[Schedule]


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


# A mirror a builder cannot take (a required lazy part sent as null, a value a
# converter hook refuses) goes through the dict path, so a record fails, if it
# fails, with the same error whichever way its page was read.
_REFUSED: Final = (_Fallback, TypeError, ValueError, AttributeError, KeyError)


def _record_reader(
    mirror: type[WireRecord], build: Callable[[Any, Any], Any], from_wire: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """How a record of a typed page becomes its model (one function per listing: it runs
    once per record of a walk, so it is the function itself, not a wrapper calling one).

    A record the page decoded into its mirror is built from it (no parsing); any
    other (a :class:`~mettl_async.RawRecord` of a page that had to be read record
    by record, or a mapping) goes through ``from_wire``.
    """

    def read(record: Any) -> Any:
        if type(record) is mirror:
            try:
                return build(record, record)
            except _REFUSED:
                return from_wire(record.data())
        return from_wire(record.to_dict() if isinstance(record, RawRecord) else record)

    return read


#: Page decoders of typed listings (``_paging.decode_typed_listing`` with its mirror),
#: for a ``Listing`` converting with the matching ``*_from_record``.
decode_result_page: Final = functools.partial(
    decode_typed_listing, record_type=_CANDIDATE_RESULT_WIRE
)
decode_instance_page: Final = functools.partial(
    decode_typed_listing, record_type=_TEST_INSTANCE_WIRE
)
decode_schedule_page: Final = functools.partial(decode_typed_listing, record_type=_SCHEDULE_WIRE)


def schedule_from_wire(raw: dict[str, Any]) -> Schedule:
    """One element of article 11's ``schedules`` -> :class:`Schedule`."""
    try:
        return cast("Schedule", _structure_schedule(raw, Schedule))
    except ValidationError:
        raise
    except Exception as exc:
        raise _decode_error(Schedule, exc) from exc


#: A record of a typed results page -> :class:`CandidateResult`.
result_from_record: Final[Callable[[Any], CandidateResult]] = _record_reader(
    _CANDIDATE_RESULT_WIRE, _mirror_candidate_result, candidate_result_from_wire
)
#: A record of a typed ``testInstances`` page -> :class:`TestInstance`.
instance_from_record: Final[Callable[[Any], TestInstance]] = _record_reader(
    _TEST_INSTANCE_WIRE, _mirror_test_instance, instance_from_wire
)
#: A record of a typed ``schedules`` page -> :class:`Schedule`.
schedule_from_record: Final[Callable[[Any], Schedule]] = _record_reader(
    _SCHEDULE_WIRE, _mirror_schedule, schedule_from_wire
)
