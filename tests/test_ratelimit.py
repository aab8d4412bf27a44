"""The adaptive rate and the pacer that waits for it, on clocks the test moves.

The rate (``_ratelimit``) is pure: each of its mechanisms (numbered in its module
docstring) is driven step by step here. The pacer (``_pacer``) and the transport
run on a virtual-clock event loop (``benchmarks/virtual.py``): the real code,
not a copy, with sleeps that take no time. Whole exports against the fake
Mettl's own limits run there too, deterministically.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math

import pytest

from benchmarks.virtual import Board, Deadlock, Run, VirtualLoop, run_virtual, simulate
from mettl_async._pacer import Pacer, PastDeadline
from mettl_async._ratelimit import (
    MIN_RATE,
    AdaptiveRate,
    CubicShape,
    PeerRate,
    RateChangeLog,
    RateWindow,
    TokenBucket,
)
from mettl_async.testing.state import FakeRateLimit

LATENCY = 0.05

# -- the token bucket ---------------------------------------------------------------


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10.0, capacity=3.0, stamp=0.0)
    assert bucket.wait(0.0) == 0.0  # a token is there: no wait (not a negative one)
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
    assert bucket.tokens == pytest.approx(10.0)
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


def test_the_cubic_passes_each_rate_once() -> None:
    shape = CubicShape(beta=0.7, scale=0.002)
    assert shape.rate(10.0, 0.0) == pytest.approx(7.0)
    assert shape.rate(10.0, shape.k) == pytest.approx(10.0)
    for rate in (7.0, 8.5, 10.0, 12.0):
        assert shape.rate(10.0, shape.elapsed(10.0, rate)) == pytest.approx(rate)
    assert shape.elapsed(10.0, 1.0) == 0.0  # below the curve's start: its start


# -- the adaptive rate, step by step ----------------------------------------------------


def accept(rate: AdaptiveRate, now: float, *, sent_at: float | None = None) -> None:
    rate.answered(now, sent_at=now - LATENCY if sent_at is None else sent_at, throttled=False)


def refuse(rate: AdaptiveRate, now: float, *, sent_at: float | None = None) -> None:
    rate.answered(now, sent_at=now - LATENCY if sent_at is None else sent_at, throttled=True)


def send_as_allowed(rate: AdaptiveRate, start: float, end: float) -> int:
    """Send whenever the rate allows from ``start`` to ``end``, every request accepted
    ``LATENCY`` later (answered in order); how many were answered by ``end``."""
    now, answered, answers = start, 0, collections.deque[float]()
    while now < end:
        while answers and answers[0] + LATENCY <= now:
            accept(rate, answers[0] + LATENCY, sent_at=answers.popleft())
            answered += 1
        if rate.take(now):
            answers.append(now)
        now += 0.001
    return answered


def first_refusal(rate: AdaptiveRate, accepted: int, *, at: float = 0.1) -> None:
    """``accepted`` requests sent at 0 are accepted, then one is refused at ``at``."""
    for _ in range(accepted + 1):
        assert rate.take(0.0)
    for _ in range(accepted):
        accept(rate, at, sent_at=0.0)
    refuse(rate, at, sent_at=0.0)


def test_unlimited_until_refused() -> None:
    rate = AdaptiveRate(now=0.0, max_in_flight=16)
    assert (rate.rate, rate.learned, rate.limit, rate.delay(0.0)) == (None, False, None, 0.0)
    for k in range(100):
        assert rate.take(k * 0.001)
        accept(rate, k * 0.001 + LATENCY, sent_at=k * 0.001)
    assert rate.rate is None
    assert rate.concurrency == 16


def test_slow_start_opens_a_few_slots_then_one_more_per_accepted_answer() -> None:
    """(1) A server with a small burst refuses a few requests, not the whole window."""
    rate = AdaptiveRate(now=0.0, max_in_flight=16)
    window = AdaptiveRate.INITIAL_WINDOW
    assert 1 <= window < 16
    assert rate.concurrency == window
    for k in range(1, 20):
        accept(rate, 0.05 * k)
        assert rate.concurrency == min(16, window + k)
    # a refusal ends it: the slots follow the learned rate from then on
    refuse(rate, 2.0)
    assert rate.concurrency == max(1, math.ceil(2 * rate.rate * rate.latency))  # type: ignore[operator]
    # a rate that is told not to learn never starts slowly
    assert AdaptiveRate(now=0.0, max_in_flight=16, learn=False).concurrency == 16


def test_a_ceiling_spaces_requests_and_is_never_exceeded() -> None:
    rate = AdaptiveRate(now=0.0, ceiling=10.0)
    assert rate.rate == 10.0
    assert rate.take(0.0)
    assert not rate.take(0.0)
    assert rate.delay(0.0) == pytest.approx(0.1)
    refuse(rate, 0.1, sent_at=0.0)
    assert rate.rate is not None
    assert rate.rate < 10.0
    now, highest = 0.1, 0.0
    for _ in range(20_000):  # 200 s, sending whenever allowed
        now += 0.01
        if rate.take(now):
            accept(rate, now + 0.05, sent_at=now)
            highest = max(highest, rate.rate or 0.0)
    assert highest == rate.rate == 10.0


def test_the_first_refusal_gives_a_rough_figure_from_what_was_accepted() -> None:
    """(2) Six accepted in the first 0.1 s count as six a second (FIRST_SPAN: 1 s), and
    answers of that first burst accepted after the refusal add to it."""
    rate = AdaptiveRate(now=0.0)
    for _ in range(8):
        assert rate.take(0.0)
    for _ in range(6):
        accept(rate, 0.1, sent_at=0.0)
    refuse(rate, 0.1, sent_at=0.0)
    assert (rate.learned, rate.measured) == (True, False)
    assert rate.limit == rate.rate == pytest.approx(6.0 / AdaptiveRate.FIRST_SPAN)
    accept(rate, 0.11, sent_at=0.0)  # sent before the refusal, accepted after it
    assert rate.rate == pytest.approx(7.0)


def test_a_first_refusal_after_seconds_of_answers_divides_by_those_seconds() -> None:
    rate = AdaptiveRate(now=0.0)
    for k in range(30):  # 30 answers over 3 s
        assert rate.take(k * 0.1)
        accept(rate, k * 0.1 + LATENCY, sent_at=k * 0.1)
    refuse(rate, 3.0)
    assert rate.rate == pytest.approx(30 / (2.9 + LATENCY - LATENCY), rel=0.05)
    # an answer sent before the refusal, accepted after it, adds one over those seconds
    # (2.95 of them, from the first answer to the refusal), not one over FIRST_SPAN
    before = rate.rate
    accept(rate, 3.01, sent_at=2.99)
    assert rate.rate == pytest.approx(before + 1 / 2.95)


def test_from_a_rough_figure_the_rate_doubles_until_the_next_refusal() -> None:
    """(2) Doubling every DOUBLING seconds, counted from the first accepted answer."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6)
    assert rate.rate == pytest.approx(6.0)
    doubling = AdaptiveRate.DOUBLING
    send_as_allowed(rate, 0.1, 1.0)
    before = rate.rate
    assert before is not None
    assert before > 6.0
    send_as_allowed(rate, 1.0, 1.0 + doubling)
    assert rate.rate == pytest.approx(2 * before, rel=0.05)
    send_as_allowed(rate, 1.0 + doubling, 1.0 + 2 * doubling)
    assert rate.rate == pytest.approx(4 * before, rel=0.05)


