"""Pure paging: next links, page envelopes and when a listing ends."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
import pytest

from mettl_async import APIError, DecodeError, PaginationError, RateLimitError, ValidationError
from mettl_async._paging import (
    Page,
    RawRecord,
    WireRecord,
    check_page_size,
    decode_listing,
    decode_typed_listing,
    link_request,
    page_from_envelope,
    record_of,
)

HERE = "https://api.mettl.com/v2/schedules/ab12/candidates"


def test_absolute_link_keeps_its_parameters_and_drops_stale_auth() -> None:
    """A pre-signed next link is re-signed fresh: ak, ts and asgn are dropped, the rest kept."""
    url, params = link_request(
        f"{HERE}?ak=old&ts=1&asgn=x%2By%3D&limit=100&offset=100&qr=true&ir=%7B%22recommendation%22%3Atrue%7D",
        HERE,
    )
    assert url == HERE
    assert params == {
        "limit": "100",
        "offset": "100",
        "qr": "true",
        "ir": '{"recommendation":true}',
    }


def test_relative_link_resolves_against_the_page_it_came_in() -> None:
    url, params = link_request("/v2/schedules/ab12/candidates?offset=200&limit=100", HERE)
    assert url == HERE
    assert params == {"offset": "200", "limit": "100"}


def test_link_keeps_an_encoded_path_as_sent() -> None:
    url, _ = link_request("/v2/candidates/a%2Bb%40x.com?offset=1", "https://api.mettl.com/v3/x")
    assert url == "https://api.mettl.com/v2/candidates/a%2Bb%40x.com"


@pytest.mark.parametrize(
    "base",
    [
        "https://api.mettl.com:443/v2/schedules/ab12/candidates",
        "https://API.mettl.com/v2/schedules/ab12/candidates",
    ],
)
def test_a_link_to_the_same_host_spelled_otherwise_is_followed(base: str) -> None:
    """Case and default ports do not make another host; the client's spelling is kept."""
    url, params = link_request(f"{HERE}?offset=100", base)
    assert url == base
    assert params == {"offset": "100"}


def test_link_to_another_host_is_refused() -> None:
    with pytest.raises(PaginationError, match="another host"):
        link_request("https://evil.example/v2/schedules?offset=1", HERE)


def test_page_reads_items_and_paging() -> None:
    page = page_from_envelope(
        {
            "status": "SUCCESS",
            "candidates": [{"email": "a"}, {"email": "b"}],
            "paging": {"next": "/n", "previous": None, "totalRecords": "250"},
        },
        "candidates",
        offset=0,
        limit=2,
    )
    assert page.items == [{"email": "a"}, {"email": "b"}]
    assert (page.next, page.previous, page.total_records, page.paged) == ("/n", None, 250, True)
    assert not page.is_end()


def test_null_list_is_an_empty_page_and_a_missing_one_is_an_error() -> None:
    assert page_from_envelope({"candidates": None}, "candidates", offset=0, limit=5).items == []
    with pytest.raises(KeyError):
        page_from_envelope({"status": "SUCCESS"}, "candidates", offset=0, limit=5)
    with pytest.raises(TypeError):
        page_from_envelope({"candidates": {"a": 1}}, "candidates", offset=0, limit=5)


@pytest.mark.parametrize(
    ("page", "end"),
    [
        (Page([], 0, 10, received=0), True),
        (Page([1] * 10, 0, 10, received=10), False),  # no paging: a full page may have a next
        (Page([1] * 3, 0, 10, received=3), True),  # no paging: a short page is the last
        (Page([1] * 5, 20, 10, total_records=25, received=5, paged=True), True),
        (Page([1] * 5, 0, 10, total_records=25, received=5, paged=True), False),  # clamped
        (Page([1] * 10, 0, 10, next=None, received=10, paged=True), True),
        (Page([1] * 10, 0, 10, next="/n", received=10, paged=True), False),
    ],
)
def test_end_of_listing(page: Page[int], end: bool) -> None:
    """The total wins, then the paging block's next link, then the page's size."""
    assert page.is_end() is end


@pytest.mark.parametrize("size", [0, 101, -1, True, 2.5, "10", 10.0, None])
def test_page_size_outside_1_to_100_is_refused(size: object) -> None:
    """Any other limit raises a ValidationError with path ``limit``, before any request."""
    with pytest.raises(ValidationError, match="limit") as caught:
        check_page_size(size)  # type: ignore[arg-type]
    assert caught.value.paths == ["limit"]


