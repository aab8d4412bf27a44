"""The sans-I/O core: wire layout of signed requests and the meaning of Mettl's answers."""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
import pytest

from mettl_async import (
    APIError,
    AuthenticationError,
    DecodeError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TimestampError,
)
from mettl_async._protocol import (
    FORM_CONTENT_TYPE,
    Request,
    decode_response,
    encode_params,
    endpoint_url,
    parse_retry_after,
    path_segment,
    prepare,
    redact_url,
    server_clock_skew,
)
from mettl_async._signing import SigningKey, string_to_sign

from .conftest import load_json

DATA = load_json("vectors/signing.json")
AK, PK = DATA["public_key"], DATA["private_key"]
KEY = SigningKey(PK)


def test_get_puts_signed_params_in_the_query_encoded_once() -> None:
    """Article 11's second example, byte for byte: JSON encoded once, asgn encoded once."""
    request = Request(
        "GET",
        "https://api.mettl.com/v2/schedules",
        {
            "limit": "10",
            "offset": "20",
            "sort": "name",
            "sort_order": "asc",
            "filter": '{"webProctoring":{"enabled":true}}',
        },
    )
    prepared = prepare(request, public_key=AK, key=KEY, ts=1635976200)
    assert prepared.body is None
    query = prepared.url.split("?", 1)[1]
    assert "filter=%7B%22webProctoring%22%3A%7B%22enabled%22%3Atrue%7D%7D" in query
    assert "asgn=B9V7AL%2FSUGWYyKBtY%2FSMwkhx2%2F%2FjvIvWkIVlOxCXHV8%3D" in query


def test_post_sends_a_form_body_with_the_documented_content_type() -> None:
    """Article 8: ak, ts, assessments and asgn in a form-urlencoded UTF-8 body."""
    assessments = DATA["vectors"][5]["params"]["assessments"]
    request = Request("POST", "https://api.mettl.com/v2/assessments", {"assessments": assessments})
    prepared = prepare(request, public_key=AK, key=KEY, ts=1635976200)
    assert prepared.url == "https://api.mettl.com/v2/assessments"
    assert prepared.headers["Content-Type"] == FORM_CONTENT_TYPE
    assert prepared.body is not None
    fields = dict(parse_qsl(prepared.body.decode()))
    assert fields["assessments"] == assessments  # the one string that was signed
    assert fields["asgn"] == "Au9naXK5Da+SjQLkcLSHtMD8iJy9QzIXKB2oSmV8RrQ="
    assert b"Au9naXK5Da%2BSjQLkcLSHtMD8iJy9QzIXKB2oSmV8RrQ%3D" in prepared.body


def test_post_can_put_parameters_in_the_query_like_article_13() -> None:
    request = Request(
        "POST", "https://api.mettl.com/v2/assessments/1/schedules", {"sc": "{}"}, placement="query"
    )
    prepared = prepare(request, public_key=AK, key=KEY, ts=1)
    assert prepared.body is None
    assert "sc=%7B%7D" in prepared.url


def test_encoding_escapes_every_reserved_character_once() -> None:
    assert encode_params({"q": "a b+c&d=e%f/?\n"}) == "q=a%20b%2Bc%26d%3De%25f%2F%3F%0A"


def test_email_path_segment_is_encoded_and_signed_in_encoded_form() -> None:
    segment = path_segment("first+last?x@example.com")
    assert segment == "first%2Blast%3Fx@example.com"
    url = endpoint_url("https://api.mettl.com", "v2", f"/schedules/ak1/candidates/{segment}")
    assert string_to_sign("GET", url, {}).endswith("/candidates/first%2Blast%3Fx@example.com")


def test_a_body_excerpt_echoing_the_url_hides_asgn() -> None:
    """A proxy page that echoes the request URL shows no signature in the error."""
    body = b"<html>bad gateway for /v2/account?ak=a&asgn=SECRET%2B&ts=1</html>"
    with pytest.raises(DecodeError) as caught:
        decode_response(200, body, method="GET", url="u")
    assert "SECRET" not in caught.value.excerpt
    assert "asgn=REDACTED" in str(caught.value)


