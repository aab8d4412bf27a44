"""The generated code of the fast path: builders and lazy readers.

Straight-line functions written from the classification of ``fields`` and
compiled by :func:`mettl_async._codegen.compile_function` (its inputs are the
library's own attribute names, never data); the decode benchmark pays for it.

- *Dict builders* (the dict path: a single record, webhooks, refused pages):
  mapping -> instance, copying with ``dict.get``; ``raw`` is the mapping itself.
- *Mirror builders* (typed pages): mirror -> instance; scalars copied, enums
  decoded, nested parts built, lazy parts left as JSON text.
- *Lazy readers*: the getter of a lazy attribute (``lazy`` installs them as
  properties), which structures the value on first read and stores it.
  Timestamps inline :func:`mettl_async._timefmt.timestamp_fast_path`.

Both builders create instances without ``__init__`` (``object.__new__`` plus
slot stores). A lazy attribute is a property over its attrs slot; the slot
stays reachable under a second name (:func:`slot_alias`), through which the
generated code reads and writes it: plain slot accesses, which the
interpreter specializes. A builder stores :data:`UNSTRUCTURED` in a lazy slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

import msgspec

from mettl_async._codegen import compile_function
from mettl_async._enums import inline_decoder
from mettl_async._paging import WireRecord
from mettl_async._timefmt import TIMESTAMP_NAMES, parse_timestamp, timestamp_fast_path

from .converter import converter, has_raw
from .fields import HOT, Field, fields_of
from .mirrors import NULL, lazy_decoder, lazy_error, lazy_type

__all__ = [
    "UNSTRUCTURED",
    "Fallback",
    "dict_builder",
    "lazy_reader",
    "mirror_builder",
    "slot_alias",
    "slot_member",
]


class _Unstructured:
    """The value of a lazy slot that has not been read yet (only builders create it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not yet structured>"


#: A lazy slot not read yet (a sentinel test is cheaper than catching the
#: AttributeError of an empty slot).
UNSTRUCTURED: Final = _Unstructured()


class Fallback(Exception):  # control flow, never seen outside this package
    """A mirror the fast path cannot build from: the record goes through the dict path."""


def slot_alias(attr: str) -> str:
    """The name under which a property's attrs slot stays reachable (``_slot_raw``).

    The member descriptor of the slot, set on the class under this second name:
    reads and writes through it are plain slot accesses, which the interpreter
    specializes (a property call costs about twenty times more).
    """
    return f"_slot_{attr}"


def slot_member(cls: type, attr: str) -> Any:
    """The attrs slot (member descriptor) of ``attr``, from the class that declares it."""
    return next(k.__dict__[attr] for k in cls.__mro__ if attr in k.__dict__)


# --------------------------------------------------------------------------
# Builders: mapping -> instance (the dict path), mirror -> instance (typed pages)
# --------------------------------------------------------------------------

_DICT_BUILDERS: dict[type, Callable[[Any], Any]] = {}
_MIRROR_BUILDERS: dict[type, Callable[[Any, Any], Any]] = {}


def _element_builder(cls: type) -> Callable[[Any], Any]:
    """How to build one ``cls`` from its mapping: a generated builder or the converter's hook."""
    if cls in HOT:
        return dict_builder(cls)
    hook = converter.get_structure_hook(cls)
    return lambda data: hook(data, cls)


def _dict_converter(field: Field) -> Callable[[Any], Any] | None:
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


def dict_builder(cls: type) -> Callable[[Any], Any]:
    """The dict path's builder of a hot class: mapping -> instance, lazy parts unset.

    Straight-line code from the rename table: ``dict.get`` per attribute, the
    instance created without ``__init__``; ``raw`` is the mapping itself.
    """
    existing = _DICT_BUILDERS.get(cls)
    if existing is not None:
        return existing
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_U": UNSTRUCTURED}
    lines = [f"def build_{cls.__name__}(o):", "    g = o.get", "    r = _new(_cls)"]
    for field in fields_of(cls):
        attr, wire = field.attr, field.wire
        convert = _dict_converter(field)
        if field.lazy:
            # nothing to structure later when there is nothing (most lazy parts are null)
            lines.append(f"    r.{slot_alias(attr)} = None if g({wire!r}) is None else _U")
        elif convert is None:
            lines.append(f"    r.{attr} = g({wire!r})")
        elif field.kind == "call":
            namespace[f"_c_{attr}"] = convert
            lines.append(f"    r.{attr} = _c_{attr}(g({wire!r}))")
        else:
            namespace[f"_c_{attr}"] = convert
            lines.append(f"    v = g({wire!r})")
            lines.append(f"    r.{attr} = None if v is None else _c_{attr}(v)")
    lines += [f"    r.{slot_alias('raw')} = o", "    return r"]
    build = compile_function(f"build_{cls.__name__}", lines, namespace)
    _DICT_BUILDERS[cls] = build
    return build


def mirror_builder(cls: type) -> Callable[[Any, Any], Any]:
    """The typed page's builder of a mirrored class: ``(mirror, source) -> instance``.

    ``source`` is what ``raw`` resolves from (see ``lazy.resolve``); scalars are
    copied, enums decoded, nested parts built, lazy parts left as JSON text.
    """
    existing = _MIRROR_BUILDERS.get(cls)
    if existing is not None:
        return existing
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_cls": cls,
        "_U": UNSTRUCTURED,
        "_NULL": NULL,
        "_Fallback": Fallback,
    }
    lines = [f"def mirror_{cls.__name__}(m, s):", "    r = _new(_cls)"]
    # attrs.frozen refuses stores with its own __setattr__
    frozen = any("__setattr__" in vars(k) for k in cls.__mro__[:-1])

    def store(attr: str, value: str) -> str:
        """The line storing ``value`` in ``r.attr`` (a frozen class: through its slot)."""
        if not frozen:
            return f"r.{attr} = {value}"
        namespace[f"_s_{attr}"] = slot_member(cls, attr).__set__
        return f"_s_{attr}(r, {value})"

    for field in fields_of(cls):
        attr, wire = field.attr, field.wire
        # lazy attributes and raw are properties: their slots are written by their alias
        slot = slot_alias(attr) if field.lazy else attr
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
            namespace[f"_x_{attr}"], namespace[f"_c_{attr}"] = inline_decoder(field.enum)
            lines.append(f"    v = m.{attr}")
            lines.append("    " + store(attr, f"_x_{attr}[v] if v in _x_{attr} else _c_{attr}(v)"))
        elif field.kind == "call":
            namespace[f"_c_{attr}"] = field.call
            lines.append("    " + store(attr, f"_c_{attr}(m.{attr})"))
        else:
            model = cast("type", field.model)
            namespace[f"_b_{attr}"] = mirror_builder(model)
            lines.append(f"    v = m.{attr}")
            # nested parts with a raw of their own learn where it is (see lazy.resolve)
            here = f"(v, s, {wire!r}, None)" if has_raw(model) else "None"
            if field.kind == "model":
                lines.append("    " + store(attr, f"None if v is None else _b_{attr}(v, {here})"))
            else:
                here = f"(x, s, {wire!r}, i)" if has_raw(model) else "None"
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
    if has_raw(cls):
        lines.append("    " + store(slot_alias("raw"), "s"))
    lines.append("    return r")
    build = compile_function(f"mirror_{cls.__name__}", lines, namespace)
    _MIRROR_BUILDERS[cls] = build
    return build


