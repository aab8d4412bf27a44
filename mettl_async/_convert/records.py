"""Record readers and page decoders: how one record of Mettl's becomes its model.

Two routes lead to the same models, generated from the same rename table:

- Typed pages (listings). msgspec decodes the whole page in one pass into
  mirrors (``mirrors``), and a listing builds each model from its mirror as
  it yields it (``*_from_record``); the lazy parts of a result (its marks
  trees and analysis) stay JSON text until read, and ``raw`` is resolved from
  the page's text on first read. A page the mirrors refuse (anything missing
  or of another JSON type, anywhere) is read record by record through the
  dict path instead: a typed page is never stricter or more lenient than its
  records, and fails the same way.
- The dict path (a single record, webhooks, refused pages: ``*_from_wire``):
  the builders copy with ``dict.get`` after one msgspec check of the fields
  Mettl always sends; ``raw`` is the mapping itself.

Decoding policy for responses: unknown keys are ignored (they stay in ``raw``);
scalars are taken as JSON gives them, unchecked (Mettl writes ``2`` in one
place and ``2.0`` in the next), except the attributes Mettl always sends (a
result's ``email``, its ``testStatus.status``, its marks totals), which must be
there with their JSON type; enum values and timestamps never fail (see
``_enums`` and ``_timefmt``). A structural mismatch (a string where an object
belongs) or a missing required field raises :class:`~mettl_async.ValidationError`
naming the wire path (``testStatus.result.totalMarks``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from mettl_async._errors import ValidationError, ValidationProblem
from mettl_async._models import CandidateResult, Schedule, TestInstance
from mettl_async._paging import RawRecord, WireRecord, decode_typed_listing

from .builders import Fallback, dict_builder, mirror_builder
from .converter import DATA_ERRORS, converter, decode_error
from .fields import HOT
from .lazy import install_lazy_attributes
from .mirrors import RECORD_MIRRORS, check, mirror

__all__ = [
    "candidate_result_from_wire",
    "decode_instance_page",
    "decode_result_page",
    "decode_schedule_page",
    "instance_from_record",
    "instance_from_wire",
    "result_from_record",
    "schedule_from_record",
    "schedule_from_wire",
]

# The public classes get their lazy properties and raw before any instance is built.
install_lazy_attributes()


def _from_mapping(cls: type, build: Callable[[Any], Any], data: Any) -> Any:
    """The dict path: check what Mettl always sends, then build (lazy parts unset)."""
    if not isinstance(data, Mapping):
        raise ValidationError(
            [ValidationProblem(cls.__name__, f"a JSON object, not {type(data).__name__}")],
            subject=f"{cls.__name__} data",
        )
    check(cls, data if isinstance(data, dict) else dict(data))
    try:
        return build(data)
    except (TypeError, AttributeError, ValueError, KeyError) as exc:
        raise decode_error(cls, exc) from exc


def _structure_hot(cls: type) -> Callable[[Any, Any], Any]:
    """The converter's hook of a hot class: the dict path (``structure()``, nested parts)."""
    build = dict_builder(cls)

    def structure_hot(data: Any, _: Any) -> Any:
        if not isinstance(data, Mapping):  # reported as the shape of what holds it
            raise TypeError(f"{cls.__name__} is a JSON object, not {type(data).__name__}")
        return _from_mapping(cls, build, data)

    return structure_hot


# Registered after the converter's own model hooks, so it wins for the hot classes.
converter.register_structure_hook_factory(lambda t: t in HOT, _structure_hot)

_build_candidate_result: Final = dict_builder(CandidateResult)
_build_test_instance: Final = dict_builder(TestInstance)
_mirror_candidate_result: Final = mirror_builder(CandidateResult)
_mirror_test_instance: Final = mirror_builder(TestInstance)
_structure_schedule: Final = converter.get_structure_hook(Schedule)
_mirror_schedule: Final = mirror_builder(Schedule)
for _root in (CandidateResult, TestInstance, Schedule):
    mirror(_root)
_CANDIDATE_RESULT_WIRE: Final = RECORD_MIRRORS[CandidateResult]
_TEST_INSTANCE_WIRE: Final = RECORD_MIRRORS[TestInstance]
_SCHEDULE_WIRE: Final = RECORD_MIRRORS[Schedule]


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


def schedule_from_wire(raw: dict[str, Any]) -> Schedule:
    """One element of article 11's ``schedules`` -> :class:`Schedule`."""
    try:
        return cast("Schedule", _structure_schedule(raw, Schedule))
    except ValidationError:
        raise
    except DATA_ERRORS as exc:
        raise decode_error(Schedule, exc) from exc


# A mirror a builder cannot take (a required lazy part sent as null, a value a
# converter hook refuses) goes through the dict path, so a record fails, if it
# fails, with the same error whichever way its page was read.
_REFUSED: Final = (Fallback, TypeError, ValueError, AttributeError, KeyError)


def _record_reader(
    wire: type[WireRecord], build: Callable[[Any, Any], Any], from_wire: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """How a record of a typed page becomes its model (one function per listing: it runs
    once per record of a walk, so it is the function itself, not a wrapper calling one).

    A record the page decoded into its mirror is built from it (no parsing); any
    other (a :class:`~mettl_async.RawRecord` of a page that had to be read record
    by record, or a mapping) goes through ``from_wire``.
    """

    def read(record: Any) -> Any:
        if type(record) is wire:
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
