"""The models and answer readers of articles 1-19 that need no server: decoding, validation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mettl_async import (
    PBT,
    AccountInfo,
    AssessmentInfo,
    AssessmentSettings,
    CandidateRegistration,
    CandidateResult,
    DecodeError,
    TestInstance,
    TestState,
    WhiteLabel,
)
from mettl_async._convert import candidate_result_from_wire, instance_from_wire, structure, to_json
from mettl_async._protocol import Request
from mettl_async._registration import registration_outcomes
from mettl_async._unpaged import UnpagedListing
from mettl_async._uploads import image_problems, sniff_image, support_number_problems
from mettl_async.testing import FakeMettl, FakeMettlServer

from .conftest import load_json


def registration(email: str) -> CandidateRegistration:
    return CandidateRegistration(fields={"Email Address": email, "First Name": "X"})


CHUNK = [registration("a@example.com"), registration("b@example.com")]


def outcomes(items: Any) -> list[Any]:
    return registration_outcomes(CHUNK, {"registrationStatus": items}, path="/x")


def test_outcomes_are_matched_by_email_whatever_the_order() -> None:
    """Mettl's items are matched to candidates by email (case-insensitive), not by position."""
    result = outcomes(
        [
            {"email": "B@example.com", "status": "SUCCESS", "url": "https://t/b"},
            {"email": "a@example.com", "status": "SUCCESS", "url": "https://t/a"},
        ]
    )
    assert [(o.email, o.url) for o in result] == [
        ("a@example.com", "https://t/a"),
        ("b@example.com", "https://t/b"),
    ]
    assert all(o.registered for o in result)


@pytest.mark.parametrize(
    ("item", "code", "message"),
    [
        ({"status": "ERROR", "message": "E028: bad image URL", "url": None}, "E028", None),
        ({"status": "error", "code": "E607", "message": "limit exceeded"}, "E607", None),
        ({"status": "FAILED", "error": {"code": "E000", "message": "Some Error"}}, "E000", None),
        ({"status": "SUCCESS", "error": {"code": "E028"}}, "E028", None),
        ({"status": "PENDING"}, None, "Mettl sent no test link for this candidate"),
    ],
)
def test_per_candidate_failures_are_read_in_every_shape(
    item: dict[str, Any], code: str | None, message: str | None
) -> None:
    """A failed item is not registered; its E-code is read from a field, a nested error or text."""
    (first, _) = outcomes([{"email": "a@example.com", **item}, {"email": "b@example.com"}])
    assert not first.registered
    assert first.code == code
    assert first.raw["email"] == "a@example.com"
    if message is not None:
        assert first.message is not None
        assert first.message.startswith(message)


def test_a_candidate_the_answer_does_not_mention_is_not_registered() -> None:
    """A candidate missing from registrationStatus is reported as not known to be registered."""
    (first, second) = outcomes([{"email": "b@example.com", "status": "SUCCESS", "url": "u"}])
    assert not first.registered
    assert first.message is not None
    assert "does not mention" in first.message
    assert second.registered


def test_an_answer_without_emails_is_read_in_order() -> None:
    """Items without an email are matched to candidates by position."""
    (first, second) = outcomes(
        [{"status": "SUCCESS", "url": "https://t/1"}, {"status": "ERROR", "message": "no"}]
    )
    assert (first.registered, first.url) == (True, "https://t/1")
    assert (second.registered, second.message) == (False, "no")


def test_an_answer_without_registration_status_is_a_decode_error() -> None:
    """A SUCCESS envelope with no registrationStatus list cannot be read as outcomes."""
    with pytest.raises(DecodeError, match="registrationStatus"):
        registration_outcomes(CHUNK, {"status": "SUCCESS"}, path="/x")


def test_the_article_17_sample_decodes_with_its_report_links() -> None:
    """The LH fixture of article 17 decodes: report links, GMT copies, result in result."""
    sample = load_json("samples/mettl_api_article17_candidate.json")["candidate"]
    result = candidate_result_from_wire(sample)
    assert isinstance(result, CandidateResult)
    status = result.test_status
    assert status is not None
    assert status.status is TestState.COMPLETED
    assert status.pdf_report == "<url>"
    assert status.html_report == "https://mettl.com/analytics/share-report?key=..."
    assert status.end_time_gmt is not None
    assert status.result is not None
    assert status.result.performance_category == "Poor"
    assert status.raw["compensatoryTime"] == "false"


def test_a_test_instance_is_a_candidate_result_with_its_schedule() -> None:
    """Article 18's instances read like article 17's candidate, plus their schedule."""
    sample = load_json("samples/mettl_api_article17_candidate.json")["candidate"]
    instance = instance_from_wire(
        {**sample, "accessKey": "k1", "scheduleName": "Drive", "assessmentId": 7}
    )
    assert isinstance(instance, TestInstance)
    assert isinstance(instance, CandidateResult)
    assert (instance.access_key, instance.schedule_name, instance.assessment_id) == (
        "k1",
        "Drive",
        7,
    )
    assert instance.test_status is not None
    assert instance.test_status.pdf_report == "<url>"


