"""Typed pages: decoded in one msgspec pass, equal to cattrs field by field, as strict.

A typed listing decodes each page into wire-named mirrors and builds the public
attrs models from them (``_convert``). The reference here is independent of
those builders: a cattrs converter generated from the same rename table
(:func:`wire_names`) and the same leaf decoders (enums, timestamps), which
builds everything eagerly. Random records, every field drawn from its type
(unknown fields and values included), must come out equal through the typed
page, through the dict path (:func:`candidate_result_from_wire`) and through
the reference, field by field.
"""

from __future__ import annotations

import copy
import gc
import logging
import re
import types
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import attrs
import cattrs
import orjson
import pytest
from cattrs.gen import make_dict_structure_fn, override
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mettl_async import (
    Candidate,
    CandidateResult,
    MettlClient,
    MettlEnum,
    Schedule,
    TestInstance,
    ValidationError,
    _enums,
    _timefmt,
)
from mettl_async._convert import candidate_result_from_wire, instance_from_wire, schedule_from_wire
from mettl_async._convert.records import (
    decode_instance_page,
    decode_result_page,
    decode_schedule_page,
    instance_from_record,
    result_from_record,
    schedule_from_record,
)
from mettl_async._enums import enum_decoder
from mettl_async._models import wire_names
from mettl_async._paging import RawRecord, WireRecord, decode_listing
from mettl_async._streaming import _content_key
from mettl_async._timefmt import (
    ZONES,
    format_date,
    format_time,
    format_timestamp,
    parse_date,
    parse_time,
    parse_timestamp,
)

from .conftest import load_json

# --------------------------------------------------------------------------
# The reference: cattrs-generated structuring from the same table
# --------------------------------------------------------------------------

NONE = type(None)


def _args(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(hint) if a is not NONE]
    return [hint]


def _enum(hint: Any) -> type[MettlEnum] | None:
    found = [a for a in _args(hint) if isinstance(a, type) and issubclass(a, MettlEnum)]
    return found[0] if found else None


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and attrs.has(t) and t.__module__.startswith("mettl_async._models")


_LEAF_PARSERS: dict[Any, Callable[[object], Any]] = {
    datetime: parse_timestamp,
    date: parse_date,
    time: parse_time,
}


def _reference() -> cattrs.Converter:
    ref = cattrs.Converter()

    def is_leaf(t: Any) -> bool:
        args = _args(t)
        return _enum(t) is not None or (len(args) == 1 and args[0] in _LEAF_PARSERS)

    def leaf(t: Any) -> Callable[[Any, Any], Any]:
        enum = _enum(t)
        decode = enum_decoder(enum) if enum is not None else _LEAF_PARSERS[_args(t)[0]]
        return lambda value, _: decode(value)

    def is_plain(t: Any) -> bool:  # scalars and free-form values are taken as sent
        return all(
            a is Any or a in (str, int, float, bool) or typing.get_origin(a) is dict
            for a in _args(t)
        )

    def model(cls: type) -> Callable[[Any, Any], Any]:
        names = wire_names(cls)
        fields = {f.name for f in attrs.fields(cls)}
        overrides: dict[str, Any] = {
            name: override(rename=names[name]) if name in names else override(omit=True)
            for name in fields
        }
        generated = make_dict_structure_fn(cls, ref, **overrides)  # type: ignore[arg-type]

        def hook(data: Any, _: Any) -> Any:
            obj = generated(data, cls)
            if cls is Candidate:
                known = set(names.values())
                extra = {k: v for k, v in data.items() if k not in known}
                obj = attrs.evolve(obj, extra_fields=extra)
            if "raw" in fields:
                obj.raw = data
            return obj

        return hook

    # Optional[...] of anything: None stays None, the rest by its own hook
    def is_optional(t: Any) -> bool:
        return (
            typing.get_origin(t) in (typing.Union, types.UnionType)
            and NONE in typing.get_args(t)
            and len(_args(t)) == 1
            and not is_leaf(t)
            and not is_plain(t)
        )

    def optional(t: Any) -> Callable[[Any, Any], Any]:
        (inner,) = _args(t)
        return lambda value, _: None if value is None else ref.structure(value, inner)

    ref.register_structure_hook_func(is_plain, lambda value, _: value)
    for scalar in (str, int, float, bool):  # cattrs would coerce them (float(2) -> 2.0)
        ref.register_structure_hook(scalar, lambda value, _: value)
    ref.register_structure_hook_factory(is_leaf, leaf)
    ref.register_structure_hook_factory(is_optional, optional)
    ref.register_structure_hook_factory(_is_model, model)
    return ref