def test_a_refusal_a_cycle_after_the_last_measures_the_limit() -> None:
    """(3) What Mettl accepted between two refusals MIN_CYCLE apart is its rate; (4) the
    cut lands at beta times it."""
    rate = AdaptiveRate(now=0.0, shape=CubicShape(beta=0.7))
    first_refusal(rate, 6)
    accepted = send_as_allowed(rate, 0.1, 3.1)
    current = rate.rate
    assert current is not None
    refuse(rate, 3.1)
    measured = accepted / 3.0
    assert rate.measured
    assert rate.limit == pytest.approx(max(measured, AdaptiveRate.ROUGH_SHARE * current), rel=0.02)
    assert rate.limit == pytest.approx(measured, rel=0.02)  # the measure, not the floor
    assert rate.rate == pytest.approx(0.7 * measured, rel=0.02)


def test_a_rate_reached_slowly_counts_for_most_of_itself_when_refused() -> None:
    """(3) Along the cubic the rate refused is near the limit: at least REFUSED_SHARE of it,
    even if little was accepted in the cycle (a limit with no burst)."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6)
    send_as_allowed(rate, 0.1, 3.1)
    refuse(rate, 3.1)
    assert rate.measured
    send_as_allowed(rate, 3.1, 8.0)
    current = rate.rate
    assert current is not None
    refuse(rate, 12.0)  # four quiet seconds: the cycle's average is far below the rate
    assert rate.limit == pytest.approx(AdaptiveRate.REFUSED_SHARE * current)


def test_a_rate_reached_fast_counts_for_half_of_itself_when_refused() -> None:
    """(3) Doubling overshoots: the rate refused counts for ROUGH_SHARE of itself."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6)
    send_as_allowed(rate, 0.1, 6.1)
    current = rate.rate
    assert current is not None
    refuse(rate, 16.0)  # ten quiet seconds
    assert rate.limit == pytest.approx(AdaptiveRate.ROUGH_SHARE * current)


