"""Articles 1-7, 9, 10, 14, 15 and 17-19 through MettlClient, against the fake Mettl."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from mettl_async import (
    PBT,
    Access,
    AccessType,
    AccountInfo,
    AssessmentInfo,
    AssessmentSettings,
    AuthenticationError,
    CandidateRegistration,
    CandidateResult,
    ClientClosedError,
    FilePart,
    IncompleteListingError,
    InvalidRequestError,
    MettlClient,
    MettlConnectionError,
    MettlError,
    NotFoundError,
    PermissionDeniedError,
    RegistrationError,
    RequestError,
    Schedule,
    ScheduleFilter,
    ScheduleSettings,
    ScheduleType,
    ServerError,
    TestInstance,
    TestState,
    ValidationError,
    WhiteLabel,
)
from mettl_async._paging import RawRecord
from mettl_async._protocol import Request
from mettl_async._registration import register_in_chunks
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0" + bytes(200)
GIF = b"GIF89a" + bytes(200)
ICO = b"\x00\x00\x01\x00" + bytes(200)
BMP = b"BM" + bytes(200)

# The documented example keys and ts (docs §3.2), and the signatures computed there.
DOC_AK = "ab12c345-6789-0123-456d-78e9f0123456"
DOC_PRIVATE = "zy98x765-4321-0987-654w-32v1u0987654"
DOC_TS = 1635976200.0


@pytest.fixture
async def account() -> AsyncIterator[FakeMettlServer]:
    """Five schedules of 12 candidates each, on a fake Mettl."""
    async with FakeMettlServer(FakeMettl(account=FakeAccount(5, 12, seed=8))) as server:
        yield server


def signed_params(fake: FakeMettl, index: int = -1) -> set[str]:
    return set(fake.log[index].params)


def person(i: int, **more: str) -> dict[str, str]:
    return {
        "Email Address": f"person{i}@example.com",
        "First Name": f"First{i}",
        "Last Name": f"Last{i}",
        **more,
    }


def completed_candidate(fake: FakeMettl) -> tuple[str, str]:
    """(access key, email) of a generated candidate whose test is completed."""
    for schedule in fake.account.schedules:
        for record in fake.account.candidates(schedule):
            if record["testStatus"]["status"] == "Completed":
                return schedule.access_key, record["email"]
    raise AssertionError("no completed candidate in the fake account")


def in_progress_candidate(fake: FakeMettl) -> tuple[str, str]:
    for schedule in fake.account.schedules:
        for record in fake.account.candidates(schedule):
            if record["testStatus"]["status"] == "InProgress":
                return schedule.access_key, record["email"]
    raise AssertionError("no candidate in progress in the fake account")


# -- the documented signatures (docs §3.2) ------------------------------------------------


async def test_get_assessment_signs_like_the_documented_example(mocked: Any) -> None:
    """GET /v2/assessments/999999 carries the signature the reference computes."""
    mocked.get(
        re.compile(r"^https://api\.mettl\.com/v2/assessments/999999\?.*"),
        payload={"status": "SUCCESS", "assessment": {"id": 999999, "name": "Example"}},
    )
    async with MettlClient(DOC_AK, DOC_PRIVATE, clock=lambda: DOC_TS) as mettl:
        assessment = await mettl.get_assessment(999999)
    assert assessment.id == 999999
    ((_, url), _) = next(iter(mocked.requests.items()))
    params = dict(parse_qsl(urlsplit(str(url)).query))
    assert params["asgn"] == "CEbvhyoIhg6tqMWGviyyiYuF6fX0pQlvOeiC9REdb/c="


async def test_iter_assessments_signs_like_the_documented_example(mocked: Any) -> None:
    """The first page of GET /v2/assessments (limit=100, offset=0) is signed as documented."""
    mocked.get(
        re.compile(r"^https://api\.mettl\.com/v2/assessments\?.*"),
        payload={"status": "SUCCESS", "assessments": [{"id": 1, "name": "Only"}]},
    )
    async with MettlClient(DOC_AK, DOC_PRIVATE, clock=lambda: DOC_TS) as mettl:
        names = [a.name async for a in mettl.iter_assessments()]
    assert names == ["Only"]
    ((_, url), _) = next(iter(mocked.requests.items()))
    params = dict(parse_qsl(urlsplit(str(url)).query))
    assert (params["limit"], params["offset"]) == ("100", "0")
    assert params["asgn"] == "GGRM7k2TUjZa/1BAz30/Xox5CBg5O0M21XOsEzCi8IE="


async def test_add_pbts_signs_like_the_documented_example(mocked: Any) -> None:
    """POST /v2/pbts with pbts=[1336,1255,1176] carries the signature the reference computes."""
    mocked.post("https://api.mettl.com/v2/pbts", payload={"status": "SUCCESS", "pbts": []})
    async with MettlClient(DOC_AK, DOC_PRIVATE, clock=lambda: DOC_TS) as mettl:
        await mettl.add_pbts([1336, 1255, 1176])
    ((_, _url), calls) = next(iter(mocked.requests.items()))
    body = dict(parse_qsl(calls[0].kwargs["data"].decode()))
    assert body["pbts"] == "[1336,1255,1176]"
    assert body["asgn"] == "hZwcKYx9+7bj9QFVNti85pMRmswHvHL1JT9NTP+lTXI="


# -- article 1 ------------------------------------------------------------------------------


async def test_get_account_returns_typed_account_info(client: MettlClient) -> None:
    """get_account() reads accountInfo into AccountInfo and keeps every field in raw."""
    info = await client.get_account()
    assert isinstance(info, AccountInfo)
    assert info.name == "Demo Account"
    assert info.account_type == "Enterprise"
    assert info.candidate_registration_fields == ["Email Address", "First Name", "Last Name"]
    assert info.raw["email"] == "admin@example.com"


async def test_get_account_with_a_wrong_private_key_is_an_authentication_error(
    server: FakeMettlServer,
) -> None:
    """A key pair Mettl cannot verify raises AuthenticationError (E401), not a decode error."""
    async with MettlClient(server.public_key, "not-the-key", base_url=server.base_url) as mettl:
        with pytest.raises(AuthenticationError):
            await mettl.get_account()
    assert server.fake.bad_signatures == 1


# -- article 2 ------------------------------------------------------------------------------


async def test_update_logo_uploads_the_file_unsigned(client: MettlClient, fake: FakeMettl) -> None:
    """The logo travels as the multipart file 'logo'; only ak and ts are signed."""
    await client.update_logo(PNG)
    assert fake.logo == ("logo.png", PNG)
    assert signed_params(fake) == {"ak", "ts", "asgn"}
    assert fake.bad_signatures == 0
    info = await client.get_account()
    assert info.logo == "https://cdn.mettl.com/logos/logo.png"


async def test_update_logo_keeps_a_given_filename_and_type(
    client: MettlClient, fake: FakeMettl
) -> None:
    """A JPEG keeps the filename and media type given, when they agree with its bytes."""
    await client.update_logo(JPEG, filename="brand.jpg", content_type="image/jpeg")
    assert fake.logo == ("brand.jpg", JPEG)


@pytest.mark.parametrize(
    ("image", "options", "path"),
    [
        (PNG + bytes(100 * 1024), {}, "logo"),
        (BMP, {}, "logo"),
        (ICO, {}, "logo"),
        (PNG, {"filename": "logo.gif"}, "logo.filename"),
        (PNG, {"content_type": "image/jpeg"}, "logo.content_type"),
        (b"", {}, "logo"),
    ],
)
async def test_a_logo_mettl_would_refuse_is_refused_before_sending(
    client: MettlClient, fake: FakeMettl, image: bytes, options: dict[str, str], path: str
) -> None:
    """Over 100 KB, not JPEG/PNG/GIF, or a name or type that disagrees: refused, nothing sent."""
    with pytest.raises(ValidationError) as caught:
        await client.update_logo(image, **options)
    assert path in caught.value.paths
    assert fake.requests == 0


async def test_the_fake_refuses_a_logo_that_is_not_an_image(
    client: MettlClient, fake: FakeMettl
) -> None:
    """The fake answers E400 to an upload Mettl would refuse (its own error path)."""
    with pytest.raises(InvalidRequestError, match="logo"):
        await client.request(
            "POST",
            "/account/upload-logo",
            files=(FilePart("logo", "logo.bmp", BMP, "image/bmp"),),
        )
    assert fake.logo is None


# -- article 3 ------------------------------------------------------------------------------


async def test_update_white_label_sends_wl_and_sn_signed_and_files_unsigned(
    client: MettlClient, fake: FakeMettl
) -> None:
    """wl and sn are signed parameters; the favicon and cover are unsigned multipart files."""
    white_label = WhiteLabel(header_background_color="1A2B3C", button_color="fff")
    await client.update_white_label(
        white_label,
        support_numbers=["+1-650-924-9221", "+91-82878-0340"],
        favicon=ICO,
        cover=JPEG,
    )
    sent = fake.log[-1].params
    assert set(sent) == {"ak", "ts", "asgn", "wl", "sn"}
    assert sent["wl"] == '{"headerBackgroundColor":"1A2B3C","buttonColor":"fff"}'
    assert sent["sn"] == '["+1-650-924-9221","+91-82878-0340"]'
    assert fake.white_label_files == {"fav": ("favicon.ico", ICO), "cov": ("cover.jpg", JPEG)}
    assert fake.bad_signatures == 0
    info = await client.get_account()
    assert info.white_label["headerBackgroundColor"] == "1A2B3C"
    assert info.white_label["supportNumbers"] == ["+1-650-924-9221", "+91-82878-0340"]


async def test_update_white_label_takes_a_mapping_for_properties_the_model_lacks(
    client: MettlClient, fake: FakeMettl
) -> None:
    """A mapping is sent as is, without files in a plain form body."""
    await client.update_white_label({"buttonFontColor": "000000", "customUrl": "tests.acme.com"})
    assert fake.white_label == {"buttonFontColor": "000000", "customUrl": "tests.acme.com"}
    assert "sn" not in fake.log[-1].params


async def test_an_invalid_white_label_reports_every_problem_before_sending(
    client: MettlClient, fake: FakeMettl
) -> None:
    """Colours with '#', three support numbers and an oversized favicon fail together."""
    with pytest.raises(ValidationError) as caught:
        await client.update_white_label(
            WhiteLabel(header_background_color="#1A2B3C", header_font_color="blue"),
            support_numbers=["+1 650 924 9221", "12345", "+44 20 7946 0000"],
            favicon=PNG + bytes(10 * 1024),
            cover=BMP,
        )
    assert set(caught.value.paths) == {
        "wl.headerBackgroundColor",
        "wl.headerFontColor",
        "sn",
        "fav",
        "cov",
    }
    assert fake.requests == 0


async def test_an_account_without_white_labelling_gets_permission_denied(
    client: MettlClient, fake: FakeMettl
) -> None:
    """Only authorised accounts may white-label: others get PermissionDeniedError (E403)."""
    fake.white_label_allowed = False
    with pytest.raises(PermissionDeniedError):
        await client.update_white_label(WhiteLabel(button_color="123456"))


# -- articles 4 and 5 -----------------------------------------------------------------------


async def test_iter_pbts_is_lazy_and_typed(client: MettlClient, fake: FakeMettl) -> None:
    """iter_pbts() sends nothing until iterated, then one request for the whole library."""
    listing = client.iter_pbts()
    assert fake.requests == 0
    pbts = await listing.collect()
    assert fake.requests == 1
    assert all(isinstance(p, PBT) for p in pbts)
    assert [p.id for p in pbts] == [1176, 1255, 1336, 1401, 1542]
    assert pbts[0].name == "Numerical Reasoning Test"
    assert pbts[0].sample_report_url
    assert set(fake.log[-1].params) == {"ak", "ts", "asgn"}


async def test_iter_pbts_raw_and_pages_give_the_json_as_sent(client: MettlClient) -> None:
    """raw() yields RawRecord mappings; pages() yields the one page, marked last."""
    records = await client.iter_pbts().raw().collect()
    assert all(isinstance(r, RawRecord) for r in records)
    assert orjson.loads(records[0].json)["id"] == 1176
    pages = [page async for page in client.iter_pbts().pages()]
    assert len(pages) == 1
    assert pages[0].is_last
    assert len(pages[0].items) == 5


async def test_add_pbts_adds_assessments(client: MettlClient, fake: FakeMettl) -> None:
    """Added PBTs become assessments of the account; the answer's pbts list is returned."""
    added = await client.add_pbts([1176, 1336])
    assert [item["id"] for item in added] == [1176, 1336]
    assert fake.log[-1].params["pbts"] == "[1176,1336]"
    names = {a.name async for a in client.iter_assessments()}
    assert {"Numerical Reasoning Test", "Customer Service Aptitude Test"} <= names


