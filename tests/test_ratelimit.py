"""The adaptive rate, step by step on a clock the test moves: no sleeping, no wall clock."""

from __future__ import annotations

import collections
import heapq
import itertools
import math
from collections.abc import Callable

import attrs
import pytest

from mettl_async._ratelimit import (
    MIN_RATE,
    AdaptiveRate,
    CubicShape,
    RateChangeLog,
    RateWindow,
    TokenBucket,
)
from mettl_async.testing.state import FakeRateLimit

# -- the token bucket ---------------------------------------------------------------


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10.0, capacity=3.0, stamp=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait(0.0) == pytest.approx(0.1)
    assert bucket.wait(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1)
    assert not bucket.take(0.1)
    # idle for a long time: never more than the capacity
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_a_new_rate_counts_from_the_moment_it_is_set() -> None:
    bucket = TokenBucket(rate=1.0, capacity=10.0, tokens=0.0, stamp=0.0)
    bucket.set_rate(2.0, 100.0)  # two tokens flowed in at the old rate
    assert bucket.tokens == pytest.approx(2.0)
    bucket.refill(3.0)
    assert bucket.tokens == pytest.approx(102.0 if bucket.capacity > 102 else 10.0)
    bucket.set_rate(3.0, 1.0, capacity=4.0)
    assert bucket.tokens == 4.0  # a smaller bucket spills


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.5)])
def test_a_bad_bucket_is_refused(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate=rate, capacity=capacity)


def test_a_window_counts_the_last_span_seconds() -> None:
    window = RateWindow(1.0)
    assert window.rate(0.0) == 0.0
    for k in range(10):
        window.add(k * 0.1)
    assert window.rate(0.9) == pytest.approx(10 / 0.9)
    assert window.count(1.55) == 4  # 0.6 .. 0.9 are within the last second
    assert window.rate(5.0) == 0.0


# -- the adaptive rate --------------------------------------------------------------


def send(rate: AdaptiveRate, now: float, count: int = 1) -> None:
    for _ in range(count):
        assert rate.take(now)


def test_unlimited_until_refused() -> None:
    rate = AdaptiveRate(now=0.0, max_in_flight=16)
    assert (rate.rate, rate.learned, rate.delay(0.0), rate.concurrency) == (None, False, 0.0, 16)
    send(rate, 0.0, 100)
    for _k in range(100):
        rate.answered(0.05, sent_at=0.0, throttled=False)
    assert rate.rate is None


def test_a_ceiling_spaces_requests_and_is_never_exceeded() -> None:
    rate = AdaptiveRate(now=0.0, ceiling=10.0)
    assert rate.rate == 10.0
    assert rate.take(0.0)
    assert not rate.take(0.0)
    assert rate.delay(0.0) == pytest.approx(0.1)
    # a refusal, then a long quiet climb: still at most the ceiling
    rate.answered(0.1, sent_at=0.0, throttled=True)
    assert rate.rate is not None
    assert rate.rate < 10.0
    now, highest = 0.1, 0.0
    for _ in range(20_000):  # 200 s, sending whenever allowed
        now += 0.01
        if rate.take(now):
            rate.answered(now + 0.05, sent_at=now, throttled=False)
            highest = max(highest, rate.rate or 0.0)
    assert highest == rate.rate == 10.0


def test_a_refusal_cuts_the_rate_sent_by_beta() -> None:
    rate = AdaptiveRate(now=0.0, shape=CubicShape(beta=0.7))
    for k in range(40):  # 40 requests/s for a second
        send(rate, k / 40)
    rate.answered(1.0, sent_at=0.975, throttled=True)
    assert rate.learned
    assert rate.cuts == 1
    assert rate.rate == pytest.approx(0.7 * 40, rel=0.05)


def test_refusals_of_requests_sent_before_the_cut_are_not_counted_twice() -> None:
    rate = AdaptiveRate(now=0.0)
    send(rate, 0.0, 16)
    for _ in range(16):  # the whole first burst is refused
        rate.answered(0.05, sent_at=0.0, throttled=True)
    assert rate.cuts == 1
    first = rate.rate
    # a request sent after the cut is refused too: the rate was still too high
    assert rate.delay(0.05) > 0
    now = 0.05 + rate.delay(0.05)
    send(rate, now)
    rate.answered(now + 0.05, sent_at=now, throttled=True)
    assert rate.cuts == 2
    assert rate.rate is not None
    assert first is not None
    assert rate.rate < first


