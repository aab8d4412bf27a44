"""The retry policy: what is repeated, and how long it waits."""

from __future__ import annotations

import pytest

from mettl_async import (
    AuthenticationError,
    DecodeError,
    InvalidRequestError,
    MettlConnectionError,
    MettlTimeoutError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TimestampError,
)


def _refused() -> MettlConnectionError:
    error = MettlConnectionError("refused")
    error.request_sent = False
    return error


@pytest.mark.parametrize(
    ("error", "get_retried", "post_retried"),
    [
        (RateLimitError("E509"), True, True),
        (ServerError("E503"), True, False),
        (MettlConnectionError("dropped"), True, False),
        (_refused(), True, True),
        (MettlTimeoutError("slow"), True, False),
        (DecodeError("cut"), True, False),
        (AuthenticationError("E401"), False, False),
        (TimestampError("E504"), False, False),
        (InvalidRequestError("E400"), False, False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_what_is_retried(error: Exception, get_retried: bool, post_retried: bool) -> None:
    policy = RetryPolicy()
    assert policy.should_retry(error, attempt=1, idempotent=True) is get_retried  # type: ignore[arg-type]
    assert policy.should_retry(error, attempt=1, idempotent=False) is post_retried  # type: ignore[arg-type]


def test_attempts_bound_the_retries() -> None:
    policy = RetryPolicy(attempts=3)
    error = ServerError("E503")
    assert policy.should_retry(error, attempt=2, idempotent=True)
    assert not policy.should_retry(error, attempt=3, idempotent=True)
    assert not RetryPolicy.never().should_retry(error, attempt=1, idempotent=True)


def test_throttling_never_uses_up_the_attempts() -> None:
    """A rate-limit answer is retried whatever the count, and whatever the method."""
    for policy in (RetryPolicy(attempts=3), RetryPolicy.never()):
        for attempt in (1, 3, 1000):
            assert policy.should_retry(RateLimitError("E509"), attempt=attempt, idempotent=False)


def test_a_throttled_call_waits_for_retry_after_until_its_deadline() -> None:
    policy = RetryPolicy(retry_after_max=10.0)
    assert policy.throttle_delay(elapsed=0.0, deadline=600.0) == 0.0
    assert policy.throttle_delay(elapsed=5.0, deadline=600.0, retry_after=1.0) == 1.0
    assert policy.throttle_delay(elapsed=5.0, deadline=600.0, retry_after=300.0) == 10.0
    assert policy.throttle_delay(elapsed=1e6, deadline=None, retry_after=1.0) == 1.0
    # the wait would end past the deadline: give up now rather than sleep for nothing
    assert policy.throttle_delay(elapsed=599.5, deadline=600.0, retry_after=1.0) is None
    assert policy.throttle_delay(elapsed=600.5, deadline=600.0) is None
    assert policy.throttle_delay(elapsed=0.0, deadline=0.0) == 0.0
    assert (
        RetryPolicy(instant=True).throttle_delay(elapsed=0.0, deadline=1.0, retry_after=30.0) == 0.0
    )


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=4.0)
    assert policy.delay(1, rand=lambda: 1.0) == 0.5
    assert policy.delay(3, rand=lambda: 1.0) == 2.0
    assert policy.delay(10, rand=lambda: 1.0) == 4.0
    assert policy.delay(10, rand=lambda: 0.25) == 1.0
    assert policy.delay(10, rand=lambda: 0.0) == 0.0


def test_retry_after_is_obeyed_up_to_its_ceiling() -> None:
    policy = RetryPolicy(retry_after_max=10.0)
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=300.0) == 10.0


def test_instant_policy_never_waits() -> None:
    assert RetryPolicy(instant=True).delay(5, retry_after=30.0) == 0.0


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"backoff_initial": -1.0}])
def test_bad_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be >="):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