async def test_add_pbts_uses_the_v1_path_on_v1(server: FakeMettlServer) -> None:
    """On v1 the path is /pbts/add, as the v1 documentation spells it."""
    async with server.client(api_version="v1") as mettl:
        await mettl.add_pbts([1255])
    assert server.fake.log[-1].path == "/pbts/add"
    assert server.fake.bad_signatures == 0


async def test_add_an_unknown_pbt_is_not_found(client: MettlClient) -> None:
    """An id that is not in Mettl's library raises NotFoundError (E404)."""
    with pytest.raises(NotFoundError):
        await client.add_pbts([42])


async def test_invalid_pbt_ids_are_refused_before_sending(
    client: MettlClient, fake: FakeMettl
) -> None:
    """An empty list, zero, a bool or a string is refused with its position."""
    with pytest.raises(ValidationError) as caught:
        await client.add_pbts([1176, 0, True, "7"])  # type: ignore[list-item]
    assert caught.value.paths == ["pbts[1]", "pbts[2]", "pbts[3]"]
    with pytest.raises(ValidationError, match="must not be empty"):
        await client.add_pbts([])
    assert fake.requests == 0


# -- articles 6 and 7 -----------------------------------------------------------------------


async def test_iter_assessments_walks_every_page_once(client: MettlClient, fake: FakeMettl) -> None:
    """25 assessments in pages of 10: three requests, each assessment once, newest first."""
    for i in range(22):
        fake.add_assessment(f"Drive {i:02d}")
    assessments = await client.iter_assessments(page_size=10).collect()
    assert len(assessments) == len(fake.assessments) == 25
    assert all(isinstance(a, AssessmentInfo) for a in assessments)
    ids = [a.id for a in assessments]
    assert ids == sorted(fake.assessments, reverse=True)
    assert fake.requests == 3
    assert {r.params["offset"] for r in fake.log} == {"0", "10", "20"}
    newest = assessments[0]
    assert newest.name == "Drive 21"
    assert newest.created_at is not None
    assert newest.raw == fake.assessment_json(newest.id or 0)