def test_the_rate_grows_back_along_the_cubic_then_beyond() -> None:
    shape = CubicShape(beta=0.7, scale=0.002)
    rate = AdaptiveRate(now=0.0, shape=shape)
    for k in range(20):
        send(rate, k / 20)
    rate.answered(1.0, sent_at=0.95, throttled=True)
    assert rate.rate is not None
    w_max = rate.rate / 0.7
    seen = []
    now = 1.0
    while now < 1.0 + 2 * shape.k:
        now += 0.01
        if rate.take(now):
            rate.answered(now + 0.001, sent_at=now, throttled=False)
        seen.append((now, rate.rate))
    # monotone growth, back to the refused rate after k seconds, then above it
    rates = [r for _, r in seen if r is not None]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(rates))
    at_k = next(r for t, r in seen if t - 1.0 >= shape.k)
    assert at_k == pytest.approx(w_max, rel=0.03)
    assert rates[-1] > 1.05 * w_max


def test_a_client_that_sends_little_does_not_see_its_rate_run_away() -> None:
    rate = AdaptiveRate(now=0.0)
    send(rate, 0.0, 20)
    rate.answered(0.05, sent_at=0.0, throttled=True)
    now = 0.05
    for _ in range(600):  # one request every half second for five minutes
        now += 0.5
        send(rate, now)
        rate.answered(now + 0.05, sent_at=now, throttled=False)
    assert rate.rate is not None
    assert rate.rate <= AdaptiveRate.PROBE_CAP * 2.0 + 1e-9


def test_a_cut_never_goes_below_the_floor() -> None:
    rate = AdaptiveRate(now=0.0)
    now = 0.0
    for _ in range(200):  # refused forever
        wait = rate.delay(now)
        now += wait
        send(rate, now)
        now += 0.05
        rate.answered(now, sent_at=now - 0.05, throttled=True)
    assert rate.rate == MIN_RATE


def test_in_flight_slots_follow_the_rate() -> None:
    rate = AdaptiveRate(now=0.0, max_in_flight=16)
    send(rate, 0.0, 16)
    for _ in range(16):
        rate.answered(0.2, sent_at=0.0, throttled=False)  # 200 ms answers
    assert rate.concurrency == 16  # not throttled: max_in_flight
    send(rate, 0.2, 1)
    rate.answered(0.4, sent_at=0.2, throttled=True)
    assert rate.rate is not None
    assert rate.concurrency == max(1, min(16, math.ceil(2 * rate.rate * rate.latency)))  # type: ignore[operator]
    assert rate.concurrency < 16
    slow = AdaptiveRate(now=0.0, ceiling=1.0)
    slow.take(0.0)
    slow.answered(0.01, sent_at=0.0, throttled=True)
    assert slow.concurrency == 1


def test_told_not_to_learn_it_keeps_the_ceiling_alone() -> None:
    rate = AdaptiveRate(now=0.0, learn=False)
    send(rate, 0.0, 10)
    rate.answered(0.1, sent_at=0.0, throttled=True)
    assert (rate.rate, rate.learned) == (None, False)


