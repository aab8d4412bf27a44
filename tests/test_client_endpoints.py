"""The four seed endpoints through MettlClient: typed in, typed out, checked before I/O."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mettl_async import (
    Access,
    AccessType,
    Assessment,
    CandidateResult,
    CreatedSchedule,
    MettlClient,
    NotFoundError,
    Schedule,
    ScheduleFilter,
    ScheduleSettings,
    ScheduleType,
    Section,
    Skill,
    SkillLevel,
    TestState,
    ValidationError,
)
from mettl_async._convert import to_json
from mettl_async._paging import RawRecord
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

from .conftest import load_json


@pytest.fixture
async def account() -> Any:
    async with FakeMettlServer(FakeMettl(account=FakeAccount([120, 0, 35], seed=11))) as server:
        yield server


def minimal_assessment() -> Assessment:
    return Assessment(
        name="Assessment Name",
        duration=10,
        sections=[
            Section(
                name="Section Name",
                skills=[
                    Skill(
                        name="Skill Name", level=SkillLevel.EASY, question_count=10, correct_grade=1
                    )
                ],
            )
        ],
    )


async def test_create_assessment_sends_the_articles_json_and_returns_the_id(
    client: MettlClient, fake: FakeMettl
) -> None:
    assessment_id = await client.create_assessment(minimal_assessment())
    assert isinstance(assessment_id, int)
    sent = fake.log[-1].params["assessments"]
    assert sent == load_json("vectors/signing.json")["vectors"][5]["params"]["assessments"]
    assert fake.assessments[assessment_id] == orjson.loads(sent)


async def test_an_invalid_assessment_is_refused_before_any_request(
    client: MettlClient, fake: FakeMettl
) -> None:
    with pytest.raises(ValidationError) as caught:
        await client.create_assessment(Assessment(name="", sections=[]))
    assert "assessments.name" in caught.value.paths
    assert fake.requests == 0


async def test_create_schedule_returns_the_created_schedule(account: FakeMettlServer) -> None:
    settings = ScheduleSettings(
        name="Campus drive",
        source_app="HR portal",
        access=Access(type=AccessType.OPEN_FOR_ALL),
        schedule_type=ScheduleType.ALWAYS_ON,
        test_graded_notification_url="https://hooks.example.com/graded",
    )
    assessment_id = account.fake.account.schedules[0].assessment_id
    async with account.client() as mettl:
        created = await mettl.create_schedule(assessment_id, settings)
        assert isinstance(created, CreatedSchedule)
        assert created.assessment_id == assessment_id
        assert created.name == "Campus drive"
        assert created.access_key
        fetched = await mettl.get_schedule(created.access_key)
        keys = [s.access_key async for s in mettl.iter_schedules()]
    assert isinstance(fetched, Schedule)
    assert fetched.name == "Campus drive"
    assert fetched.test_graded_notification_url == "https://hooks.example.com/graded"
    assert created.access_key in keys
    sent = account.fake.log[0]
    assert sent.params["sc"] == to_json(settings)


async def test_a_long_schedule_goes_in_the_body_and_still_verifies(
    account: FakeMettlServer,
) -> None:
    from mettl_async import Candidate

    candidates = [Candidate(name=f"Name {i}", email=f"c{i}@example.com") for i in range(200)]
    settings = ScheduleSettings(
        name="Invited",
        source_app="HR portal",
        access=Access(type=AccessType.BY_INVITATION, candidates=candidates),
        schedule_type=ScheduleType.ALWAYS_ON,
    )
    async with account.client() as mettl:
        created = await mettl.create_schedule(
            account.fake.account.schedules[0].assessment_id, settings
        )
    assert created.access_key
    assert account.fake.bad_signatures == 0


async def test_an_invalid_schedule_is_refused_with_every_problem(
    client: MettlClient, fake: FakeMettl
) -> None:
    bad = ScheduleSettings(
        name="", access=Access(type=AccessType.BY_INVITATION), schedule_type=ScheduleType.FIXED
    )
    with pytest.raises(ValidationError) as caught:
        await client.create_schedule(1, bad)
    assert {"sc.name", "sc.sourceApp", "sc.access.candidates", "sc.scheduleWindow"} <= set(
        caught.value.paths
    )
    assert fake.requests == 0


def open_settings(name: str = "x", source_app: str = "y") -> ScheduleSettings:
    """Settings of an always-on schedule open for all: what creating one needs at least."""
    return ScheduleSettings(
        name=name,
        source_app=source_app,
        access=Access(type=AccessType.OPEN_FOR_ALL),
        schedule_type=ScheduleType.ALWAYS_ON,
    )


async def test_unknown_assessment_or_schedule_is_not_found(account: FakeMettlServer) -> None:
    settings = open_settings()
    async with account.client() as mettl:
        with pytest.raises(NotFoundError):
            await mettl.create_schedule(424242, settings)
        with pytest.raises(NotFoundError):
            await mettl.get_schedule("nope")


async def test_typed_results_carry_what_the_server_sent(account: FakeMettlServer) -> None:
    schedule = account.fake.account.schedules[0]
    truth = list(account.fake.account.candidates(schedule))
    async with account.client() as mettl:
        results = await mettl.iter_candidate_results(schedule.access_key, page_size=50).collect()
    assert all(isinstance(r, CandidateResult) for r in results)
    assert [r.email for r in results] == [t["email"] for t in truth]
    assert [r.raw for r in results] == truth
    completed = [
        (r, t)
        for r, t in zip(results, truth, strict=True)
        if t["testStatus"]["status"] == "Completed"
    ]
    assert completed
    for result, raw in completed:
        assert result.test_status is not None
        assert result.test_status.status is TestState.COMPLETED
        assert result.test_status.result is not None
        assert result.test_status.result.total_marks == raw["testStatus"]["result"]["totalMarks"]
        assert result.registration == raw["registration"]


async def test_typed_schedules_and_account_pairs(account: FakeMettlServer) -> None:
    async with account.client() as mettl:
        schedules = await mettl.iter_schedules(
            filter=ScheduleFilter(schedule_type=ScheduleType.ALWAYS_ON)
        ).collect()
        pairs = [(s, r) async for s, r in mettl.iter_all_results()]
    assert schedules
    assert all(
        isinstance(s, Schedule) and s.schedule_type is ScheduleType.ALWAYS_ON for s in schedules
    )
    assert len(pairs) == 155
    assert all(isinstance(s, Schedule) and isinstance(r, CandidateResult) for s, r in pairs)
    by_schedule = {s.access_key for s, _ in pairs}
    assert by_schedule == {
        s.access_key for s in account.fake.account.schedules if s.base_candidates
    }


async def test_raw_records_are_the_bytes_mettl_sent(account: FakeMettlServer) -> None:
    """The raw path keeps each record's JSON exactly as sent, for exports that write it."""
    schedule = account.fake.account.schedules[2]
    async with account.client() as mettl:
        records = await mettl.iter_candidate_results(schedule.access_key).raw().collect()
    order = account.fake.account.candidate_order(schedule)
    assert all(isinstance(r, RawRecord) for r in records)
    assert [r.json for r in records] == [
        account.fake.account.candidate_bytes(schedule, j, ir=False, qr=False) for j in order
    ]
    assert records[0]["email"] == records[0].key
    assert dict(records[0]) == orjson.loads(records[0].json)


@pytest.mark.parametrize("assessment_id", [3.9, True, "999000", 0, -4])
async def test_create_schedule_refuses_an_id_that_is_no_positive_integer(
    account: FakeMettlServer, assessment_id: Any
) -> None:
    """Like every other endpoint, before any request: no 3.9 sent as 3, no True as 1, no
    string taken as the assessment it spells (999000 is one of the account's)."""
    settings = open_settings("Campus drive", "HR portal")
    async with account.client() as mettl:
        with pytest.raises(ValidationError) as caught:
            await mettl.create_schedule(assessment_id, settings)
    assert caught.value.paths == ["assessment_id"]
    assert account.fake.requests == 0