async def test_iter_assessments_sorts_as_asked(client: MettlClient, fake: FakeMettl) -> None:
    """sort and sort_order are sent and honoured; the raw path yields the same records."""
    for name in ("beta", "alpha", "gamma"):
        fake.add_assessment(name)
    listing = client.iter_assessments(sort="name", sort_order="asc", page_size=2)
    names = [a.name async for a in listing]
    assert names == sorted(names)
    assert fake.log[0].params["sort"] == "name"
    assert fake.log[0].params["sort_order"] == "asc"
    raw = await listing.raw().collect()
    assert [r["name"] for r in raw] == names


async def test_listing_errors_are_raised_when_iterated(server: FakeMettlServer) -> None:
    """A listing is lazy: a refused key surfaces on iteration, as AuthenticationError (E401)."""
    async with MettlClient(server.public_key, "wrong", base_url=server.base_url) as mettl:
        pbts, assessments = mettl.iter_pbts(), mettl.iter_assessments()
        assert server.fake.requests == 0
        with pytest.raises(AuthenticationError):
            await pbts.collect()
        with pytest.raises(AuthenticationError):
            await assessments.collect()


async def test_a_page_of_assessments_failing_for_good_makes_the_walk_incomplete(
    client: MettlClient, fake: FakeMettl
) -> None:
    """A later page that keeps failing raises IncompleteListingError naming its offset."""
    for i in range(12):
        fake.add_assessment(f"Drive {i}")
    fake.add_fault("E503", path="/assessments", params={"offset": "10"}, times=10)
    with pytest.raises(IncompleteListingError, match="offset 10"):
        await client.iter_assessments(page_size=10).collect()