@pytest.mark.parametrize("kwargs", [{"ceiling": 0.0}, {"max_in_flight": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AdaptiveRate(now=0.0, **kwargs)  # type: ignore[arg-type]


def test_rate_changes_are_logged_sparingly() -> None:
    log = RateChangeLog(every=10.0, change=0.2)
    assert not log.should_log(0.0, None)
    assert log.should_log(0.0, 20.0)  # the first rate learned
    assert not log.should_log(1.0, 5.0)  # too soon
    assert not log.should_log(11.0, 21.0)  # too small a change
    assert log.should_log(11.0, 12.0)
    assert not log.should_log(12.0, 30.0)


# -- the fake's limits ---------------------------------------------------------------


def test_the_fakes_fixed_window_admits_n_per_window() -> None:
    limit = FakeRateLimit(window_limit=3, window=5.0)
    assert [limit.admit(t) for t in (0.0, 0.1, 0.2, 0.3, 4.9)] == [True, True, True, False, False]
    assert [limit.admit(t) for t in (5.0, 5.1, 5.2, 5.3)] == [True, True, True, False]


def test_the_fakes_refusals_are_mixed_in_the_share_asked() -> None:
    limit = FakeRateLimit(rate=1.0, http429_share=0.5)
    kinds = [limit.refusal() for _ in range(10)]
    assert collections.Counter(kinds) == {"E509": 5, "http429": 5}
    assert {FakeRateLimit(rate=1.0, http429_share=0.0).refusal() for _ in range(5)} == {"E509"}
    with pytest.raises(ValueError, match="http429_share"):
        FakeRateLimit(rate=1.0, http429_share=2.0)
    with pytest.raises(ValueError, match="burst"):
        FakeRateLimit(rate=1.0, burst=0.5)


# -- a whole export, simulated ---------------------------------------------------------


@attrs.frozen
class Simulated:
    seconds: float
    accepted: list[float]  # answer times
    refused: list[float]
    rate: AdaptiveRate

    def after(self, start: float) -> tuple[float, float]:
        """(useful requests/s, refused share) from ``start`` seconds on."""
        ok = sum(1 for t in self.accepted if t >= start)
        no = sum(1 for t in self.refused if t >= start)
        return ok / (self.seconds - start), no / (ok + no)


def simulate(
    admit: Callable[[float], bool],
    *,
    jobs: int,
    workers: int = 16,
    latency: float = 0.05,
    http429_share: float = 0.5,
) -> Simulated:
    """``workers`` calls take ``jobs`` requests in turn through the client's rate.

    As the transport does: a slot (the rate's concurrency), then a turn in
    arrival order when the bucket allows; a refused call tries again (after
    Retry-After: 1 for a 429). The server decides at half the latency.
    """
    rate = AdaptiveRate(now=0.0, max_in_flight=16)
    events: list[tuple[float, int, str, float]] = []
    order = 0

    def at(t: float, kind: str, value: float = 0.0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, order, kind, value))

    waiting_slot = 0
    waiting_turn = 0
    active = 0
    left = jobs - min(workers, jobs)
    owed = 0.0
    accepted: list[float] = []
    refused: list[float] = []
    wake_at = math.inf
    for _ in range(min(workers, jobs)):
        at(0.0, "call")

    def admit_slots(now: float) -> None:
        nonlocal waiting_slot, waiting_turn, active
        while waiting_slot and active < rate.concurrency:
            waiting_slot -= 1
            active += 1
            waiting_turn += 1
        turns(now)

    def turns(now: float) -> None:
        nonlocal waiting_turn, wake_at
        while waiting_turn:
            wait = rate.delay(now)
            if wait > 0 or not rate.take(now):
                if now + wait < wake_at:
                    wake_at = now + wait
                    at(wake_at, "turn")
                return
            waiting_turn -= 1
            at(now + latency / 2, "arrive", now)

    now = 0.0
    while events:
        now, _, kind, value = heapq.heappop(events)
        if kind == "call":
            waiting_slot += 1
            admit_slots(now)
        elif kind == "turn":
            if now >= wake_at:
                wake_at = math.inf
            turns(now)
        elif kind == "arrive":
            at(now + latency / 2, "ok" if admit(now) else "no", value)
        else:
            active -= 1
            rate.answered(now, sent_at=value, throttled=kind == "no")
            if kind == "ok":
                accepted.append(now)
                if left:
                    left -= 1
                    at(now, "call")
            else:
                refused.append(now)
                owed += http429_share
                if owed >= 1:
                    owed -= 1
                    at(now + 1.0, "call")  # Retry-After: 1
                else:
                    at(now, "call")
            admit_slots(now)
    assert len(accepted) == jobs
    return Simulated(now, accepted, refused, rate)


@pytest.mark.parametrize(
    ("limit", "burst", "jobs"), [(5.0, 3.0, 150), (20.0, 10.0, 600), (100.0, 50.0, 2000)]
)
def test_under_a_token_bucket_it_settles_at_the_limit(
    limit: float, burst: float, jobs: int
) -> None:
    """The benchmark's targets, on a simulated clock: >= 0.85 of the limit, <= 5% refused."""
    server = TokenBucket(rate=limit, capacity=burst, stamp=0.0)
    run = simulate(lambda now: server.take(now), jobs=jobs)
    useful, refused = run.after(5.0)
    assert useful >= 0.85 * limit
    assert refused <= 0.05
    assert run.rate.rate is not None
    assert 0.6 * limit <= run.rate.rate <= 1.5 * limit


def test_under_a_fixed_window_it_settles_at_the_windows_average() -> None:
    window = FakeRateLimit(window_limit=40, window=5.0)
    run = simulate(window.admit, jobs=250)
    useful, refused = run.after(5.0)
    assert useful >= 0.85 * 8.0
    assert refused <= 0.05