def test_redact_url_hides_asgn_only() -> None:
    url = "https://h/v2/a?ak=pub&ts=1&asgn=secret%2B%3D&limit=5"
    assert redact_url(url) == "https://h/v2/a?ak=pub&ts=1&asgn=REDACTED&limit=5"
    assert redact_url("ak=pub&asgn=x") == "ak=pub&asgn=REDACTED"
    assert redact_url("https://h/v2/a") == "https://h/v2/a"


def _body(code: str | None, message: str = "m") -> bytes:
    if code is None:
        return orjson.dumps({"status": "ERROR"})
    return orjson.dumps({"status": "ERROR", "error": {"code": code, "message": message}})


@pytest.mark.parametrize(
    ("code", "http_status", "expected"),
    [
        ("E401", 200, AuthenticationError),
        ("E504", 200, TimestampError),
        ("E422", 200, TimestampError),
        ("E403", 200, PermissionDeniedError),
        ("E404", 200, NotFoundError),
        ("E400", 200, InvalidRequestError),
        ("E405", 200, InvalidRequestError),
        ("E509", 200, RateLimitError),
        ("E503", 200, ServerError),
        ("E408", 200, ServerError),
        ("E000", 200, ServerError),
        ("E404", 500, NotFoundError),  # the Mettl code wins over the HTTP status
        ("E999", 429, RateLimitError),  # unknown code: the HTTP status decides
        ("E999", 502, ServerError),
        ("E999", 200, APIError),
        (None, 404, NotFoundError),
    ],
)
def test_error_envelope_maps_code_first_then_http_status(
    code: str | None, http_status: int, expected: type[APIError]
) -> None:
    with pytest.raises(expected) as caught:
        decode_response(http_status, _body(code), method="GET", url="https://h/v2/x?asgn=s")
    error = caught.value
    assert type(error) is expected
    assert error.code == code
    assert error.status == http_status
    assert error.method == "GET"
    assert error.path == "/v2/x"
    assert "asgn=REDACTED" in error.url


def test_error_in_http_200_is_not_data() -> None:
    with pytest.raises(AuthenticationError, match="Signature mismatch") as caught:
        decode_response(
            200, _body("E401", "Authentication failed/Signature mismatch"), method="GET", url="u"
        )
    assert "METTL_PRIVATE_KEY" in str(caught.value)  # a hint about the keys


def test_timestamp_error_hints_at_the_clock() -> None:
    with pytest.raises(TimestampError, match="clock"):
        decode_response(200, _body("E504", "Invalid Timestamp"), method="GET", url="u")


def test_success_envelope_is_returned_case_insensitively() -> None:
    assert decode_response(200, b'{"status":"success","x":1}', method="GET", url="u") == {
        "status": "success",
        "x": 1,
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>Bad Gateway</html>",
        b'{"status":"SUCCESS","candidates":[{"em',
        b"[1,2]",
        b'{"x":1}',
    ],
    ids=["empty", "html", "cut-short", "array", "no-status"],
)
def test_unreadable_body_is_a_decode_error_with_status_and_excerpt(body: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_response(200, body, method="GET", url="https://h/v2/x")
    assert caught.value.status == 200
    assert caught.value.excerpt == body[:200].decode()


def test_non_json_http_error_maps_by_status() -> None:
    with pytest.raises(ServerError) as caught:
        decode_response(503, b"<html>down</html>", method="GET", url="u", retry_after=3.0)
    assert caught.value.retry_after == 3.0


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7", now=0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_server_clock_skew_from_date_header() -> None:
    assert server_clock_skew("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 3600) == 3600.0
    assert server_clock_skew(None, now=0) is None
    assert server_clock_skew("garbage", now=0) is None