def test_response_models_keep_unknown_fields_in_raw() -> None:
    """Account, PBT and assessment records decode leniently and keep what they do not name."""
    account = structure({"name": "Acme", "complianceInfo": {"gdpr": True}, "x": 1}, AccountInfo)
    assert account.compliance_info == {"gdpr": True}
    assert account.raw["x"] == 1
    pbt = structure({"id": 1176, "price": {"USD": 12}, "sampleReportUrl": "u"}, PBT)
    assert (pbt.id, pbt.price, pbt.sample_report_url) == (1176, {"USD": 12}, "u")
    assessment = structure(
        {"id": 5, "createdAt": "Fri, 18 Feb 2022 01:09:52 GMT", "testTaken": 3}, AssessmentInfo
    )
    assert assessment.created_at is not None
    assert assessment.test_taken == 3


def test_request_models_send_only_what_is_set_under_their_wire_names() -> None:
    """as and wl serialize minified, in the articles' order, with their exact names."""
    assert to_json(
        AssessmentSettings(exit_redirection_url="https://e.com", on_screen_calculator=True)
    ) == ('{"exitRedirectionURL":"https://e.com","onScreenCalculator":true}')
    assert to_json(WhiteLabel(button_font_color="FFFFFF", header_font_color="000")) == (
        '{"headerFontColor":"000","buttonFontColor":"FFFFFF"}'
    )


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n....", "png"),
        (b"\xff\xd8\xff\xdb....", "jpeg"),
        (b"GIF87a....", "gif"),
        (b"\x00\x00\x01\x00....", "ico"),
        (b"<svg/>", None),
    ],
)
def test_image_formats_are_read_from_their_bytes(content: bytes, kind: str | None) -> None:
    """An upload's format is read from its magic bytes, not trusted from its name."""
    assert sniff_image(content) == kind


def test_an_image_of_the_right_format_and_size_passes() -> None:
    """A small PNG with a matching name and media type has no problem."""
    png = b"\x89PNG\r\n\x1a\n" + bytes(10)
    assert (
        image_problems(
            png,
            field="logo",
            kinds=("png",),
            max_bytes=100,
            filename="LOGO.PNG",
            content_type="image/png",
        )
        == []
    )
    assert image_problems("not bytes", field="logo", kinds=("png",), max_bytes=None)


@pytest.mark.parametrize(
    ("numbers", "paths"),
    [
        (["+1-650-924-9221", "+91 82878 0340"], []),
        ([], []),
        ("+1-650-924-9221", ["sn"]),
        (["1", "2", "3"], ["sn", "sn[0]", "sn[1]", "sn[2]"]),
        (["call us"], ["sn[0]"]),
    ],
)
def test_support_numbers(numbers: Any, paths: list[str]) -> None:
    """sn is a list of at most two phone numbers."""
    assert [p.path for p in support_number_problems(numbers)] == paths


async def test_an_unpaged_answer_without_its_list_is_a_decode_error() -> None:
    """A listing that Mettl answers without the expected list raises, never ends quietly."""
    fake = FakeMettl()

    async def no_list(*_: Any) -> dict[str, Any]:
        return {"somethingElse": []}

    fake.route("GET", "/weird", no_list)
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        listing = UnpagedListing(
            mettl._transport.call_with,
            Request("GET", mettl.url("/weird")),
            "pbts",
            lambda record: record,
            label="weird",
        )
        with pytest.raises(DecodeError, match="no list of 'pbts'"):
            await listing.collect()
        with pytest.raises(DecodeError):
            [page async for page in listing.raw().pages()]


async def test_an_unpaged_listing_keeps_the_bytes_mettl_sent() -> None:
    """The raw path of an unpaged listing yields each record's JSON exactly as sent."""
    fake = FakeMettl()
    body = b'{"status":"SUCCESS","pbts":[{"id":1,  "name":"Spaced"},{"id":2}]}'

    async def exact(*_: Any) -> bytes:
        return body

    fake.route("GET", "/exact", exact)
    async with FakeMettlServer(fake) as server, server.client() as mettl:
        listing = UnpagedListing(
            mettl._transport.call_with,
            Request("GET", mettl.url("/exact")),
            "pbts",
            lambda record: record,
            label="exact",
        )
        records = await listing.raw().collect()
    assert [r.json for r in records] == [b'{"id":1,  "name":"Spaced"}', b'{"id":2}']
    assert orjson.loads(records[0].json)["name"] == "Spaced"