async def test_iter_assessments_checks_its_arguments_before_any_request(
    client: MettlClient, fake: FakeMettl
) -> None:
    """An unknown sort or an out-of-range page size is refused before any I/O."""
    with pytest.raises(ValidationError, match="sort"):
        client.iter_assessments(sort="duration")
    with pytest.raises(ValidationError, match="limit"):
        client.iter_assessments(page_size=101)
    assert fake.requests == 0


async def test_get_assessment_returns_one_assessment(
    account: FakeMettlServer,
) -> None:
    """get_assessment() returns the assessment with its registration fields and test count."""
    schedule = account.fake.account.schedules[0]
    async with account.client() as mettl:
        assessment = await mettl.get_assessment(schedule.assessment_id)
    assert assessment.id == schedule.assessment_id
    assert assessment.name == schedule.assessment_name
    assert assessment.registration_fields == list(schedule.registration_fields)
    assert assessment.test_taken == schedule.candidate_count


async def test_an_unknown_assessment_is_not_found(client: MettlClient) -> None:
    """An unknown assessment id raises NotFoundError (E404) from every assessment endpoint."""
    with pytest.raises(NotFoundError):
        await client.get_assessment(424242)
    with pytest.raises(NotFoundError):
        await client.edit_assessment_settings(424242, AssessmentSettings(allow_copy_paste=True))
    with pytest.raises(NotFoundError):
        await client.iter_assessment_schedules(424242).collect()


@pytest.mark.parametrize("bad", [0, -3, "999000", True, None])
async def test_an_invalid_assessment_id_is_refused_before_sending(
    client: MettlClient, fake: FakeMettl, bad: Any
) -> None:
    """An assessment id must be a positive integer."""
    with pytest.raises(ValidationError, match="assessment_id"):
        await client.get_assessment(bad)
    assert fake.requests == 0


# -- article 9 ------------------------------------------------------------------------------


async def test_edit_assessment_settings_sends_only_the_given_properties(
    client: MettlClient, fake: FakeMettl
) -> None:
    """Only the properties set travel in 'as', at the real path .../settings/edit."""
    assessment_id = fake.account.schedules[0].assessment_id
    settings = AssessmentSettings(exit_redirection_url="https://example.com/done")
    await client.edit_assessment_settings(assessment_id, settings)
    assert fake.log[-1].path == f"/assessments/{assessment_id}/settings/edit"
    assert fake.log[-1].params["as"] == '{"exitRedirectionURL":"https://example.com/done"}'
    changed = await client.get_assessment(assessment_id)
    assert changed.raw["exitRedirectionURL"] == "https://example.com/done"


async def test_invalid_or_empty_assessment_settings_are_refused(
    client: MettlClient, fake: FakeMettl
) -> None:
    """Nothing to change, or a value of the wrong kind, is refused with its wire path."""
    with pytest.raises(ValidationError) as caught:
        await client.edit_assessment_settings(999000, AssessmentSettings())
    assert caught.value.paths == ["as"]
    with pytest.raises(ValidationError) as caught:
        await client.edit_assessment_settings(
            999000,
            AssessmentSettings(
                exit_redirection_url="example.com",
                on_screen_calculator="yes",  # type: ignore[arg-type]
            ),
        )
    assert set(caught.value.paths) == {"as.exitRedirectionURL", "as.onScreenCalculator"}
    assert fake.requests == 0


# -- article 10 -----------------------------------------------------------------------------


async def test_iter_assessment_schedules_lists_that_assessments_schedules(
    account: FakeMettlServer,
) -> None:
    """One request, no limit or offset, only the schedules of that assessment."""
    fake = account.fake
    assessment_id = fake.account.schedules[0].assessment_id
    expected = [s.access_key for s in fake.account.schedules if s.assessment_id == assessment_id]
    async with account.client() as mettl:
        schedules = await mettl.iter_assessment_schedules(assessment_id).collect()
        raw = await mettl.iter_assessment_schedules(assessment_id).raw().collect()
    assert [s.access_key for s in schedules] == expected
    assert all(isinstance(s, Schedule) for s in schedules)
    assert [r["accessKey"] for r in raw] == expected
    assert set(fake.log[0].params) == {"ak", "ts", "asgn"}


