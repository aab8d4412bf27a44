"""How fast the client may send: the adaptive rate and its token bucket, as pure math.

Mettl refuses a client that goes too fast (``E509``, HTTP 429) and publishes
no number. :class:`AdaptiveRate` learns one, as TCP's CUBIC learns a
bandwidth (and as botocore's "adaptive" retry mode does for AWS): after a
refusal the rate drops to ``beta`` times the rate that was refused, then
grows back along a cubic curve, slowly near the rate that was refused and
faster beyond it, until the next refusal. Unlike botocore's curve, this one
is relative to the refused rate, so that a limit of 5 requests a second is
probed as gently, in proportion, as one of 500.

The rate refused is measured, not guessed: between two refusals far enough
apart, what Mettl accepted is its limit (its bucket was empty at both), so
the cut lands just under the limit whatever burst Mettl allows. Three guards
keep it from collapsing under a run of refusals: it reacts once to the
requests sent at one rate (a refusal of a request sent before the last cut
is old news); a cut never goes below ``beta`` times the rate Mettl has been
accepting; and a request refused right after a cut, with nothing accepted
since, pauses all sending (half a second, doubling up to two): a fixed
window refuses everything until it ends, whatever the rate.

The rate paces request starts through a :class:`TokenBucket`; the number of
requests in flight follows it (:meth:`AdaptiveRate.concurrency`: about twice
the rate times the observed latency, at least 1, at most ``max_in_flight``).
A fixed ``ceiling`` (the client's ``requests_per_second``) is never exceeded.

Nothing here reads a clock or sleeps: every method takes ``now`` (seconds on
a monotonic clock) from its caller, so the behaviour is testable step by step.
"""

from __future__ import annotations

import collections
import math
from typing import Final

import attrs

__all__ = ["AdaptiveRate", "RateChangeLog", "RateWindow", "TokenBucket"]

#: Tokens short of a whole one that still count as one (floating-point dust).
_SLACK: Final = 1e-9
#: The lowest rate a cut goes to, in requests per second.
MIN_RATE: Final = 0.5


@attrs.define
class TokenBucket:
    """Tokens flow in at ``rate`` a second up to ``capacity``; each request takes one.

    The bucket starts full. ``stamp`` is when it was last brought up to date.
    """

    rate: float
    capacity: float
    tokens: float = attrs.field(default=attrs.Factory(lambda self: self.capacity, takes_self=True))
    stamp: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate!r}")
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity!r}")

    def refill(self, now: float) -> None:
        """Add the tokens that flowed in since the last update."""
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        if self.stamp is None or now > self.stamp:
            self.stamp = now

    def wait(self, now: float, amount: float = 1.0) -> float:
        """Seconds from ``now`` until ``amount`` tokens are there (0 if they are)."""
        self.refill(now)
        missing = amount - self.tokens
        return missing / self.rate if missing > _SLACK else 0.0

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens if they are there; whether it did."""
        self.refill(now)
        if amount - self.tokens > _SLACK:
            return False
        self.tokens = max(0.0, self.tokens - amount)
        return True

    def set_rate(self, now: float, rate: float, capacity: float | None = None) -> None:
        """Change the rate from ``now`` on (what flowed in before counts at the old rate)."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.refill(now)
        self.rate = rate
        if capacity is not None:
            self.capacity = max(1.0, capacity)
            self.tokens = min(self.tokens, self.capacity)