def measured_rate(shape: CubicShape | None = None) -> tuple[AdaptiveRate, float]:
    """A rate just cut after a measured cycle, and the time of the cut."""
    rate = AdaptiveRate(now=0.0, shape=shape)
    first_refusal(rate, 6)
    send_as_allowed(rate, 0.1, 3.1)
    refuse(rate, 3.1)
    assert rate.measured
    return rate, 3.1


def test_after_a_measured_refusal_the_rate_grows_back_along_the_cubic_then_beyond() -> None:
    """(4) Back at the rate refused k seconds after the first accepted answer, then above."""
    shape = CubicShape(beta=0.7, scale=0.002)
    rate, now = measured_rate(shape)
    w_max = rate.limit
    assert w_max is not None
    seen = []
    first = now + 0.05
    while now < first + 2 * shape.k:
        now += 0.01
        if rate.take(now):
            accept(rate, now + 0.001, sent_at=now)
        seen.append((now, rate.rate))
    rates = [r for _, r in seen if r is not None]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(rates))
    at_k = next(r for t, r in seen if t - first >= shape.k)
    assert at_k == pytest.approx(w_max, rel=0.03)
    assert rates[-1] > 1.05 * w_max


def test_growth_counts_from_the_first_answer_accepted_after_the_cut() -> None:
    """(4) Seconds spent refused or paused prove nothing: the curve starts when an answer
    is accepted again."""
    rate, cut = measured_rate()
    start = rate.rate
    assert start is not None
    refuse(rate, cut + 0.1, sent_at=cut - 1.0)  # old news, ignored
    later = cut + 30.0  # thirty seconds on, the first request since the cut
    send_as_allowed(rate, later, later + 1.0)
    assert rate.rate is not None
    assert start < rate.rate < 1.3 * start  # one second up the curve, not thirty


def test_refusals_of_requests_sent_before_the_cut_are_old_news() -> None:
    """(5) The rate reacts once to the requests sent at one rate."""
    rate = AdaptiveRate(now=0.0)
    for _ in range(16):
        assert rate.take(0.0)
    accept(rate, 0.05, sent_at=0.0)
    for _ in range(15):  # the rest of the first burst is refused
        refuse(rate, 0.05, sent_at=0.0)
    assert rate.cuts == 1
    first = rate.rate
    assert first is not None
    # a request sent after the cut is refused too: the rate was still too high
    now = 0.05 + rate.delay(0.05)
    assert rate.take(now)
    refuse(rate, now + 0.05, sent_at=now)
    assert rate.cuts == 2
    assert rate.rate is not None
    assert rate.rate < first


def test_refused_again_soon_after_a_cut_it_drops_again_but_not_below_what_was_accepted() -> None:
    """(5) A short cycle measures nothing: beta times the rate, floored by the accepted rate."""
    rate, cut = measured_rate(CubicShape(beta=0.7))
    assert rate.take(cut + 0.3)
    accept(rate, cut + 0.35, sent_at=cut + 0.3)  # accepted since the cut: not a streak
    current = rate.rate
    assert current is not None
    accepting = rate.accepting(cut + 0.5)
    refuse(rate, cut + 0.5, sent_at=cut + 0.4)
    assert rate.limit == pytest.approx(max(0.7 * current, accepting), rel=0.02)
    assert rate.delay(cut + 0.5) < AdaptiveRate.PAUSE_FIRST  # no pause: something got through