async def test_iter_assessment_schedules_sends_the_filter(account: FakeMettlServer) -> None:
    """A ScheduleFilter is validated and sent as 'filter'; the fake narrows the list by it."""
    fake = account.fake
    fake.account.add_schedule(0, assessment_id=999000, assessment_name="Assessment 1")
    async with account.client() as mettl:
        fixed = await mettl.iter_assessment_schedules(
            999000, filter=ScheduleFilter(schedule_type=ScheduleType.FIXED)
        ).collect()
        everything = await mettl.iter_assessment_schedules(999000).collect()
    assert fake.log[0].params["filter"] == '{"scheduleType":"Fixed"}'
    assert all(s.schedule_type is ScheduleType.FIXED for s in fixed)
    assert len(fixed) < len(everything)


# -- article 14 -----------------------------------------------------------------------------


async def test_edit_schedule_changes_only_what_is_given(account: FakeMettlServer) -> None:
    """edit_schedule() sends the given properties as sc and returns the schedule Mettl sends."""
    fake = account.fake
    key = fake.account.schedules[0].access_key
    settings = ScheduleSettings(
        name="Campus drive (edited)",
        test_finish_notification_url="https://hooks.example.com/finish",
    )
    async with account.client() as mettl:
        edited = await mettl.edit_schedule(key, settings)
        fetched = await mettl.get_schedule(key)
    assert fake.log[0].path == f"/schedules/{key}/edit"
    assert fake.log[0].params["sc"] == (
        '{"name":"Campus drive (edited)",'
        '"testFinishNotificationUrl":"https://hooks.example.com/finish"}'
    )
    assert isinstance(edited, Schedule)
    assert edited.name == fetched.name == "Campus drive (edited)"
    assert fetched.test_finish_notification_url == "https://hooks.example.com/finish"


async def test_edit_schedule_validates_as_an_edit(client: MettlClient, fake: FakeMettl) -> None:
    """Nothing is mandatory but access.type when access is sent; an empty edit is refused."""
    key = fake.account.schedules[0].access_key
    with pytest.raises(ValidationError) as caught:
        await client.edit_schedule(key, ScheduleSettings(access=Access(send_email=True)))
    assert caught.value.paths == ["sc.access.type"]
    with pytest.raises(ValidationError) as caught:
        await client.edit_schedule(key, ScheduleSettings())
    assert caught.value.paths == ["sc"]
    assert fake.requests == 0
    invite = ScheduleSettings(access=Access(type=AccessType.BY_INVITATION, send_email=True))
    edited = await client.edit_schedule(key, invite)
    assert edited is not None
    assert edited.access is not None
    assert edited.access.type is AccessType.BY_INVITATION


async def test_edit_an_unknown_schedule_is_not_found(client: MettlClient) -> None:
    """An unknown access key raises NotFoundError (E404)."""
    with pytest.raises(NotFoundError):
        await client.edit_schedule("nope", ScheduleSettings(name="x"))


async def test_edit_schedule_to_a_taken_name_is_refused_by_mettl(account: FakeMettlServer) -> None:
    """A name already used in the same assessment is Mettl's E400, raised as is."""
    fake = account.fake
    first = fake.account.schedules[0]
    twin = fake.account.add_schedule(0, assessment_id=first.assessment_id, name="Taken")
    async with account.client() as mettl:
        with pytest.raises(InvalidRequestError, match="already named"):
            await mettl.edit_schedule(first.access_key, ScheduleSettings(name=twin.name))


# -- article 15 -----------------------------------------------------------------------------


async def test_register_45_candidates_in_3_calls_with_2_failures(
    client: MettlClient, fake: FakeMettl
) -> None:
    """45 candidates: 3 calls of at most 20; 2 refused by Mettl are failed, 43 registered."""
    schedule = fake.account.schedules[0]
    people = [person(i) for i in range(45)]
    fake.fail_registration("person7@example.com", "person31@example.com")
    outcomes = await client.register_candidates(schedule.access_key, people)
    assert fake.registration_calls == 3
    sizes = sorted(len(orjson.loads(r.params["rd"])["registrationDetails"]) for r in fake.log)
    assert sizes == [5, 20, 20]
    assert [o.email for o in outcomes] == [p["Email Address"] for p in people]
    failed = [o for o in outcomes if not o.registered]
    assert [o.email for o in failed] == ["person7@example.com", "person31@example.com"]
    assert all(o.code == "E028" and o.url is None and o.error is None for o in failed)
    registered = [o for o in outcomes if o.registered]
    assert len(registered) == 43
    assert all(o.url and o.url.startswith("https://tests.mettl.com/") for o in registered)
    assert len({o.url for o in registered}) == 43
    listed = {r.email async for r in client.iter_candidate_results(schedule.access_key)}
    assert {o.email for o in registered} <= listed
    assert not {o.email for o in failed} & listed


