"""When to retry a failed request, and how long to wait: a small pure policy."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from ._errors import (
    DecodeError,
    MettlConnectionError,
    MettlError,
    MettlTimeoutError,
    RateLimitError,
    ServerError,
)
from ._numbers import is_finite_number, is_whole_number

__all__ = ["RetryPolicy"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    # ``nan`` compares false with everything: it would pass ``value < 0`` and then
    # make every wait ``nan`` (``inf``: wait forever). Only finite seconds are taken.
    if not is_finite_number(value) or value < 0:
        raise ValueError(f"{attribute.name} must be >= 0 (a finite number), got {value!r}")


@attrs.frozen
class RetryPolicy:
    """Capped exponential backoff with full jitter, honouring ``Retry-After``.

    ``attempts`` counts every try, the first included (``attempts=1`` never
    retries). The wait before retry *n* is uniform in
    ``[0, min(backoff_max, backoff_initial * 2**(n-1))]``, unless the server sent
    ``Retry-After``, which is obeyed up to ``retry_after_max`` seconds.
    ``instant=True`` keeps every decision but waits zero seconds (for tests):
    no backoff and no ``Retry-After``; the client's learned rate still paces it.

    What is retried: for GET and DELETE, connection failures, timeouts, rate
    limits, transient server errors (E503, E408, E000, HTTP 5xx) and unreadable
    bodies. For POST, only what proves the server did not act: a rate-limit
    answer, or a connection refused before anything was sent.

    Throttling is not failure: a rate-limit answer (E509, HTTP 429) never uses
    up ``attempts``. A throttled call is tried again after the server's
    ``Retry-After`` (if any, up to ``retry_after_max``), at the client's learned
    rate, for as long as its deadline allows (:meth:`throttle_delay`).
    ``learn_rate=False`` keeps the client from slowing down to the rate it
    learns from those refusals (a ``requests_per_second`` ceiling still
    holds): for tests against a fake server that throttles on purpose, with
    ``instant=True`` to retry at once. Real use wants the default, ``True``.
    """

    attempts: int = attrs.field(default=4)
    backoff_initial: float = attrs.field(default=0.5, validator=_positive)
    backoff_max: float = attrs.field(default=30.0, validator=_positive)
    retry_after_max: float = attrs.field(default=120.0, validator=_positive)
    instant: bool = False
    learn_rate: bool = True

    @attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not is_whole_number(value) or value < 1:
            raise ValueError(f"attempts must be >= 1 (a whole number), got {value!r}")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(attempts=1)

    def should_retry(self, error: MettlError, *, attempt: int, idempotent: bool) -> bool:
        """Whether to try again after ``error`` ended attempt number ``attempt``.

        ``attempt`` counts the attempts that failed for other reasons than the
        rate: a rate-limit answer is always retried (see :meth:`throttle_delay`).
        """
        if isinstance(error, RateLimitError):
            return True  # the server refused before acting, whatever the method
        if attempt >= self.attempts:
            return False
        if isinstance(error, MettlConnectionError):
            return idempotent or not error.request_sent
        if isinstance(error, MettlTimeoutError | ServerError | DecodeError):
            return idempotent
        return False

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if self.instant:
            return 0.0
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        cap = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return float(cap * rand())

    def throttle_delay(
        self, *, elapsed: float, deadline: float | None, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before a throttled call tries again, or ``None``: give up.

        ``elapsed`` is how long the call has been going, ``deadline`` the most it
        may take (``None``: no limit). A wait is the server's ``Retry-After``
        (up to ``retry_after_max``), or none: the client's learned rate paces
        the next attempt. The call gives up when the wait would end after the
        deadline.
        """
        wait = (
            0.0 if self.instant or retry_after is None else min(retry_after, self.retry_after_max)
        )
        if deadline is not None and elapsed + wait > deadline:
            return None
        return max(0.0, wait)
