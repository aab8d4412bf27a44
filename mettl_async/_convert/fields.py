"""What the fast path knows of a class: its hot classes, lazy attributes and fields.

Candidate results and schedules have a fast path besides the converter (the
mirrors of ``mirrors``, the builders of ``builders``). Both are generated from
one classification of each class's attributes, made here once from the
rename table (:func:`mettl_async._models.wire_names`) and the type hints.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any, Final

import attrs

from mettl_async._enums import MettlEnum, enum_decoder
from mettl_async._models import (
    Analysis,
    Candidate,
    CandidateResult,
    DifficultyMarks,
    QuestionResponse,
    SectionMarks,
    SkillMarks,
    TestInstance,
    TestResult,
    TestStatus,
    wire_names,
)

from .converter import NONE_TYPE, converter, enum_of, is_model, optional_parser, union_args

__all__ = ["HOT", "LAZY", "Field", "fields_of", "mirrorable", "strict_scalar"]

#: Built by the generated builders, never by cattrs' generated code.
HOT: Final[tuple[type, ...]] = (
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


def mirrorable(t: Any) -> bool:
    """Whether a typed page decodes ``t`` into a mirror (any model, but one).

    A :class:`Candidate` keeps every registration field it does not name
    (``extra_fields``): a mirror would drop them, so candidates inside a typed
    page are decoded as JSON and structured by the converter.
    """
    return is_model(t) and t is not Candidate


#: Attributes structured on first read rather than at build time: the bulk of a
#: result (its marks trees and analysis) and the timestamps (a parse each). A
#: typed page does not even decode the lazy parts: they stay JSON text until read.
LAZY: Final[dict[type, frozenset[str]]] = {
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
class Field:
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
def fields_of(cls: type) -> tuple[Field, ...]:
    """Every attribute of ``cls`` with a wire name, classified, in the rename table's order."""
    hints = typing.get_type_hints(cls)
    required = {f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING}
    lazy = LAZY.get(cls, frozenset())
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
        enum = enum_of(hint)
        parse = optional_parser(hint)
        args = [a for a in union_args(hint) if a is not NONE_TYPE] or [hint]
        inner = args[0] if len(args) == 1 else None
        if enum is not None:
            fields.append(Field(kind="call", call=enum_decoder(enum), enum=enum, **common))
        elif parse is not None:
            fields.append(Field(kind="call", call=parse, **common))
        elif typing.get_origin(inner) is list and mirrorable(typing.get_args(inner)[0]):
            fields.append(Field(kind="models", model=typing.get_args(inner)[0], **common))
        elif mirrorable(inner):
            fields.append(Field(kind="model", model=inner, **common))
        elif is_model(inner) or (
            typing.get_origin(inner) is list and is_model(typing.get_args(inner)[0])
        ):
            hook = converter.get_structure_hook(inner)
            fields.append(
                Field(kind="hooked", hook=functools.partial(_hooked, hook, inner), **common)
            )
        else:
            fields.append(Field(kind="plain", **common))
    return tuple(fields)


def strict_scalar(hint: Any) -> Any:
    """The mirror type of a required scalar: what Mettl always sends, ``null`` refused."""
    if enum_of(hint) is not None:
        return str
    bare = [a for a in union_args(hint) if a is not NONE_TYPE] or [hint]
    base = typing.get_origin(bare[0]) or bare[0]
    return {float: int | float, dict: dict[str, Any]}.get(base, base)