async def test_register_candidates_sends_chunks_concurrently(server: FakeMettlServer) -> None:
    """The chunks of one registration are in flight together, within the client's bound.

    No timing: each chunk's request waits until a second one has been sent, which
    only happens if the chunks are sent concurrently (sent one by one, the first
    would wait for ever, and the test fails after a minute).
    """
    key = server.fake.account.schedules[0].access_key
    async with server.client(max_in_flight=2) as mettl:
        transport = mettl._transport
        send = transport.call
        sent = 0
        two_sent = asyncio.Event()

        async def call(request: Any, **kwargs: Any) -> Any:
            nonlocal sent
            sent += 1
            if sent >= 2:
                two_sent.set()
            await asyncio.wait_for(two_sent.wait(), 60)
            return await send(request, **kwargs)

        transport.call = call  # type: ignore[method-assign]
        outcomes = await mettl.register_candidates(key, [person(i) for i in range(60)])
    assert len(outcomes) == 60
    assert all(outcome.registered for outcome in outcomes)
    assert sent == 3
    assert 1 <= server.fake.peak_in_flight <= 2


async def test_a_chunk_that_fails_whole_fails_only_its_candidates(
    client: MettlClient, fake: FakeMettl
) -> None:
    """A chunk whose request fails (HTTP 500, not retried for a POST) fails only its 20."""
    key = fake.account.schedules[0].access_key
    fake.add_fault("http500", path=f"/schedules/{key}/candidates", method="POST")
    outcomes = await client.register_candidates(key, [person(i) for i in range(40)])
    failed = [o for o in outcomes if not o.registered]
    assert len(failed) == 20
    assert all(isinstance(o.error, ServerError) and o.code == "E000" for o in failed)
    failed_emails = [o.email for o in failed]
    assert failed_emails in (
        [f"person{i}@example.com" for i in range(20)],
        [f"person{i}@example.com" for i in range(20, 40)],
    )
    assert sum(o.registered for o in outcomes) == 20


async def test_when_every_chunk_fails_the_error_is_raised(
    client: MettlClient, fake: FakeMettl
) -> None:
    """No candidate got an answer: the failure is raised, like any other method's."""
    key = fake.account.schedules[0].access_key
    fake.add_fault("http500", path=f"/schedules/{key}/candidates", method="POST", times=2)
    with pytest.raises(ServerError) as caught:
        await client.register_candidates(key, [person(i) for i in range(40)])
    assert isinstance(caught.value, RegistrationError)  # both chunks' errors, still a ServerError
    assert [(type(e), e.code) for e in caught.value.errors] == [(ServerError, "E000")] * 2
    with pytest.raises(NotFoundError) as one:
        await client.register_candidates("nope", [person(1)])
    assert not isinstance(one.value, RegistrationError)  # one chunk: its error as itself


async def test_when_every_chunk_fails_differently_every_failure_is_raised(
    client: MettlClient, fake: FakeMettl
) -> None:
    """Two chunks, two different failures: one error carries both, not only the first."""
    key = fake.account.schedules[0].access_key
    path = f"/schedules/{key}/candidates"
    fake.add_fault("http500", path=path, method="POST")
    fake.add_fault("drop", path=path, method="POST")
    with pytest.raises(MettlError) as caught:
        await client.register_candidates(key, [person(i) for i in range(40)])
    error = caught.value
    assert isinstance(error, RegistrationError)
    assert isinstance(error, RequestError)  # the class both failures share
    assert not isinstance(error, ServerError | MettlConnectionError)
    assert {type(e) for e in error.errors} == {ServerError, MettlConnectionError}
    assert error.__cause__ is error.errors[0]
    assert all(str(e) in str(error) for e in error.errors)


async def test_what_escapes_the_chunks_is_raised_every_one() -> None:
    """A closed client fails every chunk: one error carries each; a bug stays itself."""
    url = "https://api.mettl.com/v2/schedules/key/candidates"
    people = [CandidateRegistration(fields=person(i)) for i in range(40)]

    async def closed(request: Request) -> dict[str, Any]:
        raise ClientClosedError("this MettlClient is closed")

    async def bug(request: Request) -> dict[str, Any]:
        raise TypeError("a bug")

    with pytest.raises(ClientClosedError) as caught:
        await register_in_chunks(closed, url, people, {})
    assert isinstance(caught.value, RegistrationError)
    assert len(caught.value.errors) == 2
    with pytest.raises(TypeError):
        await register_in_chunks(bug, url, people[:20], {})
    with pytest.raises(ExceptionGroup) as group:
        await register_in_chunks(bug, url, people, {})
    assert [type(e) for e in group.value.exceptions] == [TypeError, TypeError]


async def test_register_candidates_sends_the_optional_parameters(
    client: MettlClient, fake: FakeMettl
) -> None:
    """Optional flags are signed parameters; context data and extra time go in optionalParams."""
    schedule = fake.account.schedules[0]
    outcomes = await client.register_candidates(
        schedule.access_key,
        [
            CandidateRegistration(
                fields={"Email Address": "ada@example.com", "First Name": "Ada"},
                context_data='{"crm":"A-17"}',
                compensatory_time=15,
            ),
            {"Email Address": "bob@example.com", "First Name": "Bob", "Last Name": "B"},
        ],
        allow_missing_mandatory_fields=True,
        time_limit_seconds=3600,
        show_custom_instructions=True,
    )
    assert all(o.registered for o in outcomes)
    sent = fake.log[-1].params
    assert sent["allowMissingMandatoryRegistrationFields"] == "true"
    assert sent["showCustomInstructions"] == "true"
    assert sent["timeLimitInSec"] == "3600"
    assert orjson.loads(sent["rd"]) == {
        "registrationDetails": [
            {"Email Address": "ada@example.com", "First Name": "Ada"},
            {"Email Address": "bob@example.com", "First Name": "Bob", "Last Name": "B"},
        ],
        "optionalParams": [
            {
                "email": "ada@example.com",
                "context_data": '{"crm":"A-17"}',
                "compensatory_time": "15",
            }
        ],
    }


