"""How fast the client may send: the adaptive rate and its token bucket, as pure math.

Mettl refuses a client that goes too fast (``E509``, HTTP 429) and publishes
no number. :class:`AdaptiveRate` learns one. Each mechanism below has a test
in ``tests/test_ratelimit.py`` that fails without it.

1. **Slow start.** Until the first refusal nothing limits the rate, but only
   ``INITIAL_WINDOW`` requests are in flight at first, one more for each
   accepted answer (doubling every round trip, up to ``max_in_flight``): a
   server with a small burst refuses a few requests, not a whole window.
2. **The first refusal** gives a rough figure: what Mettl accepted so far,
   over at least ``FIRST_SPAN`` seconds (a burst allowance is spent at once).
   Answers still in flight add to it as they are accepted. From there the
   rate doubles every ``DOUBLING`` seconds until the next refusal.
3. **Measured cycles.** A refusal at least ``MIN_CYCLE`` seconds after the
   last measured one (or the first), with answers accepted since the last cut,
   measures the limit: Mettl's bucket was empty at both refusals, so what it
   accepted in between is its rate, whatever its burst (a fixed window's
   whole window). The rate refused counts for at least ``REFUSED_SHARE`` of
   itself when it was reached slowly, ``ROUGH_SHARE`` when reached by doubling.
4. **The cubic.** After a measured refusal the rate drops to ``beta`` times
   the rate refused, then grows back along a cubic curve, as TCP's CUBIC does
   (and botocore's "adaptive" retry mode for AWS): slowly near the rate
   refused, faster beyond it. Unlike botocore's curve this one is relative to
   the refused rate, so that a limit of 5 requests a second is probed as
   gently, in proportion, as one of 500. Growth counts from the first answer
   accepted after the cut, not from the cut: time spent refused or paused
   proves nothing.
5. **Guards.** A refusal of a request sent before the last cut is old news
   (the rate already reacted to it). Refused again soon after a cut, the rate
   drops by ``beta`` again but never below what Mettl has been accepting. A
   second refusal in a row, with nothing accepted since the cut, pauses all
   sending (``PAUSE_FIRST``, or ``PAUSE_ROUGH`` before the limit was measured,
   doubling up to ``PAUSE_MAX``): a fixed window
   refuses everything until it ends, whatever the rate. After a pause one
   request goes alone; the others wait for its answer (or two latencies). The
   first accepted after ``RESUME_AFTER`` refusals in a row resumes at what
   Mettl has been accepting over ``ACCEPTED_SPAN`` (a fixed window's average).
6. **Pacing.** The rate paces request starts through a :class:`TokenBucket`;
   the number of requests in flight follows it (:attr:`AdaptiveRate.concurrency`:
   ``CONCURRENCY_HEADROOM`` times the rate times the smoothed latency, at least
   1, at most ``max_in_flight``). The rate never grows above ``PROBE_CAP``
   times the rate actually sent (or where the last cut put it), nor above the
   ``ceiling`` (the client's ``requests_per_second``), nor goes below ``min_rate``.
7. **Clients sharing the key** (other processes, see ``_keyshare``) report what
   Mettl accepts from each (:meth:`AdaptiveRate.report`). Given theirs
   (:meth:`AdaptiveRate.share`), a measured refusal takes the client's fair
   part of the key's limit (those that send less keep what they use, the busy
   ones split the rest); a new client starts at its fair part, or at the key's
   limit learned before, instead of with a burst; a client well above its fair
   part slows down to it at once, one well below moves its curve towards it.

Nothing here reads a clock or sleeps: every method takes ``now`` (seconds on
a monotonic clock) from its caller, so the behaviour is testable step by step;
:class:`~mettl_async._pacer.Pacer` does the waiting.
"""

from __future__ import annotations

import collections
import math
from typing import Final

import attrs

__all__ = ["AdaptiveRate", "PeerRate", "RateChangeLog", "RateWindow", "TokenBucket"]

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

    def elapsed(self, w_max: float, rate: float) -> float:
        """The time on the curve of ``w_max`` at which it passes ``rate`` (at least 0)."""
        ratio = (rate / w_max - 1.0) / self.scale
        return max(0.0, self.k + math.copysign(abs(ratio) ** (1.0 / 3.0), ratio))