REFERENCE = _reference()


def assert_same(fast: Any, reference: Any, path: str = "") -> None:
    """Equal field by field (``raw`` aside), with the path of the first difference."""
    assert type(fast) is type(reference), f"{path}: {type(fast)} != {type(reference)}"
    if attrs.has(type(fast)):
        for field in attrs.fields(type(fast)):
            if field.name != "raw":
                name = field.name
                assert_same(getattr(fast, name), getattr(reference, name), f"{path}.{name}")
    elif isinstance(fast, list):
        assert len(fast) == len(reference), path
        for i, (a, b) in enumerate(zip(fast, reference, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(fast, datetime):
        assert fast.tzinfo is not None, f"{path}: naive"
        assert (fast, fast.tzinfo) == (reference, reference.tzinfo), path
    else:
        assert fast == reference, f"{path}: {fast!r} != {reference!r}"


# --------------------------------------------------------------------------
# Random wire records, drawn from the models' types
# --------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=10)
NUMBER = st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False)
JSON_LEAF = st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(TEXT, inner, max_size=2),
    max_leaves=4,
)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
STAMPS = st.builds(
    lambda moment, zone: format_timestamp(moment.astimezone(ZONES[zone])),
    MOMENTS,
    st.sampled_from(["GMT", "UTC", "IST", "EST"]),
) | st.sampled_from(["", "soon", "Fri, 18 Feb 2022 06:39:52 XYZT"])


def _value(hint: Any) -> st.SearchStrategy[Any]:
    """A wire value for a (non-None) type."""
    enum = _enum(hint)
    if enum is not None:
        spellings = [m.value for m in enum] + [m.value.upper() for m in enum]
        return st.sampled_from(spellings) | st.sampled_from(["Brand New Value", ""])
    (inner,) = _args(hint) if len(_args(hint)) == 1 else (Any,)
    origin = typing.get_origin(inner)
    if inner is datetime:
        return STAMPS
    if inner is date:
        return st.dates().map(format_date) | st.just("someday")
    if inner is time:
        return st.times().map(lambda t: format_time(t.replace(microsecond=0))) | st.just("noon")
    if inner is str:
        return TEXT
    if inner is float:
        return NUMBER
    if inner is int:
        return st.integers(-(10**6), 10**6)
    if inner is bool:
        return st.booleans()
    if origin is dict:
        return st.dictionaries(TEXT, TEXT, max_size=3)
    if origin is list:
        (element,) = typing.get_args(inner)
        return st.lists(_value(element), max_size=2)
    if _is_model(inner):
        return record(inner)
    return JSON


def _optional(hint: Any) -> st.SearchStrategy[Any]:
    return st.none() | _value(hint)


_STRATEGIES: dict[type, st.SearchStrategy[dict[str, Any]]] = {}