async def test_a_missing_mandatory_field_fails_that_candidate_only(
    client: MettlClient, fake: FakeMettl
) -> None:
    """Without allowMissingMandatoryRegistrationFields Mettl refuses a candidate lacking one."""
    key = fake.account.schedules[0].access_key
    incomplete = {"Email Address": "ada@example.com", "First Name": "Ada"}
    outcomes = await client.register_candidates(key, [incomplete, person(2)])
    assert [o.registered for o in outcomes] == [False, True]
    assert outcomes[0].code == "E028"
    assert outcomes[0].message is not None
    assert "Last Name" in outcomes[0].message
    assert "allowMissingMandatoryRegistrationFields" not in fake.log[-1].params


async def test_an_invalid_registration_reports_every_candidate_before_sending(
    client: MettlClient, fake: FakeMettl
) -> None:
    """Missing or bad emails, duplicates, no first name, bad extra time: all at once, wire paths."""
    people: list[Any] = [
        person(0),
        {"First Name": "No email"},
        {"Email Address": "not-an-email", "First Name": "X"},
        {"Email Address": "PERSON0@example.com", "First Name": "Twin"},
        {"Email Address": "ok@example.com"},
        CandidateRegistration(fields=person(5), compensatory_time=-5),
        "someone@example.com",
    ]
    with pytest.raises(ValidationError) as caught:
        await client.register_candidates("key", people, time_limit_seconds=0)
    assert caught.value.paths == [
        'rd.registrationDetails[1]["Email Address"]',
        'rd.registrationDetails[2]["Email Address"]',
        'rd.registrationDetails[3]["Email Address"]',
        'rd.registrationDetails[4]["First Name"]',
        "rd.optionalParams[5].compensatory_time",
        "rd.registrationDetails[6]",
        "timeLimitInSec",
    ]
    assert fake.requests == 0


async def test_registering_nobody_sends_nothing(client: MettlClient, fake: FakeMettl) -> None:
    """An empty list of candidates returns no outcomes and sends no request."""
    assert await client.register_candidates("key", []) == []
    assert fake.requests == 0


# -- article 17 -----------------------------------------------------------------------------


async def test_get_candidate_result_has_typed_report_links(
    client: MettlClient, fake: FakeMettl
) -> None:
    """A completed candidate's result comes typed, with its PDF and HTML report links."""
    key, email = completed_candidate(fake)
    result = await client.get_candidate_result(key, email)
    assert isinstance(result, CandidateResult)
    assert result.email == email
    status = result.test_status
    assert status is not None
    assert status.status is TestState.COMPLETED
    assert status.pdf_report is not None
    assert status.pdf_report.startswith("https://reports.mettl.com/pdf/")
    assert status.html_report is not None
    assert status.html_report.startswith("https://mettl.com/analytics/share-report?key=")
    assert set(fake.log[-1].params) == {"ak", "ts", "asgn"}


async def test_get_candidate_result_sends_ir_rs_and_qr(
    client: MettlClient, fake: FakeMettl
) -> None:
    """The three options send ir, rs and qr, and the fake answers with what they add."""
    key, email = completed_candidate(fake)
    result = await client.get_candidate_result(
        key,
        email,
        include_recommendation=True,
        include_response_styles=True,
        include_essay_responses=True,
    )
    sent = fake.log[-1].params
    assert (sent["ir"], sent["rs"], sent["qr"]) == ('{"recommendation":true}', "true", "true")
    assert result.test_status is not None
    assert result.test_status.result is not None
    analysis = result.test_status.result.analysis
    assert analysis is not None
    assert analysis.recommendation
    assert analysis.response_styles
    section = (result.test_status.result.section_marks or [])[0]
    assert (section.skill_marks or [])[0].questions


async def test_an_email_with_plus_and_question_mark_round_trips(
    client: MettlClient, fake: FakeMettl
) -> None:
    """'+' and '?' are percent-encoded in the path and signed so: get, then delete, verify."""
    schedule = fake.account.schedules[1]
    email = "ada+mettl?x=1@example.com"
    outcomes = await client.register_candidates(
        schedule.access_key, [{"Email Address": email, "First Name": "Ada", "Last Name": "L"}]
    )
    assert outcomes[0].registered
    registered = await client.get_candidate_result(schedule.access_key, email)
    assert registered.email == email
    assert fake.log[-1].path == (
        f"/schedules/{schedule.access_key}/candidates/ada%2Bmettl%3Fx%3D1@example.com"
    )
    fake.account.complete(schedule, fake.account.index_of(schedule, email) or 0)
    completed = await client.get_candidate_result(schedule.access_key, email)
    assert completed.test_status is not None
    assert completed.test_status.status is TestState.COMPLETED
    await client.delete_candidate_result(schedule.access_key, email)
    assert fake.log[-1].method == "DELETE"
    with pytest.raises(NotFoundError):
        await client.get_candidate_result(schedule.access_key, email)
    assert fake.bad_signatures == 0