def test_page_size_in_range_is_accepted() -> None:
    assert check_page_size(1) == 1
    assert check_page_size(100) == 100


def _listing(body: bytes, status: int = 200) -> dict[str, object]:
    from mettl_async._paging import decode_listing

    return decode_listing(
        status, body, items_key="candidates", key_field="email", method="GET", url="https://h/v2/x"
    )


def test_listing_page_keeps_each_record_as_sent_with_its_key() -> None:
    from mettl_async._paging import RawRecord

    body = (
        b'{"status":"SUCCESS","candidates":[{"email":"a@x.com","n":1.0},{"n":2},"odd"],'
        b'"paging":{"next":null}}'
    )
    envelope = _listing(body)
    records = envelope["candidates"]
    assert isinstance(records, list)
    assert all(isinstance(r, RawRecord) for r in records)
    assert [r.json for r in records] == [b'{"email":"a@x.com","n":1.0}', b'{"n":2}', b'"odd"']
    assert [r.key for r in records] == ["a@x.com", None, None]
    assert envelope["paging"] == {"next": None}
    assert records[0]["n"] == 1.0
    assert records[0] == {"email": "a@x.com", "n": 1.0}


def test_listing_error_envelope_raises_the_typed_error() -> None:
    from mettl_async import RateLimitError

    with pytest.raises(RateLimitError):
        _listing(b'{"status":"ERROR","error":{"code":"E509","message":"Rate limit exceeded"}}')


def test_listing_cut_short_is_a_decode_error() -> None:
    from mettl_async import DecodeError

    with pytest.raises(DecodeError):
        _listing(b'{"status":"SUCCESS","candidates":[{"email":"a')


def test_listing_without_its_list_is_left_for_the_page_reader() -> None:
    """A SUCCESS envelope without the list comes back whole; the walk then reports it."""
    assert _listing(b'{"status":"SUCCESS"}') == {"status": "SUCCESS"}


def test_a_record_built_from_data_serializes_on_demand() -> None:
    """A record made from a mapping (a page the scan could not read) still offers its JSON."""
    from mettl_async._paging import record_of

    record = record_of({"email": "a@x.com", "n": 1}, "email")
    assert record.key == "a@x.com"
    assert orjson.loads(record.json) == {"email": "a@x.com", "n": 1}
    assert record_of(5, "email").json == b"5"


def test_a_raw_record_needs_json_or_data() -> None:
    from mettl_async._paging import RawRecord

    with pytest.raises(ValueError, match="JSON or its data"):
        RawRecord()


# -- found unguarded by mutation testing (docs/mutation.md) ---------------------------------


def test_a_bad_page_size_error_says_what_and_why_word_for_word() -> None:
    with pytest.raises(ValidationError) as caught:
        check_page_size(0)
    assert str(caught.value) == (
        "invalid page size: 1 problem\n  - limit: must be an integer from 1 to 100, got 0"
    )


def test_a_link_to_another_host_is_refused_word_for_word() -> None:
    with pytest.raises(PaginationError) as caught:
        link_request("https://elsewhere.example/v1/x?offset=5", "https://api.mettl.com/v1/x")
    assert str(caught.value) == (
        "the server sent a page link to another host (https://elsewhere.example); not following it"
    )


def test_a_links_blank_parameter_is_kept_as_it_is() -> None:
    """The next request repeats every parameter of the link, a blank one too."""
    url, params = link_request("?limit=5&offset=5&filter=", "https://api.mettl.com/v1/x")
    assert (url, params) == (
        "https://api.mettl.com/v1/x",
        {"limit": "5", "offset": "5", "filter": ""},
    )


def test_raw_records_compare_by_their_content_however_made() -> None:
    scanned = RawRecord(b'{"email": "a@x", "n": 1}', "a@x")
    assert scanned == RawRecord(data={"email": "a@x", "n": 1})
    assert scanned != RawRecord(data={"email": "a@x", "n": 2})
    assert scanned == {"email": "a@x", "n": 1}


@pytest.mark.parametrize("key", [["a@x"], {"a": 1}, 1.5, True, None])
def test_a_parsed_record_whose_key_is_not_text_or_a_number_has_none(key: object) -> None:
    """A key of another type (a list, an object, a float, a boolean) does not identify the
    record: it is known by its content instead."""
    assert record_of({"email": key, "n": 1}, "email").key is None
    assert record_of({"email": "a@x"}, "email").key == "a@x"
    assert record_of({"id": 7}, "id").key == 7