class RateWindow:
    """Events per second over the last ``span`` seconds (a sliding window)."""

    def __init__(self, span: float) -> None:
        if span <= 0:
            raise ValueError(f"span must be > 0, got {span!r}")
        self.span = span
        self._times: collections.deque[float] = collections.deque()
        self._first: float | None = None

    def add(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._times.append(now)
        self._expire(now)

    def seen(self, now: float) -> float:
        """Seconds since the first event (0 before it)."""
        return 0.0 if self._first is None else now - self._first

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def rate(self, now: float, *, min_span: float = 0.1) -> float:
        """Events per second; over the time since the first event while that is shorter."""
        self._expire(now)
        if self._first is None:
            return 0.0
        seen = min(self.span, max(min_span, now - self._first))
        return len(self._times) / seen

    def _expire(self, now: float) -> None:
        times, horizon = self._times, now - self.span
        while times and times[0] <= horizon:
            times.popleft()


@attrs.frozen
class CubicShape:
    """The curve of the rate after a cut (see :class:`AdaptiveRate`).

    After a refusal at rate ``w``, the rate is ``w * (1 + scale * (t - k)**3)``
    at ``t`` seconds, with ``k`` chosen so that it starts at ``beta * w``: back
    at ``w`` after ``k`` seconds (about 5 s with the defaults), then probing
    above, gently at first. A small ``scale`` makes the cycles between refusals
    long (few refusals), a large one adapts sooner to a limit that went up.
    """

    beta: float = 0.7
    scale: float = 0.002

    @property
    def k(self) -> float:
        return float(((1.0 - self.beta) / self.scale) ** (1.0 / 3.0))

    def rate(self, w_max: float, elapsed: float) -> float:
        return w_max * (1.0 + self.scale * (elapsed - self.k) ** 3)


class AdaptiveRate:
    """The rate a client allows itself, learned from Mettl's refusals (see the module).

    ``ceiling`` is a hard limit (``None``: none). Until the first refusal the
    rate is the ceiling (or no limit at all); from then on it is learned
    (unless ``learn`` is false: then the ceiling alone holds).
    Call :meth:`delay` and :meth:`take` before sending, :meth:`answered`
    when an answer (or a failure) comes back.
    """

    #: Seconds of sending that the measured send rate covers.
    SEND_SPAN: Final = 1.0
    #: Seconds of accepted answers that bound a cut from below.
    ACCEPTED_SPAN: Final = 10.0
    #: Seconds between two refusals from which what was accepted in between measures the limit.
    MIN_CYCLE: Final = 2.0
    #: ... but the rate refused counts for at least this share of itself (a limit
    #: with no burst refuses the moment it is passed, and what it accepted
    #: before then, slower, would underestimate it).
    REFUSED_SHARE: Final = 0.9
    #: Seconds of pause after a second refusal in a row, doubling with each one after ...
    PAUSE_FIRST: Final = 0.5
    #: ... up to this.
    PAUSE_MAX: Final = 2.0
    #: The rate never probes above this many times the rate actually sent.
    PROBE_CAP: Final = 2.0
    #: In-flight requests allowed, as a multiple of rate x latency.
    CONCURRENCY_HEADROOM: Final = 2.0
    #: Smoothing of the observed latency (weight of the newest answer).
    LATENCY_WEIGHT: Final = 0.2

    def __init__(
        self,
        *,
        now: float,
        ceiling: float | None = None,
        max_in_flight: int = 16,
        shape: CubicShape | None = None,
        min_rate: float = MIN_RATE,
        learn: bool = True,
    ) -> None:
        if ceiling is not None and ceiling <= 0:
            raise ValueError(f"ceiling must be > 0 or None, got {ceiling!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight!r}")
        self.ceiling = ceiling
        self.learn = learn
        self.max_in_flight = max_in_flight
        self.shape = shape or CubicShape()
        self.min_rate = min(min_rate, ceiling) if ceiling is not None else min_rate
        self._bucket: TokenBucket | None = (
            TokenBucket(ceiling, _capacity(ceiling), tokens=1.0, stamp=now)
            if ceiling is not None
            else None
        )
        self._sent = RateWindow(self.SEND_SPAN)
        self._accepted = RateWindow(self.ACCEPTED_SPAN)
        self._w_max: float | None = None  # the rate last refused; None: never refused
        self._last_cut = -math.inf
        self._accepted_total = 0  # answers accepted, ever
        self._accepted_at_cut = 0  # ... at the last cut
        self._latency: float | None = None
        self._streak = 0  # refusals in a row, each of a request sent after the last cut
        self._paused_until = -math.inf
        self.cuts = 0  #: how many times the rate was cut

    # -- what it allows ----------------------------------------------------------------

    @property
    def learned(self) -> bool:
        """Whether Mettl has refused a request for its rate (the rate is learned)."""
        return self._w_max is not None

    @property
    def rate(self) -> float | None:
        """Requests per second allowed now; ``None`` when nothing limits them."""
        return self._bucket.rate if self._bucket is not None else None

    @property
    def latency(self) -> float | None:
        """The smoothed seconds from sending a request to its answer, once one came."""
        return self._latency

    @property
    def concurrency(self) -> int:
        """How many requests may be in flight (or waiting for their turn to start)."""
        rate = self.rate
        if not self.learned or rate is None or self._latency is None:
            return self.max_in_flight
        wanted = math.ceil(self.CONCURRENCY_HEADROOM * rate * self._latency)
        return max(1, min(self.max_in_flight, wanted))

    def delay(self, now: float) -> float:
        """Seconds to wait before the next request may start (0: now)."""
        wait = self._bucket.wait(now) if self._bucket is not None else 0.0
        return max(wait, self._paused_until - now)

    def take(self, now: float) -> bool:
        """Start a request now if the rate allows it (spending a token); whether it did."""
        if now < self._paused_until:
            return False
        if self._bucket is not None and not self._bucket.take(now):
            return False
        self._sent.add(now)
        return True

    # -- what it learns ----------------------------------------------------------------

    def answered(self, now: float, *, sent_at: float, throttled: bool) -> None:
        """A request sent at ``sent_at`` was answered; ``throttled``: refused for its rate."""
        latency = max(0.0, now - sent_at)
        if self._latency is None:
            self._latency = latency
        else:
            self._latency += self.LATENCY_WEIGHT * (latency - self._latency)
        if throttled:
            self._throttled(now, sent_at)
        else:
            self._accepted.add(now)
            self._accepted_total += 1
            if sent_at >= self._last_cut:
                self._streak = 0
            if self._w_max is not None:
                self._probe(now)

    def _throttled(self, now: float, sent_at: float) -> None:
        if not self.learn or sent_at < self._last_cut:
            return  # told not to learn; or sent at the rate already cut: nothing new
        cycle = now - self._last_cut
        if self.learned and cycle >= self.MIN_CYCLE:
            # Mettl's bucket was empty at the last refusal and is empty again:
            # what it accepted in between is its rate, whatever its burst (and
            # a fixed window's whole window when one refusal ends each window).
            refused = (self._accepted_total - self._accepted_at_cut) / cycle
            if self.rate is not None:
                refused = max(refused, self.REFUSED_SHARE * self.rate)
        else:
            # Learning, or refused again right after a cut: from the rate sent,
            # but never below what Mettl has been accepting (a fixed window
            # refuses everything until it ends, whatever the rate).
            sending = self._sent.rate(now)
            current = self.rate
            refused = sending if current is None or not self.learned else min(sending, current)
            refused = max(refused, self._accepted.rate(now, min_span=1.0))
        refused = max(refused, self.min_rate)
        if self.ceiling is not None:
            refused = min(refused, self.ceiling)
        self._w_max = refused
        self._last_cut = now
        self._accepted_at_cut = self._accepted_total
        self.cuts += 1
        self._streak += 1
        if self._streak > 1:
            # Refused again at the rate just cut, with nothing accepted since: a
            # window that refuses everything until it ends, or a rate still far
            # too high. Pause everything, longer each time, rather than send into it.
            pause = min(self.PAUSE_MAX, self.PAUSE_FIRST * 2.0 ** (self._streak - 2))
            self._paused_until = max(self._paused_until, now + pause)
        new = max(self.min_rate, self.shape.beta * refused)
        current = self.rate
        self._set(now, new if current is None else min(current, new))

    def _probe(self, now: float) -> None:
        assert self._w_max is not None
        target = self.shape.rate(self._w_max, now - self._last_cut)
        # Do not let the rate run ahead of what is sent (a client that is not
        # busy proves nothing about a higher rate).
        target = min(target, self.PROBE_CAP * max(self._sent.rate(now), self.min_rate))
        if self.ceiling is not None:
            target = min(target, self.ceiling)
        self._set(now, max(self.min_rate, target))

    def _set(self, now: float, rate: float) -> None:
        if self._bucket is None:
            self._bucket = TokenBucket(rate, _capacity(rate), tokens=0.0, stamp=now)
        else:
            self._bucket.set_rate(now, rate, _capacity(rate))


def _capacity(rate: float) -> float:
    # Room for a late wake-up (a few ms of sleep overshoot) without losing
    # tokens, too little to burst: one and a half requests, or 5 ms' worth.
    return max(1.5, rate * 0.005)


@attrs.define
class RateChangeLog:
    """Whether a new rate is worth a log line: the first one, then a change of at
    least ``change`` (relative) no sooner than ``every`` seconds after the last line."""

    every: float = 10.0
    change: float = 0.2
    logged_rate: float | None = None
    logged_at: float = -math.inf

    def should_log(self, now: float, rate: float | None) -> bool:
        if rate is None:
            return False
        if self.logged_rate is not None:
            if now - self.logged_at < self.every:
                return False
            if abs(rate - self.logged_rate) < self.change * self.logged_rate:
                return False
        self.logged_rate = rate
        self.logged_at = now
        return True
