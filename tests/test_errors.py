"""The error tree: one base class, readable messages, and nothing secret in them."""

from __future__ import annotations

import pickle

import pytest

import mettl_async
from mettl_async import (
    APIError,
    AuthenticationError,
    MettlError,
    RateLimitError,
    RequestError,
    ThrottledError,
    ValidationError,
    ValidationProblem,
)


def test_every_exported_error_derives_from_mettl_error() -> None:
    errors = [
        getattr(mettl_async, name)
        for name in mettl_async.__all__
        if isinstance(getattr(mettl_async, name), type)
        and issubclass(getattr(mettl_async, name), BaseException)
    ]
    assert len(errors) >= 15
    assert all(issubclass(error, MettlError) for error in errors)


def test_tree_is_drawn_in_the_module_docstring() -> None:
    doc = mettl_async._errors.__doc__ or ""
    for name in mettl_async._errors.__all__:
        if name not in ("ValidationProblem",):
            assert name in doc, name


def test_request_error_message_names_what_failed() -> None:
    error = AuthenticationError(
        "Authentication failed/Signature mismatch",
        method="GET",
        url="https://h/v2/schedules?ak=a&asgn=REDACTED",
        path="/v2/schedules",
        status=200,
        code="E401",
        attempts=1,
        hint="check the keys",
    )
    assert str(error) == (
        "E401 Authentication failed/Signature mismatch (GET /v2/schedules, HTTP 200, 1 attempt); "
        "check the keys"
    )
    assert "AuthenticationError(" in repr(error)


def test_errors_survive_pickling_with_their_fields() -> None:
    error = RateLimitError(
        "Rate limit exceeded", method="GET", path="/v2/x", status=429, code="E509", attempts=4
    )
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is RateLimitError
    assert (clone.code, clone.status, clone.attempts, clone.path) == ("E509", 429, 4, "/v2/x")


def test_throttled_error_is_a_rate_limit_error_that_keeps_its_deadline() -> None:
    error = ThrottledError(
        "kept refusing, and the 600 s throttle_deadline leaves no time",
        deadline=600.0,
        method="GET",
        path="/v2/x",
        status=429,
        code="E509",
        attempts=57,
    )
    assert isinstance(error, RateLimitError)
    assert str(error).startswith("E509 kept refusing, and the 600 s throttle_deadline")
    assert "57 attempts" in str(error)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is ThrottledError
    assert (clone.deadline, clone.attempts, clone.code) == (600.0, 57, "E509")


def test_validation_error_lists_every_problem() -> None:
    error = ValidationError(
        [
            ValidationProblem("sc.name", "must not be empty"),
            ValidationProblem("sc.access.type", "is required"),
        ],
        subject="schedule",
    )
    assert error.paths == ["sc.name", "sc.access.type"]
    assert "2 problems" in str(error)
    assert "sc.access.type: is required" in str(error)
    assert isinstance(error, ValueError)


def test_validation_errors_survive_pickling_with_their_problems() -> None:
    error = ValidationError([ValidationProblem("sc.name", "must not be empty")], subject="schedule")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is ValidationError
    assert clone.problems == error.problems
    assert clone.subject == "schedule"
    assert str(clone) == str(error)


@pytest.mark.parametrize("cls", [APIError, RequestError])
def test_request_errors_default_to_one_attempt(cls: type[RequestError]) -> None:
    assert cls("x").attempts == 1


def test_errors_with_their_own_fields_survive_pickling() -> None:
    """A ThrottledError keeps its deadline and a ResponseTooLargeError its cap across processes."""
    from mettl_async import ResponseTooLargeError, ThrottledError

    throttled = ThrottledError("refused", deadline=5.0, method="GET", code="E509", attempts=3)
    too_large = ResponseTooLargeError("too big", limit=10, path="/v2/schedules")
    back = pickle.loads(pickle.dumps(throttled))
    assert (type(back), back.deadline, back.code, back.attempts) == (ThrottledError, 5.0, "E509", 3)
    back_large = pickle.loads(pickle.dumps(too_large))
    assert (back_large.limit, back_large.path) == (10, "/v2/schedules")


def test_a_registration_error_is_of_the_class_its_errors_share_and_survives_pickling() -> None:
    from mettl_async import (
        AuthenticationError,
        RegistrationError,
        ServerError,
        ThrottledError,
    )

    down = ServerError("down", method="POST", path="/v2/schedules/k/candidates", code="E000")
    again = ServerError("still down", method="POST", path="/v2/schedules/k/candidates")
    refused = AuthenticationError("bad signature", code="E401")
    same = RegistrationError([down, again])
    assert isinstance(same, ServerError)
    assert (same.code, same.path, same.errors) == ("E000", down.path, (down, again))
    mixed = RegistrationError([down, refused])
    assert isinstance(mixed, APIError)
    assert not isinstance(mixed, ServerError | AuthenticationError)
    assert "E000 down" in str(mixed)
    assert "E401 bad signature" in str(mixed)
    slow = RegistrationError([ThrottledError("refused", deadline=5.0)] * 2)
    for error in (same, mixed, slow):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert (str(back), [str(e) for e in back.errors]) == (
            str(error),
            [str(e) for e in error.errors],
        )
    assert pickle.loads(pickle.dumps(slow)).deadline == 5.0