def test_a_page_with_other_items_keeps_everything_else() -> None:
    page = Page([1, 2], 10, 2, 30, "next-link", "previous-link", 3, True, True)
    assert page.with_items(["a", "b"]) == Page(
        ["a", "b"], 10, 2, 30, "next-link", "previous-link", 3, True, True
    )


def test_a_total_that_is_a_boolean_is_no_total() -> None:
    envelope = {"candidates": [], "paging": {"totalRecords": True}}
    assert page_from_envelope(envelope, "candidates", offset=0, limit=5).total_records is None


def test_a_page_without_its_list_or_with_another_thing_says_which() -> None:
    with pytest.raises(KeyError) as missing:
        page_from_envelope({"status": "SUCCESS"}, "candidates", offset=0, limit=5)
    assert missing.value.args == ("candidates",)
    with pytest.raises(TypeError) as other:
        page_from_envelope({"candidates": "none"}, "candidates", offset=0, limit=5)
    assert str(other.value) == "'candidates' is a str, not a list"


SIGNED_URL = "https://api.mettl.com/v1/schedules/k/candidates?ak=A&ts=1&asgn=SECRET"
REDACTED_URL = "https://api.mettl.com/v1/schedules/k/candidates?ak=A&ts=1&asgn=REDACTED"


#: What a page's reader is told of the request whose answer it reads.
REQUEST: dict[str, Any] = {
    "items_key": "candidates",
    "key_field": "email",
    "method": "GET",
    "url": SIGNED_URL,
    "attempts": 3,
    "retry_after": 2.5,
}


def decode(status: int, body: bytes) -> dict[str, object]:
    return decode_listing(status, body, **REQUEST)


def test_a_refused_page_is_the_typed_error_of_the_request_that_got_it() -> None:
    body = b'{"status": "ERROR", "error": {"code": "E509", "message": "slow down"}}'
    with pytest.raises(RateLimitError) as caught:
        decode(429, body)
    error = caught.value
    assert (error.method, error.url, error.status) == ("GET", REDACTED_URL, 429)
    assert (error.attempts, error.retry_after) == (3, 2.5)


def test_a_page_whose_status_is_not_text_is_an_api_error() -> None:
    with pytest.raises(APIError) as caught:
        decode(200, b'{"status": 5, "candidates": []}')
    assert str(caught.value) == (
        "Mettl answered status 5 (GET /v1/schedules/k/candidates, HTTP 200, 3 attempts)"
    )


def test_a_record_that_is_not_utf8_fails_its_page_naming_the_request() -> None:
    body = b'{"status": "SUCCESS", "candidates": [{"email": "\xff"}]}'
    with pytest.raises(DecodeError) as caught:
        decode(200, body)
    error = caught.value
    assert str(error).startswith(
        "Mettl sent a page whose record 0 is not UTF-8 (byte 11: invalid start byte) "
        "(GET /v1/schedules/k/candidates, HTTP 200, 3 attempts)"
    )
    assert (error.method, error.url, error.status, error.attempts) == (
        "GET",
        REDACTED_URL,
        200,
        3,
    )
    assert error.path == "/v1/schedules/k/candidates"
    assert error.excerpt == body.decode("utf-8", "replace")


def test_a_record_that_cannot_be_read_says_so_when_read() -> None:
    record = RawRecord(b'{"n": 1e999999}')
    with pytest.raises(DecodeError) as caught:
        record.to_dict()
    assert str(caught.value).startswith(
        "a record Mettl sent cannot be read (number is infinity when parsed as double)"
    )
    assert caught.value.excerpt == '{"n": 1e999999}'


def test_a_raw_record_reads_as_a_mapping_and_shows_its_start() -> None:
    record = RawRecord(b'{"a": 1, "b": 2}')
    assert list(record) == ["a", "b"]
    assert repr(record) == 'RawRecord(b\'{"a": 1, "b": 2}\')'
    long = RawRecord(b'{"a": "' + b"x" * 60 + b'"}')
    assert repr(long) == 'RawRecord(b\'{"a": "' + "x" * 53 + "'...)"
    sixty = b'{"a": "' + b"x" * 51 + b'"}'
    assert len(sixty) == 60
    assert repr(RawRecord(sixty)) == f"RawRecord({sixty!r})"  # all of it: no "..."
    assert repr(RawRecord(sixty + b" ")) == f"RawRecord({sixty!r}...)"  # 61: cut
    assert RawRecord(b"[1, 2]").to_dict() == {}  # not an object: no fields
    assert RawRecord.from_mapping({"email": "a@x"}, "a@x").key == "a@x"