def test_a_second_refusal_in_a_row_pauses_all_sending_longer_each_time() -> None:
    """(5) Refused at the rate just cut, with nothing accepted since: a window that refuses
    everything until it ends. Half a second, then doubling up to PAUSE_MAX."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6)
    assert rate.delay(0.1) < AdaptiveRate.PAUSE_FIRST  # one refusal: no pause
    now = 0.1
    pauses = []
    for _ in range(5):
        now += 0.01
        refuse(rate, now, sent_at=now - 0.005)  # sent after the last cut, refused
        pause = rate.delay(now)
        pauses.append(round(pause, 6))
        assert not rate.take(now + pause - 0.01)
        now += pause
    first, most = AdaptiveRate.PAUSE_ROUGH, AdaptiveRate.PAUSE_MAX  # not measured yet
    assert first < AdaptiveRate.PAUSE_FIRST
    assert pauses == [first, 2 * first, 4 * first, min(8 * first, most), most]
    # once the limit was measured, a run of refusals pauses PAUSE_FIRST at first
    measured, cut = measured_rate()
    refuse(measured, cut + 0.05, sent_at=cut + 0.01)
    assert measured.delay(cut + 0.05) == pytest.approx(AdaptiveRate.PAUSE_FIRST)


def test_after_a_pause_one_request_goes_alone_until_its_answer() -> None:
    """(5) The probe finds out whether the refusing is over; the others wait for it."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6)
    refuse(rate, 1.0, sent_at=0.15)  # a second in a row (answered slowly): pause
    now = 1.0 + rate.delay(1.0)
    assert rate.take(now)  # the probe
    latency = rate.latency
    assert latency is not None
    hold = 2 * latency
    assert hold > 0.3
    assert rate.delay(now + 0.001) == pytest.approx(hold - 0.001)
    assert not rate.take(now + 0.01)  # the others wait
    accept(rate, now + 0.05, sent_at=now)  # the probe got through: no more holding
    assert rate.delay(now + 0.05) < 1 / 6
    later = now + 0.05 + rate.delay(now + 0.05)
    assert rate.take(later)
    # a probe whose answer never comes holds the others for two latencies at most
    refuse(rate, later + 0.05, sent_at=later)
    refuse(rate, later + 0.1, sent_at=later + 0.06)
    probe_at = later + 0.1 + rate.delay(later + 0.1)
    assert rate.take(probe_at)
    latency = rate.latency
    assert latency is not None
    assert rate.delay(probe_at) == pytest.approx(2 * latency)


def test_through_after_a_run_of_refusals_it_resumes_at_the_accepted_rate() -> None:
    """(5) A window that refused everything until it ended: the first request through
    resumes at the window's own average, not at the rate the refusals cut down to."""
    rate = AdaptiveRate(now=0.0)
    for k in range(41):  # a window of 40 spent in 0.2 s (and the listing)
        assert rate.take(k * 0.005)
        accept(rate, k * 0.005 + LATENCY, sent_at=k * 0.005)
    now = 0.3
    refuse(rate, now)
    for _ in range(AdaptiveRate.RESUME_AFTER):  # closed: every probe refused
        now += rate.delay(now)
        assert rate.take(now)
        refuse(rate, now + LATENCY, sent_at=now)
        now += LATENCY
    cut = rate.rate
    assert cut is not None
    now = 5.0 + rate.delay(5.0)  # the next window
    assert rate.take(now)
    accept(rate, now + LATENCY, sent_at=now)
    accepting = rate.accepting(now + LATENCY)
    assert rate.rate == pytest.approx(accepting)
    assert rate.rate != pytest.approx(cut)
    assert rate.measured