def record(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """A wire mapping for ``cls``: required fields always, others maybe, unknown ones too."""
    if cls not in _STRATEGIES:
        hints = typing.get_type_hints(cls)
        required = {f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING}
        names = wire_names(cls)
        must = {names[a]: _value(hints[a]) for a in names if a in required}
        may = {names[a]: st.deferred(lambda a=a: _optional(hints[a])) for a in names}
        for wire in must:
            del may[wire]
        unknown = st.dictionaries(
            st.sampled_from(["proctorScore", "newTopLevel", "x-extra"]), JSON, max_size=2
        )
        _STRATEGIES[cls] = st.builds(
            lambda known, extra: {**extra, **known},
            st.fixed_dictionaries(must, optional=may),
            unknown,
        )
    return _STRATEGIES[cls]


def page(items_key: str, records: list[dict[str, Any]]) -> bytes:
    envelope = {"status": "SUCCESS", items_key: records, "paging": {"totalRecords": len(records)}}
    return orjson.dumps(envelope)


def decode(decoder: Callable[..., dict[str, Any]], items_key: str, body: bytes) -> list[Any]:
    envelope = decoder(200, body, items_key=items_key, key_field=None, method="GET", url="u")
    items = envelope[items_key]
    assert isinstance(items, list)
    return items


@pytest.fixture(autouse=True)
def _quiet_unknown_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown values are reported once per value; random ones would flood the log."""
    monkeypatch.setattr(_enums._warn_once, "seen", set())
    monkeypatch.setattr(_timefmt._warn_once, "seen", set())


CASES = [
    (CandidateResult, "candidates", decode_result_page, result_from_record),
    (TestInstance, "testInstances", decode_instance_page, instance_from_record),
    (Schedule, "schedules", decode_schedule_page, schedule_from_record),
]
DICT_PATH: dict[type, Callable[[Any], Any]] = {
    CandidateResult: candidate_result_from_wire,
    TestInstance: instance_from_wire,
    Schedule: schedule_from_wire,
}


@pytest.mark.parametrize(
    ("cls", "items_key", "decoder", "convert"), CASES, ids=[c[0].__name__ for c in CASES]
)
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_typed_pages_equal_the_cattrs_reference_field_by_field(
    cls: type, items_key: str, decoder: Any, convert: Any, data: st.DataObject
) -> None:
    records = data.draw(st.lists(record(cls), min_size=1, max_size=3), label="records")
    items = decode(decoder, items_key, page(items_key, records))
    # these records are what the mirrors take: the page must not have gone the slow way
    assert all(isinstance(item, WireRecord) for item in items)
    assert not any(gc.is_tracked(item) for item in items)
    for item, sent in zip(items, records, strict=True):
        expected = REFERENCE.structure(copy.deepcopy(sent), cls)
        fast = convert(item)
        assert isinstance(fast._slot_raw, WireRecord)  # built from the mirror, not the fallback
        assert_same(fast, expected, cls.__name__)
        assert_same(DICT_PATH[cls](copy.deepcopy(sent)), expected, cls.__name__)
        assert fast.raw == sent
        assert fast == expected


@settings(max_examples=60, deadline=None)
@given(records=st.lists(record(CandidateResult), min_size=2, max_size=3), bad=st.integers(0, 2))
def test_a_page_the_mirrors_refuse_is_read_record_by_record_with_the_same_results(
    records: list[dict[str, Any]], bad: int
) -> None:
    """One record the mirrors refuse (an enum sent as a number) sends its page the slow way."""
    bad %= len(records)
    records[bad].setdefault("testStatus", {})["completionMode"] = 7
    items = decode(decode_result_page, "candidates", page("candidates", records))
    assert all(isinstance(item, RawRecord) for item in items)
    for item, sent in zip(items, records, strict=True):
        assert_same(result_from_record(item), REFERENCE.structure(sent, CandidateResult))


# --------------------------------------------------------------------------
# As strict as the dict path: what fails, fails the same way
# --------------------------------------------------------------------------


def completed() -> dict[str, Any]:
    record = load_json("samples/article16_candidate_completed_full.json")["candidates"][0]
    assert isinstance(record, dict)
    return record


def both_ways(records: list[dict[str, Any]]) -> list[list[Callable[[], CandidateResult]]]:
    """For each record: building it from its typed page, and from its mapping."""
    items = decode(decode_result_page, "candidates", page("candidates", records))
    return [
        [
            lambda item=item: result_from_record(item),
            lambda sent=sent: candidate_result_from_wire(sent),
        ]
        for item, sent in zip(items, copy.deepcopy(records), strict=True)
    ]


def result_of(record: dict[str, Any]) -> dict[str, Any]:
    value = record["testStatus"]["result"]
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda r: r.pop("email"), "email"),
        (lambda r: r.update(email=None), "email"),
        (lambda r: r.pop("registration"), "registration"),
        (lambda r: r.pop("testStatus"), "testStatus"),
        (lambda r: r["testStatus"].pop("status"), "testStatus.status"),
        (lambda r: result_of(r).pop("maxMarks"), "testStatus.result.maxMarks"),
        (lambda r: result_of(r).update(percentile="high"), "testStatus.result.percentile"),
        (lambda r: result_of(r).update(sectionMarks=None), "testStatus.result.sectionMarks"),
    ],
    ids=[
        "no-email",
        "null-email",
        "no-registration",
        "no-status",
        "no-state",
        "no-max",
        "text-percentile",
        "null-sections",
    ],
)
def test_a_record_missing_what_mettl_always_sends_fails_naming_its_wire_path(
    change: Callable[[dict[str, Any]], Any], path: str
) -> None:
    """Records before it are built; it raises ValidationError at its wire path, both ways."""
    broken = completed()
    change(broken)
    good, bad = both_ways([completed(), broken])
    for build in good:
        assert build().email == "name@email.com"
    for build in bad:
        with pytest.raises(ValidationError) as raised:
            build()
        assert raised.value.paths == [path]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            lambda r: r["testStatus"]["result"].update(sectionMarks="oops"),
            "TestResult.sectionMarks",
            "expected array, got str",
        ),
        (
            lambda r: r["testStatus"]["result"]["sectionMarks"][0].pop("sectionName"),
            "TestResult.sectionMarks[0].sectionName",
            "missing; Mettl always sends it",
        ),
        (
            lambda r: r["testStatus"]["result"]["sectionMarks"][0]["skillMarks"][0][
                "difficultyMarks"
            ][0].update(totalMarks=None),
            "TestResult.sectionMarks[0].skillMarks[0].difficultyMarks[0].totalMarks",
            "expected int | float, got null",
        ),
    ],
    ids=["marks-not-a-list", "section-without-name", "null-marks-deep-down"],
)
def test_a_lazy_part_fails_when_read_naming_its_wire_path(
    change: Callable[[dict[str, Any]], Any], path: str, message: str
) -> None:
    """The record builds and reads its totals; its marks fail on first read, both ways."""
    broken = completed()
    change(broken)
    for build in both_ways([broken])[0]:
        result = build()
        assert result.test_status.result is not None
        assert result.test_status.result.total_marks == 1.0
        with pytest.raises(ValidationError) as raised:
            _ = result.test_status.result.section_marks
        assert raised.value.paths == [path]
        assert message in str(raised.value)


# --------------------------------------------------------------------------
# Nothing lost: raw, unknown fields and values, timestamps
# --------------------------------------------------------------------------


def test_raw_is_what_mettl_sent_at_every_level_of_a_typed_record() -> None:
    """Unknown fields at any depth stay in raw; nested raws are the parent's own mappings."""
    sent = completed()
    sent["newTopLevel"] = {"anything": [1, 2]}
    sent["testStatus"]["proctorScore"] = 0.93
    sent["testStatus"]["result"]["sectionMarks"][0]["skillMarks"][0]["weight"] = 3
    (item,) = decode(decode_result_page, "candidates", page("candidates", [sent]))
    result = result_from_record(item)
    assert result.raw == sent
    assert result.raw is result.raw  # parsed once
    status = result.test_status
    assert status.raw is result.raw["testStatus"]
    assert status.raw["proctorScore"] == 0.93
    assert status.result is not None
    assert status.result.section_marks is not None
    skill = status.result.section_marks[0].skill_marks
    assert skill is not None
    assert skill[0].raw["weight"] == 3
    assert skill[0].raw is result.raw["testStatus"]["result"]["sectionMarks"][0]["skillMarks"][0]


def test_unknown_values_decode_with_one_warning_each_through_a_typed_page(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A new status and an unknown zone decode (text, None) and are reported once."""
    sent = completed()
    sent["testStatus"]["status"] = "Rescored"
    sent["testStatus"]["startTime"] = "Fri, 18 Feb 2022 01:09:52 XYZT"
    body = page("candidates", [sent, {**sent, "email": "other@email.com"}])
    with caplog.at_level(logging.WARNING, logger="mettl_async"):
        for _ in range(2):
            for item in decode(decode_result_page, "candidates", body):
                status = result_from_record(item).test_status
                assert status.status == "Rescored"
                assert type(status.status) is str
                assert status.start_time is None
                assert status.end_time == datetime(2022, 2, 18, 1, 10, 37, tzinfo=UTC)
                assert status.end_time.utcoffset() == timedelta(0)
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "'Rescored'" in m]) == 1
    assert len([m for m in messages if "'XYZT'" in m]) == 1


def test_a_typed_record_pickles_and_evolves_with_its_raw() -> None:
    (item,) = decode(decode_result_page, "candidates", page("candidates", [completed()]))
    result = result_from_record(item)
    clone = pickle_round_trip(result)
    assert clone == result
    assert clone.raw == completed()
    moved = attrs.evolve(result, email="other@email.com")
    assert moved.email == "other@email.com"
    assert moved.raw == result.raw


def pickle_round_trip(value: Any) -> Any:
    import pickle

    return pickle.loads(pickle.dumps(value))


async def test_a_typed_walk_yields_what_the_raw_walk_decodes(client: Any, fake: Any) -> None:
    """Through the fake Mettl: every typed result equals its raw record through the reference."""
    schedule = fake.account.schedules[0]
    typed = [r async for r in client.iter_candidate_results(schedule.access_key, page_size=7)]
    raw = [r async for r in client.iter_candidate_results(schedule.access_key, page_size=7).raw()]
    assert len(typed) == len(raw) > 7
    for result, record in zip(typed, raw, strict=True):
        assert_same(result, REFERENCE.structure(record.to_dict(), CandidateResult))
        assert result.raw == record.to_dict()
    schedules = [s async for s in client.iter_schedules(page_size=3)]
    listed = [s async for s in client.iter_schedules(page_size=3).raw()]
    for got, sent in zip(schedules, listed, strict=True):
        assert_same(got, REFERENCE.structure(sent.to_dict(), Schedule))


def test_a_typed_record_without_its_key_is_known_by_its_bytes_as_a_raw_one_is() -> None:
    """A schedule without ``accessKey`` on a typed page: identified by a digest of its JSON,
    the same digest as the scan of the same page gives (it used to raise AttributeError)."""
    body = orjson.dumps(
        {"status": "SUCCESS", "schedules": [{"name": "no key", "assessmentId": 1}], "paging": {}}
    )
    options: dict[str, Any] = {
        "items_key": "schedules", "key_field": "accessKey", "method": "GET", "url": "u",
    }  # fmt: skip
    typed = decode_schedule_page(200, body, **options)["schedules"][0]
    scanned = decode_listing(200, body, **options)["schedules"][0]
    assert isinstance(typed, WireRecord)
    assert typed.key is None
    assert scanned.key is None
    assert typed.json == scanned.json == orjson.dumps({"name": "no key", "assessmentId": 1})
    assert _content_key(typed) == _content_key(scanned)


async def test_a_typed_walk_yields_a_schedule_without_its_access_key(mocked: Any) -> None:
    """The walk identifies such a schedule by its bytes, and yields it (it used to crash)."""
    schedules = [{"name": "no key", "assessmentId": 1}, {"name": "keyed", "accessKey": "k1"}]
    mocked.get(
        re.compile(r"^https://api\.mettl\.com/v2/schedules\?.*"),
        payload={"status": "SUCCESS", "schedules": schedules, "paging": {"totalRecords": 2}},
    )
    async with MettlClient("pub", "priv") as mettl:
        got = [(s.name, s.access_key) async for s in mettl.iter_schedules()]
    assert got == [("no key", None), ("keyed", "k1")]