# -- typed pages: decoded in one pass, or read the raw way when they do not fit --------------


class Person(WireRecord, kw_only=True, gc=False):
    key_attribute: ClassVar[str | None] = "email"
    email: Any = None
    name: str


class Unkeyed(WireRecord, kw_only=True, gc=False):
    name: str


def decode_typed(status: int, body: bytes, record_type: type[WireRecord] = Person) -> Any:
    return decode_typed_listing(status, body, record_type=record_type, **REQUEST)


def test_a_typed_pages_records_are_known_by_their_key_if_text_or_a_number() -> None:
    body = (
        b'{"status": "SUCCESS", "candidates": [{"email": "a@x", "name": "A"},'
        b' {"email": 5, "name": "B"}, {"email": ["c@x"], "name": "C"}]}'
    )
    records = decode_typed(200, body)["candidates"]
    assert [type(r) for r in records] == [Person] * 3
    assert [r.key for r in records] == ["a@x", 5, None]
    assert [r.key for r in decode_typed(200, body, Unkeyed)["candidates"]] == [None] * 3


def test_a_typed_page_that_does_not_fit_is_read_raw_with_its_keys() -> None:
    body = b'{"status": "SUCCESS", "candidates": [{"email": "a@x", "name": "A"}, {"email": "b@x"}]}'
    records = decode_typed(200, body)["candidates"]
    assert [type(r) for r in records] == [RawRecord] * 2
    assert [r.key for r in records] == ["a@x", "b@x"]


def test_a_refused_typed_page_is_the_typed_error_of_its_request() -> None:
    body = b'{"status": "ERROR", "error": {"code": "E509", "message": "slow down"}}'
    with pytest.raises(RateLimitError) as caught:
        decode_typed(429, body)
    error = caught.value
    assert (error.method, error.url, error.attempts, error.retry_after) == (
        "GET",
        REDACTED_URL,
        3,
        2.5,
    )


@pytest.mark.parametrize("status", [b'"ERROR"', b"5"])
def test_a_typed_page_that_does_not_say_success_is_an_api_error(status: bytes) -> None:
    with pytest.raises(APIError, match="Mettl answered status"):
        decode_typed(200, b'{"status": ' + status + b', "candidates": []}')


def test_a_pages_links_are_kept_when_text_and_not_blank() -> None:
    paging = {"next": "?offset=5", "previous": "?offset=0", "totalRecords": 9}
    page = page_from_envelope({"candidates": [], "paging": paging}, "candidates", offset=5, limit=5)
    assert (page.next, page.previous) == ("?offset=5", "?offset=0")
    odd = {"next": 5, "previous": ""}
    page = page_from_envelope({"candidates": [], "paging": odd}, "candidates", offset=5, limit=5)
    assert (page.next, page.previous) == (None, None)
    odd = {"next": "", "previous": ["?offset=0"]}
    page = page_from_envelope({"candidates": [], "paging": odd}, "candidates", offset=5, limit=5)
    assert (page.next, page.previous) == (None, None)


def test_a_raw_record_needs_its_json_or_its_data() -> None:
    with pytest.raises(ValueError) as caught:
        RawRecord()
    assert str(caught.value) == "a RawRecord needs its JSON or its data"


def test_a_scanned_records_key_of_another_type_is_none() -> None:
    body = b'{"status": "SUCCESS", "candidates": [{"email": ["a@x"]}, {"email": "b@x"}]}'
    assert [r.key for r in decode(200, body)["candidates"]] == [None, "b@x"]


def test_a_typed_page_keeps_its_paging_block() -> None:
    body = (
        b'{"status": "SUCCESS", "candidates": [{"email": "a@x", "name": "A"}],'
        b' "paging": {"totalRecords": 7, "next": "?offset=1"}}'
    )
    envelope = decode_typed(200, body)
    assert envelope["paging"] == {"totalRecords": 7, "next": "?offset=1"}