@attrs.frozen
class PeerRate:
    """What a client sharing the key (another process) reports of its rate."""

    #: Requests a second Mettl has been accepting from it.
    accepting: float
    #: Whether it sends as fast as its rate allows (it would take more).
    busy: bool
    #: What Mettl accepts from the key as a whole, as it last measured (None: not yet).
    limit: float | None = None


class AdaptiveRate:
    """The rate a client allows itself, learned from Mettl's refusals (see the module).

    ``ceiling`` is a hard limit (``None``: none). Until the first refusal the
    rate is the ceiling (or no limit at all); from then on it is learned
    (unless ``learn`` is false: then the ceiling alone holds).
    Call :meth:`delay` and :meth:`take` before sending, :meth:`answered`
    when an answer (or a failure) comes back; :meth:`share` with what the
    other clients of the key report (:meth:`report`), if they can be heard.
    """

    #: Seconds of sending that the measured send rate covers.
    SEND_SPAN: Final = 1.0
    #: Seconds of accepted answers that the accepted rate covers ...
    ACCEPTED_SPAN: Final = 10.0
    #: ... or at least this many, early on (a burst allowance is spent at once).
    FIRST_SPAN: Final = 1.0
    #: Seconds between two refusals from which what was accepted in between measures the limit.
    MIN_CYCLE: Final = 2.0
    #: ... and, reached slowly, the rate refused counts for at least this share of itself
    #: (a limit with no burst refuses the moment it is passed, and what it accepted
    #: before then, slower, would underestimate it) ...
    REFUSED_SHARE: Final = 0.9
    #: ... or this share, reached fast (from a rough figure).
    ROUGH_SHARE: Final = 0.5
    #: From a rough figure (the first refusal's), the rate doubles every this many seconds.
    DOUBLING: Final = 1.5
    #: Seconds of pause after a second refusal in a row, doubling with each one after ...
    PAUSE_FIRST: Final = 0.5
    #: ... (this many before the limit was measured: right after the first refusal the
    #: requests still in flight at the old rate empty a bucket that refills soon) ...
    PAUSE_ROUGH: Final = 0.25
    #: ... up to this.
    PAUSE_MAX: Final = 2.0
    #: The rate never probes above this many times the rate actually sent.
    PROBE_CAP: Final = 2.0
    #: Busy: sending at least this share of the rate allowed.
    BUSY_SHARE: Final = 0.7
    #: Requests in flight at first, one more per accepted answer, until the first
    #: refusal (slow start; 0: ``max_in_flight`` at once).
    INITIAL_WINDOW: Final = 4
    #: After this many refusals in a row, the first request through resumes at the
    #: accepted rate.
    RESUME_AFTER: Final = 3
    #: In-flight requests allowed, as a multiple of rate x latency.
    CONCURRENCY_HEADROOM: Final = 2.0
    #: Smoothing of the observed latency (weight of the newest answer).
    LATENCY_WEIGHT: Final = 0.2
    #: A rate this far above (or below) its fair share among busy peers is moved to it.
    FAIR_TOLERANCE: Final = 0.15

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
        self._accepted_total = 0  # answers accepted, ever
        self._latency: float | None = None
        # What was learned: the rate refused (None: never refused), whether it was
        # measured over a whole cycle, the rate the last cut set, and when.
        self._w_max: float | None = None
        self._measured = False
        self._base = 0.0
        self._last_cut = -math.inf
        self._grow_from = math.inf  # growth counts from the first answer accepted after a cut
        # The refusal from which the accepted answers measure the limit.
        self._anchor = math.inf
        self._accepted_at_anchor = 0
        self._first_refusal = math.inf
        self._first_span = self.FIRST_SPAN
        self._streak = 0  # refusals in a row, each of a request sent after the last cut
        self._paused_until = -math.inf
        self._probe_next = False  # the next request after a pause goes alone
        self._probe_sent: float | None = None  # ... and when it went
        self._peers: tuple[PeerRate, ...] = ()
        self._key_limit: float | None = None  # the key's rate, as last measured here
        self.cuts = 0  #: how many times the rate was cut

    # -- what it allows ----------------------------------------------------------------

    @property
    def learned(self) -> bool:
        """Whether Mettl has refused a request for its rate (the rate is learned)."""
        return self._w_max is not None

    @property
    def limit(self) -> float | None:
        """The rate Mettl refused last, as estimated (``None``: never refused)."""
        return self._w_max

    @property
    def measured(self) -> bool:
        """Whether :attr:`limit` was measured over a cycle (not a rough first figure)."""
        return self._measured

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
        if not self.learned:
            if self.INITIAL_WINDOW and self.learn:
                # Slow start: a few requests at first, one more per accepted answer.
                return min(self.max_in_flight, self.INITIAL_WINDOW + self._accepted_total)
            return self.max_in_flight
        if rate is None or self._latency is None:
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
        if self._probe_next:
            # The first request after a pause goes alone: the others wait for its
            # answer (or two latencies, if it never comes) rather than all be refused.
            # (A pause follows refusals: their answers gave a latency.)
            assert self._latency is not None
            self._probe_next = False
            self._probe_sent = now
            self._paused_until = now + min(self.PAUSE_MAX, 2.0 * self._latency)
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
            return
        self._accepted.add(now)
        self._accepted_total += 1
        if sent_at == self._probe_sent:
            self._probe_sent = None
            self._paused_until = min(self._paused_until, now)  # the probe went through
        if sent_at >= self._last_cut:
            if self._streak >= self.RESUME_AFTER:
                # Through after a run of refusals (a window that refused everything
                # until it ended): go on at what Mettl has been accepting, a fixed
                # window's own average, not at the rate the refusals left.
                self._streak = 0
                self._adopt(now, self._bounded(self.accepting(now)))
                return
            self._streak = 0
        if self._w_max is None:
            return
        if not self._measured and sent_at < self._first_refusal:
            # Sent before the first refusal, answered after it: the rough figure grows.
            self._base += 1.0 / self._first_span
        elif sent_at >= self._last_cut and self._grow_from == math.inf:
            self._grow_from = now
        self._probe(now)

    def accepting(self, now: float) -> float:
        """Requests a second Mettl has accepted lately (over ``ACCEPTED_SPAN``)."""
        return self._accepted.rate(now, min_span=self.FIRST_SPAN)

    def _throttled(self, now: float, sent_at: float) -> None:
        if not self.learn or sent_at < self._last_cut:
            return  # told not to learn; or sent at the rate already cut: nothing new
        current = self.rate
        accepting = self.accepting(now)
        span = now - self._anchor
        measured = False
        moved = True
        if self._w_max is None:
            # The first refusal: what Mettl accepted so far is all there is to go
            # by, a rough figure; answers still to come add to it.
            self._first_span = max(self._accepted.seen(now), self.FIRST_SPAN)
            self._first_refusal = now
            refused = accepting
        elif self._streak == 0 and span >= self.MIN_CYCLE:
            # Mettl's bucket was empty at the anchor's refusal and is empty again:
            # what it accepted in between is its rate, whatever its burst (and a
            # fixed window's whole window when one refusal ends each window).
            refused = (self._accepted_total - self._accepted_at_anchor) / span
            if current is not None:
                # The rate refused was reached slowly (along the cubic): it is near
                # the limit; or fast (doubling from a rough figure): it overshot, but
                # not by much.
                share = self.REFUSED_SHARE if self._measured else self.ROUGH_SHARE
                refused = max(refused, share * current)
            measured = True
            if self._peers:
                # The key's limit is shared: what they all got is the key's rate,
                # and this client's part of it is its fair share.
                self._key_limit = accepting + sum(p.accepting for p in self._peers)
                fair = self.fair_share()
                if fair is not None:
                    refused = fair
            else:
                self._key_limit = refused
        else:
            # Refused again soon after a cut: too soon to measure, the rate is still
            # too high; but never below what Mettl has been accepting. (Refused before,
            # the rate is set.)
            assert current is not None
            refused = max(self.shape.beta * current, accepting)
            measured = self._measured
            moved = False
        refused = self._bounded(refused)
        self._w_max = refused
        self._measured = measured
        self._last_cut = now
        self._grow_from = math.inf
        if moved:
            self._anchor = now
            self._accepted_at_anchor = self._accepted_total
        self.cuts += 1
        self._streak += 1
        if self._streak > 1:
            # Refused again at the rate just cut, with nothing accepted since: a
            # window that refuses everything until it ends, or a rate still far
            # too high. Pause everything, longer each time, rather than send into it;
            # then one request alone finds out whether it is over.
            first = self.PAUSE_FIRST if self._measured else self.PAUSE_ROUGH
            pause = min(self.PAUSE_MAX, first * 2.0 ** (self._streak - 2))
            self._paused_until = max(self._paused_until, now + pause)
            self._probe_next = True
        new = self.shape.beta * refused if measured else refused
        new = max(self.min_rate, new)
        if current is not None:
            new = min(current, new)
        self._base = new
        self._set(now, new)

    def _probe(self, now: float) -> None:
        assert self._w_max is not None
        elapsed = max(0.0, now - self._grow_from)
        if self._measured:
            target = self.shape.rate(self._w_max, elapsed)
        else:
            # From a rough figure: grow fast, until a refusal measures the limit.
            target = self._base * 2.0 ** (elapsed / self.DOUBLING)
        # Do not let the rate run ahead of what is sent (a client that is not
        # busy proves nothing about a higher rate), nor below where the cut put it.
        target = min(target, max(self.PROBE_CAP * self._sent.rate(now), self._base))
        if self.ceiling is not None:
            target = min(target, self.ceiling)
        self._set(now, max(self.min_rate, target))

    # -- clients sharing the key -------------------------------------------------------

    def busy(self, now: float) -> bool:
        """Whether it sends about as fast as its rate allows (unlimited: at all)."""
        rate = self.rate
        sending = self._sent.rate(now)
        return sending > 0 if rate is None else sending >= self.BUSY_SHARE * rate

    def report(self, now: float) -> PeerRate:
        """What to tell the other clients of the key."""
        return PeerRate(accepting=self.accepting(now), busy=self.busy(now), limit=self._key_limit)

    def fair_share(self) -> float | None:
        """This client's part of what Mettl accepts from the key, among busy peers:
        those that send less keep what they use, the busy ones split the rest.
        ``None`` without a busy peer, or before any of them measured the limit."""
        peers = self._peers
        busy = sum(1 for p in peers if p.busy)
        if not busy:
            return None
        limits = [p.limit for p in peers if p.limit is not None]
        if self._key_limit is not None:
            limits.append(self._key_limit)
        if not limits:
            return None  # nobody was refused: the key may have no limit at all
        total = sum(limits) / len(limits)
        light = sum(p.accepting for p in peers if not p.busy)
        return self._bounded((total - light) / (busy + 1))

    def share(
        self, now: float, peers: tuple[PeerRate, ...], *, learned: float | None = None
    ) -> None:
        """What the other clients of the key report now (and ``learned``: the key's
        rate learned before, if known). A client new to the key starts at its
        fair part, not with a burst; a learned one moves its plateau to its fair
        part, and slows down to it at once if it is well above."""
        self._peers = peers
        if not self.learn:
            return
        fair = self.fair_share()
        if self._w_max is None:
            start = fair if fair is not None else learned
            if start is not None and start > 0:
                self._adopt(now, self._bounded(start))
            return
        current = self.rate
        if fair is None or current is None or not self._measured:
            return
        if current > (1.0 + self.FAIR_TOLERANCE) * fair:
            self._adopt(now, fair)
        elif abs(self._w_max - fair) > self.FAIR_TOLERANCE * fair:
            # Keep the rate where it is on a curve towards the fair part.
            self._w_max = fair
            if self._grow_from != math.inf:
                self._grow_from = now - self.shape.elapsed(fair, current)

    def _adopt(self, now: float, rate: float) -> None:
        """Go on at ``rate`` as if it were measured: the cubic's plateau, then beyond."""
        self._w_max = rate
        self._measured = True
        self._base = rate
        self._grow_from = now - self.shape.k
        if self._anchor == math.inf:
            self._anchor = now
            self._accepted_at_anchor = self._accepted_total
        self._set(now, rate)

    def _bounded(self, rate: float) -> float:
        rate = max(rate, self.min_rate)
        return min(rate, self.ceiling) if self.ceiling is not None else rate

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