# --------------------------------------------------------------------------
# Lazy readers: the getters of the lazy properties
# --------------------------------------------------------------------------


def _from_dict(field: Field) -> Callable[[Any], Any]:
    """A lazy attribute's value from the owner's mapping (checked first, as a typed page is)."""
    convert = _dict_converter(field)
    assert convert is not None, f"{field.where} is lazy but needs no structuring"
    if field.model is None:
        return convert
    checked_type = lazy_type(field)

    def checked(value: Any) -> Any:
        msgspec.convert(value, checked_type)
        return None if value is None else convert(value)

    return checked


def lazy_reader(field: Field) -> Callable[[Any], Any]:
    """The getter of a lazy attribute: its slot's value, structured and stored on first read.

    The value comes from the mirror when the instance was built from a typed
    page (the slot ``_slot_raw`` holds a source tuple or the record), else from
    ``raw`` (the mapping).
    """
    attr, wire = field.attr, field.wire
    slot = slot_alias(attr)
    if field.model is None:
        assert field.call is not None, f"{field.where} is lazy but needs no structuring"
        # A leaf (a timestamp): its decoder never fails. The whole read is generated:
        # slot reads and stores through the alias are what the interpreter does fastest.
        return compile_function(
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
                    timestamp_fast_path("value", "text")
                    if field.call is parse_timestamp
                    else ["    value = _call(text)"]
                ),
                f"    obj.{slot} = value",
                "    return value",
            ],
            {
                "_U": UNSTRUCTURED,
                "_call": field.call,
                "_WireRecord": WireRecord,
                **TIMESTAMP_NAMES,
            },
        )
    # A nested part: its JSON text decoded into mirrors, each built with the place of
    # its own raw (see lazy.resolve); from the owner's mapping on the dict path. The whole
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
    assert field.model is not None
    return compile_function(
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
            "_U": UNSTRUCTURED,
            "_WireRecord": WireRecord,
            "_decode": lazy_decoder(field).decode,
            "_build": mirror_builder(field.model),
            "_from_dict": _from_dict(field),
            "_Refused": (msgspec.ValidationError, TypeError, AttributeError, ValueError),
            "_lazy_error": lazy_error,
            "_field": field,
        },
    )