async def test_an_unknown_candidate_or_schedule_is_not_found(
    client: MettlClient, fake: FakeMettl
) -> None:
    """An unknown email or access key raises NotFoundError (E404)."""
    key = fake.account.schedules[0].access_key
    with pytest.raises(NotFoundError):
        await client.get_candidate_result(key, "nobody@example.com")
    with pytest.raises(NotFoundError):
        await client.get_candidate_result("nope", "nobody@example.com")


async def test_empty_keys_and_emails_are_refused_before_sending(
    client: MettlClient, fake: FakeMettl
) -> None:
    """An empty access key or email is a ValidationError, not a request to a wrong path."""
    with pytest.raises(ValidationError, match="access_key"):
        await client.get_candidate_result("", "a@example.com")
    with pytest.raises(ValidationError, match="email"):
        await client.delete_candidate_result("key", " ")
    with pytest.raises(ValidationError, match="email"):
        client.iter_candidate_results_in_account("")
    assert fake.requests == 0


# -- article 18 -----------------------------------------------------------------------------


async def register_everywhere(
    mettl: MettlClient, fake: FakeMettl, email: str, count: int
) -> list[str]:
    keys = [s.access_key for s in fake.account.schedules[:count]]
    for key in keys:
        outcomes = await mettl.register_candidates(
            key, [{"Email Address": email, "First Name": "Ada", "Last Name": "L"}]
        )
        assert outcomes[0].registered
    return keys


async def test_results_in_account_on_v2_is_one_request(account: FakeMettlServer) -> None:
    """On v2 one request returns every test instance; no limit or offset is sent."""
    fake = account.fake
    async with account.client() as mettl:
        keys = await register_everywhere(mettl, fake, "ada+x@example.com", 3)
        before = fake.requests
        instances = await mettl.iter_candidate_results_in_account("ada+x@example.com").collect()
    assert fake.requests - before == 1
    assert fake.log[-1].path == "/candidates/ada%2Bx@example.com"
    assert set(fake.log[-1].params) == {"ak", "ts", "asgn"}
    assert all(isinstance(i, TestInstance) for i in instances)
    assert [i.access_key for i in instances] == keys
    assert instances[0].schedule_name == fake.account.schedules[0].name
    assert instances[0].email == "ada+x@example.com"
    assert fake.bad_signatures == 0


async def test_results_in_account_pages_on_v3(server: FakeMettlServer) -> None:
    """On v3 the instances are walked in pages of page_size with limit and offset."""
    fake = server.fake
    fake.account = FakeAccount(25, 0, seed=3)
    async with server.client(api_version="v3") as mettl:
        await register_everywhere(mettl, fake, "ada@example.com", 25)
        before = fake.requests
        listing = mettl.iter_candidate_results_in_account(
            "ada@example.com", include_essay_responses=True, page_size=10
        )
        instances = await listing.collect()
        raw = await listing.raw().collect()
    assert len(instances) == len(raw) == 25
    assert fake.requests - before == 6
    pages = [r.params for r in list(fake.log)[before:]]
    assert sorted(p["offset"] for p in pages) == ["0", "0", "10", "10", "20", "20"]
    assert all(p["limit"] == "10" and p["qr"] == "true" for p in pages)
    assert {i.access_key for i in instances} == {s.access_key for s in fake.account.schedules}
    assert fake.bad_signatures == 0


async def test_results_in_account_of_an_unknown_email_is_not_found(client: MettlClient) -> None:
    """An email Mettl does not know raises NotFoundError when the listing is iterated."""
    listing = client.iter_candidate_results_in_account("nobody@example.com")
    with pytest.raises(NotFoundError):
        await listing.collect()


# -- article 19 -----------------------------------------------------------------------------


async def test_delete_a_completed_result(client: MettlClient, fake: FakeMettl) -> None:
    """A completed result is deleted: it leaves the schedule's listing and article 17."""
    key, email = completed_candidate(fake)
    await client.delete_candidate_result(key, email)
    emails = {r.email async for r in client.iter_candidate_results(key)}
    assert email not in emails
    with pytest.raises(NotFoundError):
        await client.get_candidate_result(key, email)


async def test_a_test_in_progress_is_not_deleted(client: MettlClient, fake: FakeMettl) -> None:
    """Mettl leaves an in-progress test alone; the fake refuses with E400."""
    key, email = in_progress_candidate(fake)
    with pytest.raises(InvalidRequestError, match="completed or expired"):
        await client.delete_candidate_result(key, email)
    assert (await client.get_candidate_result(key, email)).email == email


async def test_delete_an_unknown_result_is_not_found(client: MettlClient, fake: FakeMettl) -> None:
    """An unknown email or access key raises NotFoundError (E404)."""
    key = fake.account.schedules[0].access_key
    with pytest.raises(NotFoundError):
        await client.delete_candidate_result(key, "nobody@example.com")
    with pytest.raises(NotFoundError):
        await client.delete_candidate_result("nope", "nobody@example.com")