def test_a_client_that_sends_little_does_not_see_its_rate_run_away() -> None:
    """(6) PROBE_CAP: never more than twice the rate actually sent."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 2)  # a rough 2/s, from which it would double every 2 s
    now = 0.1
    for _ in range(150):  # one request every two seconds for five minutes
        now += 2.0
        assert rate.take(now)
        accept(rate, now + 0.05, sent_at=now)
    assert rate.rate is not None
    assert rate.rate <= max(AdaptiveRate.PROBE_CAP * 1.0, 2.0) + 1e-9


def test_a_cut_never_goes_below_the_floor() -> None:
    rate = AdaptiveRate(now=0.0)
    now = 0.0
    for _ in range(200):  # refused forever
        now += rate.delay(now)
        assert rate.take(now)
        now += 0.05
        refuse(rate, now)
    assert rate.rate == MIN_RATE


def test_in_flight_slots_follow_the_rate_and_the_smoothed_latency() -> None:
    """(6) Slots: CONCURRENCY_HEADROOM x rate x latency, the latency smoothed over answers."""
    rate = AdaptiveRate(now=0.0, max_in_flight=16)
    first_refusal(rate, 20, at=0.2)  # answers in 200 ms
    assert rate.latency == pytest.approx(0.2)
    assert rate.concurrency == math.ceil(2 * rate.rate * 0.2)  # type: ignore[operator]
    accept(rate, 2.0, sent_at=1.0)  # one slow answer moves the latency a fifth of the way
    weight = AdaptiveRate.LATENCY_WEIGHT
    assert 0 < weight < 1
    assert rate.latency == pytest.approx(0.2 + weight * (1.0 - 0.2))
    assert rate.concurrency == max(1, min(16, math.ceil(2 * rate.rate * rate.latency)))  # type: ignore[operator]
    slow = AdaptiveRate(now=0.0, ceiling=1.0)
    assert slow.take(0.0)
    refuse(slow, 0.01, sent_at=0.0)
    assert slow.concurrency == 1


def test_told_not_to_learn_it_keeps_the_ceiling_alone() -> None:
    rate = AdaptiveRate(now=0.0, learn=False)
    for _ in range(10):
        assert rate.take(0.0)
    refuse(rate, 0.1, sent_at=0.0)
    assert (rate.rate, rate.learned) == (None, False)
    rate.share(0.2, (PeerRate(5.0, busy=True, limit=10.0),), learned=10.0)
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


# -- clients sharing the key (7) -----------------------------------------------------------


def busy(accepting: float, limit: float | None = 20.0) -> PeerRate:
    return PeerRate(accepting=accepting, busy=True, limit=limit)


def test_a_new_client_starts_at_its_fair_part_not_with_a_burst() -> None:
    rate = AdaptiveRate(now=0.0)
    rate.share(0.0, (busy(10.0), busy(10.0)))
    assert (rate.learned, rate.measured) == (True, True)
    assert rate.rate == pytest.approx(20.0 / 3)
    assert rate.concurrency < AdaptiveRate.INITIAL_WINDOW + 16


def test_a_light_client_keeps_what_it_uses_and_the_busy_ones_split_the_rest() -> None:
    rate = AdaptiveRate(now=0.0)
    light = PeerRate(accepting=2.0, busy=False, limit=None)
    rate.share(0.0, (busy(18.0), light))
    assert rate.rate == pytest.approx((20.0 - 2.0) / 2)


def test_without_a_measured_limit_the_others_change_nothing() -> None:
    """Busy clients of a key that was never refused: it may have no limit at all."""
    rate = AdaptiveRate(now=0.0)
    rate.share(0.0, (busy(300.0, limit=None), busy(300.0, limit=None)))
    assert (rate.learned, rate.rate) == (False, None)


def test_a_new_client_starts_at_the_keys_limit_learned_before() -> None:
    rate = AdaptiveRate(now=0.0)
    rate.share(0.0, (), learned=12.0)
    assert (rate.learned, rate.rate) == (True, 12.0)
    rate = AdaptiveRate(now=0.0, ceiling=5.0)
    rate.share(0.0, (), learned=12.0)
    assert rate.rate == 5.0  # never above the ceiling


def test_a_client_well_above_its_fair_part_slows_down_to_it_at_once() -> None:
    rate, now = measured_rate()
    send_as_allowed(rate, now, now + 20.0)
    own = rate.report(now + 20.0).limit
    assert own is not None
    peers = (busy(2.0, limit=12.0), busy(2.0, limit=12.0))
    rate.share(now + 20.0, peers)
    assert rate.rate == pytest.approx((12.0 + 12.0 + own) / 3 / 3)  # the mean limit, split


def test_a_client_below_its_fair_part_curves_towards_it() -> None:
    rate, now = measured_rate()
    send_as_allowed(rate, now, now + 1.0)
    before = rate.rate
    assert before is not None
    limit = 20 * before  # the key's limit as two peers measured it: far more
    rate.share(now + 1.0, (busy(before, limit=limit), busy(before, limit=limit)))
    fair = rate.fair_share()
    assert fair is not None
    assert fair > 2 * before
    assert rate.rate == pytest.approx(before)  # no jump ...
    assert rate.limit == pytest.approx(fair)  # ... but a curve towards its part
    send_as_allowed(rate, now + 1.0, now + 1.0 + 2 * rate.shape.k)
    assert rate.rate is not None
    assert rate.rate > 0.95 * fair


def test_a_measured_refusal_takes_the_fair_part_and_reports_the_keys_limit() -> None:
    rate, now = measured_rate()
    send_as_allowed(rate, now, now + 3.0)
    peers = (busy(9.0, limit=None), busy(9.0, limit=None))
    rate.share(now + 3.0, peers)  # the peers have not measured the key yet
    refuse(rate, now + 3.0)
    accepting = rate.accepting(now + 3.0)
    report = rate.report(now + 3.0)
    assert report.limit == pytest.approx(accepting + 18.0)
    assert report.busy
    assert rate.limit == pytest.approx((accepting + 18.0) / 3)


# -- the pacer, on a virtual clock ------------------------------------------------------------


def learned_rate(rate_per_second: float, latency: float, *, now: float = 0.0) -> AdaptiveRate:
    """A rate that learned ``rate_per_second`` from one refusal, answers ``latency`` late."""
    rate = AdaptiveRate(now=now, max_in_flight=16)
    rate.share(now, (), learned=rate_per_second)
    accept(rate, now, sent_at=now - latency)
    assert rate.latency == pytest.approx(latency)
    return rate


def pacer(rate: AdaptiveRate, **kwargs: object) -> Pacer:
    loop = asyncio.get_running_loop()
    return Pacer(rate, clock=loop.time, **kwargs)  # type: ignore[arg-type]


def test_the_virtual_clock_takes_no_time_and_jumps_to_the_next_timer() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600.0)
        return start, loop.time()

    start, end = run_virtual(main(), start=5.0)
    assert (start, end) == (5.0, 3605.0)
    loop = VirtualLoop()
    try:
        with pytest.raises(Deadlock):  # waits for what no timer brings
            loop.run_until_complete(loop.create_future())
    finally:
        loop.close()


def test_the_pacer_spaces_starts_at_the_rate_in_arrival_order() -> None:
    async def main() -> list[tuple[int, float]]:
        paced = pacer(AdaptiveRate(now=0.0, ceiling=10.0))
        started: list[tuple[int, float]] = []

        async def one(k: int) -> None:
            started.append((k, await paced.start()))
            paced.release()

        await asyncio.gather(*(one(k) for k in range(5)))
        return started

    started = run_virtual(main())
    assert [k for k, _ in started] == list(range(5))
    assert [round(t, 6) for _, t in started] == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_the_pacer_sleeps_through_the_injected_sleep_never_long() -> None:
    naps: list[float] = []

    async def main() -> float:
        async def sleep(seconds: float) -> None:
            naps.append(seconds)
            await asyncio.sleep(seconds)

        paced = pacer(AdaptiveRate(now=0.0, ceiling=0.5), sleep=sleep)
        await paced.start()
        paced.release()
        return await paced.start()  # two seconds later, in naps of at most MAX_NAP

    assert run_virtual(main()) == pytest.approx(2.0)
    assert naps
    assert max(naps) <= Pacer.MAX_NAP
    assert sum(naps) == pytest.approx(2.0)


def test_the_pacer_takes_only_as_many_slots_as_the_learned_concurrency() -> None:
    """The slots follow the rate: 10 a second answered in 0.1 s is two in flight."""

    async def main() -> tuple[int, int]:
        rate = learned_rate(10.0, 0.1)
        assert rate.concurrency == 2
        paced = pacer(rate)
        holders = [asyncio.create_task(paced.start()) for _ in range(5)]
        await asyncio.sleep(5.0)  # time enough for every turn
        going = sum(task.done() for task in holders)
        for _ in range(going):
            paced.release()
        await asyncio.sleep(5.0)
        after = sum(task.done() for task in holders)
        for task in holders:
            task.cancel()
        return going, after

    going, after = run_virtual(main())
    assert going == 2
    assert after == 4


def test_a_turn_past_the_deadline_raises_at_once_and_frees_the_slot() -> None:
    async def main() -> tuple[float, int]:
        paced = pacer(learned_rate(0.5, 0.1))
        loop = asyncio.get_running_loop()
        await paced.start()
        paced.release()
        begun = loop.time()
        with pytest.raises(PastDeadline):
            await paced.start(not_after=begun + 0.5)  # the next turn is 2 s away
        return loop.time() - begun, paced.occupancy()[0]

    waited, active = run_virtual(main())
    assert waited == 0.0
    assert active == 0


def test_an_answer_wakes_the_requests_waiting_for_a_slot() -> None:
    """The slot holder is still out, but an answer that raises the rate opens a slot."""

    async def main() -> bool:
        rate = learned_rate(5.0, 0.1)
        assert rate.concurrency == 1
        paced = pacer(rate)
        await paced.start()  # holds the one slot
        waiter = asyncio.create_task(paced.start())
        await asyncio.sleep(1.0)
        assert not waiter.done()
        rate.share(1.0, (), learned=None)
        # an earlier request's answer: accepted, long latency, more slots
        paced.answered(0.0, 1.0, throttled=False)
        assert rate.concurrency > 1
        await asyncio.sleep(1.0)
        done = waiter.done()
        waiter.cancel()
        return done

    assert run_virtual(main())


def test_a_released_slot_goes_to_the_first_waiter() -> None:
    async def main() -> list[int]:
        paced = pacer(learned_rate(5.0, 0.1))
        order: list[int] = []
        await paced.start()

        async def wait(k: int) -> None:
            await paced.start()
            order.append(k)

        waiters = [asyncio.create_task(wait(k)) for k in range(3)]
        await asyncio.sleep(1.0)
        for _ in range(3):
            paced.release()
            await asyncio.sleep(1.0)
        await asyncio.gather(*waiters)
        return order

    assert run_virtual(main()) == [0, 1, 2]


def test_a_cancelled_waiter_gives_back_its_place_or_its_slot() -> None:
    async def main() -> tuple[int, int]:
        paced = pacer(learned_rate(5.0, 0.1))
        await paced.start()
        waiting = asyncio.create_task(paced.start())
        await asyncio.sleep(0.1)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert paced.occupancy()[1] == 0
        paced.release()
        # a slot granted, then the start cancelled while waiting for its turn
        paced.rate.share(0.0, (), learned=None)
        turn = asyncio.create_task(paced.start())
        await asyncio.sleep(0)
        turn.cancel()
        await asyncio.gather(turn, return_exceptions=True)
        return paced.occupancy()

    assert run_virtual(main()) == (0, 0)


def test_the_pacer_exchanges_with_the_other_clients_about_once_a_second() -> None:
    calls: list[float] = []

    class Share:
        def exchange(self, now: float, mine: PeerRate) -> tuple[tuple[PeerRate, ...], float | None]:
            calls.append(now)
            return (), 8.0

        def leave(self) -> None:
            calls.append(-1.0)

    async def main() -> float | None:
        paced = pacer(AdaptiveRate(now=0.0), share=Share())
        for k in range(40):
            sent = await paced.start()
            paced.release()
            paced.answered(sent, sent + 0.1 * (k % 2), throttled=False)
            await asyncio.sleep(0.1)
        paced.leave()
        paced.leave()  # once only
        return paced.rate.rate

    assert run_virtual(main()) == pytest.approx(8.0, rel=0.5)  # started from the learned 8/s
    assert calls[-1] == -1.0
    gaps = [b - a for a, b in itertools.pairwise(calls[:-1])]
    assert len(calls) - 1 >= 3
    assert all(gap >= Pacer.SHARE_EVERY - 1e-9 for gap in gaps)


# -- whole exports against the fake's limits, simulated ----------------------------------------

BUCKETS = {
    "5/s burst 5": (lambda: FakeRateLimit(rate=5.0, burst=5.0), 5.0),
    "5/s burst 3": (lambda: FakeRateLimit(rate=5.0, burst=3.0), 5.0),
    "20/s burst 10": (lambda: FakeRateLimit(rate=20.0, burst=10.0), 20.0),
    "100/s burst 50": (lambda: FakeRateLimit(rate=100.0, burst=50.0), 100.0),
}


def efficiency(runs: list[Run], limit: float) -> float:
    useful = sum(run.useful for run in runs)
    seconds = max(run.finished for run in runs) - min(run.started for run in runs)
    return useful / limit / seconds


def refused_share(runs: list[Run]) -> float:
    return sum(run.refused for run in runs) / sum(run.requests for run in runs)


@pytest.mark.parametrize("name", list(BUCKETS))
@pytest.mark.parametrize("seed", [0, 1])
def test_under_a_token_bucket_an_export_wastes_little(name: str, seed: int) -> None:
    """The issue's shape (40 schedules x 500: 201 requests; 1,005 at 100/s), 50 ms: at least
    0.85 of the ideal time, at most 10% refused in all, at most 5% once the limit was met."""
    make, limit = BUCKETS[name]
    requests = 1005 if limit >= 100 else 201
    (run,) = simulate(make, requests, seed=seed)
    assert run.failed == 0
    assert run.useful == requests
    assert efficiency([run], limit) >= 0.85
    assert refused_share([run]) <= 0.10
    after, refused_after = run.after()
    assert refused_after / after <= 0.05
    assert run.first_burst <= 15


@pytest.mark.parametrize("phase", [0.0, 1.3, 2.6, 3.7])
def test_under_a_fixed_window_an_export_wastes_little(phase: float) -> None:
    """40 per 5 s: the first window's refusals no client can avoid; at most 12% in all,
    and once two windows are past, at most 5%."""
    make = lambda: FakeRateLimit(window_limit=40, window=5.0)  # noqa: E731
    (run,) = simulate(make, 201, phase=phase)
    assert run.failed == 0
    assert efficiency([run], 8.0) >= 0.85
    assert refused_share([run]) <= 0.12
    (long,) = simulate(make, 1000, phase=phase)
    late = [e for e in long.exchanges if e.sent >= long.started + 10.0]
    assert sum(e.refused for e in late) / len(late) <= 0.05


@pytest.mark.parametrize("shared", [False, True])
def test_three_exports_on_one_key_share_its_limit(shared: bool) -> None:
    """Three at once against 20/s: together near the ideal, few refused, none starved;
    sharing the learned rate (one machine) makes them finish together."""
    make, limit = BUCKETS["20/s burst 10"]
    runs = simulate(make, [201, 201, 201], shared=shared)
    assert all(run.failed == 0 and run.useful == 201 for run in runs)
    assert efficiency(runs, limit) >= (0.85 if shared else 0.78)
    assert refused_share(runs) <= 0.10
    slowest = max(run.seconds for run in runs) / min(run.seconds for run in runs)
    assert slowest <= (1.3 if shared else 2.5)


@pytest.mark.parametrize("name", ["5/s burst 5", "20/s burst 10"])
def test_a_later_export_starts_at_the_limit_learned_before(name: str) -> None:
    make, limit = BUCKETS[name]
    later = 250.0 / limit  # the first has ended
    alone = simulate(make, [201, 81], starts=[0.0, later])
    shared = simulate(make, [201, 81], starts=[0.0, later], shared=True)
    assert alone[0].finished < alone[1].started
    assert shared[1].first_burst <= 1
    assert shared[1].refused < alone[1].refused


def test_a_newcomer_joins_running_exports_without_a_burst() -> None:
    make, limit = BUCKETS["20/s burst 10"]
    runs = simulate(make, [201, 201, 201], starts=[0.0, 6.0, 9.0], shared=True)
    # no burst: at most the one refusal that met the limit
    assert [run.first_burst <= 1 for run in runs[1:]] == [True, True]
    assert refused_share(runs) <= 0.10
    assert efficiency(runs, limit) >= 0.80


def test_without_a_limit_slow_start_costs_about_one_round_trip() -> None:
    (run,) = simulate(lambda: FakeRateLimit(), 606, latency=LATENCY)
    bound = math.ceil(606 / 16) * LATENCY
    assert run.refused == 0
    assert run.seconds <= bound + 3 * LATENCY


def test_board_reports_expire() -> None:
    board = Board(stale=5.0)
    one, two = board.member(1), board.member(2)
    one.exchange(0.0, busy(5.0))
    assert two.exchange(1.0, busy(5.0)) == ((busy(5.0),), 20.0)
    assert two.exchange(7.0, busy(5.0)) == ((), 20.0)


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
