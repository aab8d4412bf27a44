"""Lazy attributes and ``raw``: properties over the attrs slots of the public classes.

A lazy attribute (marks, analysis, timestamps; see ``fields.LAZY``) is a
property installed over its attrs slot, the slot kept reachable under
``_slot_<name>``: its getter (generated, ``builders.lazy_reader``) structures
the value on first read, checking its shape then (an error names
``TestResult.sectionMarks[0]...``), and stores it, so later reads cost a slot
read and a test. ``raw`` of the classes a typed page builds is a property too:
the mapping, resolved from the page's JSON text on first read. Writes and
deletes go straight to the slots (the C-level ``member.__set__`` is the
properties' setter), so ``__init__``, ``evolve`` and unpickling work as on any
attrs class. Two threads reading the same lazy attribute for the first time
may both structure it; each gets an equal value and the last one is kept.

Importing this module changes nothing: :func:`install_lazy_attributes` does,
once, and must run before any instance is built by the fast path (``records``
calls it before building any).
"""

from __future__ import annotations

from typing import Any, Final, cast

from mettl_async._models import Schedule
from mettl_async._paging import WireRecord

from .builders import lazy_reader, slot_alias, slot_member
from .fields import HOT, LAZY, Field, fields_of

__all__ = ["install_lazy_attributes", "resolve"]

# Models a typed page holds at its top level, and their parts: their raw is read
# from the page's text.
_RECORDS: Final = (*HOT, Schedule)
_installed = False


# Where the ``raw`` of an instance built from a mirror comes from: the slot holds
# the record's WireRecord (top level), or a source tuple for a nested part:
# ``(mirror, parent's source, wire name, index or None)``. Reading ``raw``
# resolves it from the record's JSON text; the mirror stays for the lazy parts.
def resolve(source: Any) -> Any:
    """The mapping a source stands for (see above)."""
    if type(source) is tuple:
        _, parent, wire, index = source
        value = resolve(parent)[wire]
        return value if index is None else value[index]
    return cast("WireRecord", source).data()


def _alias_slot(cls: type, attr: str) -> Any:
    """Keep the attrs slot ``cls.attr`` reachable under its alias; return its descriptor."""
    alias = slot_alias(attr)
    member = slot_member(cls, attr)
    if alias not in cls.__dict__ and not any(alias in k.__dict__ for k in cls.__mro__[1:]):
        setattr(cls, alias, member)
    return member


def _lazy_attribute(field: Field) -> None:
    """Replace the attrs slot ``owner.attr`` by a property that fills it on first read."""
    member = _alias_slot(field.owner, field.attr)
    doc = f"``{field.wire}`` (lazy)"
    read = lazy_reader(field)
    setattr(field.owner, field.attr, property(read, member.__set__, member.__delete__, doc))


def _raw_attribute(cls: type) -> None:
    """``raw`` as a property: the mapping, resolved from the JSON text if built from a page."""
    member = _alias_slot(cls, "raw")

    def read(obj: Any) -> Any:
        source = obj._slot_raw
        if type(source) is tuple or isinstance(source, WireRecord):
            return resolve(source)
        return source

    doc = "The mapping this was decoded from, exactly as Mettl sent it (parsed on first read)."
    setattr(cls, "raw", property(read, member.__set__, member.__delete__, doc))  # noqa: B010


def install_lazy_attributes() -> None:
    """Install the lazy properties and ``raw`` on the public classes; once (later calls
    do nothing). Before any instance is built by the fast path."""
    global _installed
    if _installed:
        return
    for cls in _RECORDS:
        # a subclass (TestInstance) inherits its base's slot, its alias and its property
        _alias_slot(cls, "raw")
    for cls in _RECORDS:
        if "raw" in cls.__dict__:
            _raw_attribute(cls)
        for field in fields_of(cls) if cls in LAZY else ():
            if field.lazy:
                _lazy_attribute(field)
    _installed = True
