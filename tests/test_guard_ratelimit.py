"""Tests that pin down ratelimit mechanisms mutation testing found unguarded (docs/mutation.md).

Each drives the pure rate (``_ratelimit``) or the pacer (``_pacer``) on a clock the
test sets: no sleep, no wall time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from benchmarks.virtual import run_virtual
from mettl_async._pacer import Pacer
from mettl_async._ratelimit import (
    MIN_RATE,
    AdaptiveRate,
    PeerRate,
    RateChangeLog,
    RateWindow,
    TokenBucket,
)

from .test_ratelimit import (
    accept,
    busy,
    first_refusal,
    learned_rate,
    measured_rate,
    pacer,
    refuse,
    send_as_allowed,
)

# -- what a client tells the others of the key: busy or not (mechanism 7) ---------------------


def sent(rate: AdaptiveRate, times: list[float]) -> None:
    for at in times:
        assert rate.take(at), at


@pytest.mark.parametrize(("requests", "busy"), [(7, True), (6, False), (1, False)])
def test_a_client_is_busy_from_seven_tenths_of_its_rate(requests: int, busy: bool) -> None:
    """At 10 requests a second allowed, 7 sent in the last second is busy (BUSY_SHARE: it
    would take more of the key's limit), 6 or 1 is not: it keeps what it uses."""
    assert AdaptiveRate.BUSY_SHARE == 0.7
    rate = AdaptiveRate(now=0.0, ceiling=10.0, learn=False)
    assert rate.rate == 10.0
    # one request long ago, so that the last second is a whole second of sending
    sent(rate, [0.0, *(0.6 + 0.1 * k for k in range(requests))])
    assert rate.report(1.5).busy is busy
    assert rate.busy(1.5) is busy


def test_an_unlimited_client_is_busy_if_it_sends_at_all() -> None:
    """With no rate to compare with, one request a second is busy; none in the last second
    is not."""
    rate = AdaptiveRate(now=0.0, learn=False)
    assert rate.rate is None
    sent(rate, [0.0, 5.0])
    assert rate.busy(5.5)  # one request in the last second: one a second
    assert not rate.busy(6.5)  # none in the last second


# -- the pacer's exchange with the other clients of the key -----------------------------------


class RecordingShare:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def exchange(self, now: float, mine: PeerRate) -> tuple[tuple[PeerRate, ...], float | None]:
        self.calls.append(now)
        return (), None

    def leave(self) -> None:
        pass


def test_answers_a_second_apart_each_exchange_with_the_others() -> None:
    """SHARE_EVERY seconds after the last exchange, the next answer exchanges again; sooner,
    it does not."""
    now = [0.0]
    share = RecordingShare()
    paced = Pacer(AdaptiveRate(now=0.0), clock=lambda: now[0], share=share)
    assert Pacer.SHARE_EVERY == 1.0
    for at in (0.0, 0.5, 1.0, 1.9, 2.0, 3.0):
        now[0] = at
        paced.answered(at - 0.05, at, throttled=False)
    assert share.calls == [0.0, 1.0, 2.0, 3.0]


# -- what the others of the key report, once it is learned (mechanism 7) -----------------------


def shared(rate: AdaptiveRate, now: float, fair: float) -> None:
    """Two busy peers report limits that make this client's fair part ``fair``: the key's
    limit (the mean of theirs and its own) split three ways."""
    own = rate.report(now).limit
    assert own is not None
    peer = (9.0 * fair - own) / 2.0
    assert peer > 0
    rate.share(now, (busy(1.0, limit=peer), busy(1.0, limit=peer)))
    assert rate.fair_share() == pytest.approx(fair)


def grown_back() -> tuple[AdaptiveRate, float]:
    """A measured rate back at the limit it refused (k seconds up the cubic), and when."""
    rate, cut = measured_rate()
    now = cut + rate.shape.k + 0.1
    send_as_allowed(rate, cut, now)
    assert rate.rate == pytest.approx(rate.limit, rel=0.05)
    return rate, now


def test_a_learned_rate_of_zero_is_no_rate_to_start_at() -> None:
    rate = AdaptiveRate(now=0.0)
    rate.share(0.0, (), learned=0.0)
    assert (rate.learned, rate.rate) == (False, None)


def test_before_measuring_the_limit_a_client_keeps_its_rough_figure() -> None:
    """The others' fair part moves only a client that measured the limit itself."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6)
    assert (rate.rate, rate.measured) == (pytest.approx(6.0), False)
    rate.share(0.2, (busy(1.0, limit=3.0), busy(1.0, limit=3.0)))  # a fair part of 1/s
    assert (rate.rate, rate.measured) == (pytest.approx(6.0), False)


def test_half_again_above_its_fair_part_a_client_slows_down_to_it_at_once() -> None:
    rate, now = grown_back()
    current = rate.rate
    assert current is not None
    shared(rate, now, current / 1.5)
    assert rate.rate == pytest.approx(current / 1.5)


def test_within_the_tolerance_of_its_fair_part_a_client_goes_on_as_it_was() -> None:
    """5% above its fair part (FAIR_TOLERANCE: 15%): neither its rate nor its curve moves."""
    rate, now = grown_back()
    current, limit = rate.rate, rate.limit
    assert current is not None
    shared(rate, now, current / 1.05)
    assert (rate.rate, rate.limit) == (current, limit)


def test_a_curve_moved_to_the_fair_part_goes_on_from_the_rate_without_a_jump() -> None:
    """A fair part well below the limit it measured, a little above its rate: its curve
    moves there from where the rate is, and the next answers raise the rate a little,
    neither restart the new curve nor jump to where it would be after the time since the cut."""
    rate, now = measured_rate()
    send_as_allowed(rate, now, now + 1.0)
    before, limit = rate.rate, rate.limit
    assert before is not None
    assert limit is not None
    fair = 1.03 * before
    assert fair < (1 - AdaptiveRate.FAIR_TOLERANCE) * limit
    shared(rate, now + 1.0, fair)
    assert rate.limit == pytest.approx(fair)
    send_as_allowed(rate, now + 1.0, now + 1.1)
    assert before <= rate.rate < 1.03 * before  # type: ignore[operator]


# -- the pacer: the first exchange, the deadline, a waiter cancelled ----------------------------


class LearnedShare(RecordingShare):
    def exchange(self, now: float, mine: PeerRate) -> tuple[tuple[PeerRate, ...], float | None]:
        super().exchange(now, mine)
        return (), 8.0  # the key's limit, learned before


def test_a_new_client_learns_the_keys_rate_before_its_first_request() -> None:
    """Its first request already goes at the key's rate learned before, not in a burst."""

    async def main() -> tuple[float | None, list[float]]:
        share = LearnedShare()
        paced = pacer(AdaptiveRate(now=0.0))
        assert not paced.sharing
        paced.share_with(share)
        assert paced.sharing
        await paced.start()
        return paced.rate.rate, share.calls

    rate, calls = run_virtual(main())
    assert rate == 8.0
    assert calls == [0.0]


def test_a_turn_exactly_at_the_deadline_still_goes() -> None:
    async def main() -> float:
        paced = pacer(learned_rate(0.5, 0.1))
        first = await paced.start()
        paced.release()
        # the next turn is 2 s away (at half a request a second): the deadline then
        return await paced.start(not_after=first + 2.0) - first

    assert run_virtual(main()) == 2.0


def test_a_waiter_cancelled_then_passed_over_by_a_release_ends_cancelled() -> None:
    """Cancelled while waiting for a slot; the slot given back before it ran: it ends as
    cancelled, and nothing is held."""

    async def main() -> tuple[BaseException | None, tuple[int, int]]:
        paced = pacer(learned_rate(5.0, 0.1))
        assert paced.rate.concurrency == 1
        await paced.start()
        waiting = asyncio.create_task(paced.start())
        await asyncio.sleep(0)
        assert paced.occupancy() == (1, 1)
        waiting.cancel()
        paced.release()  # passes over the cancelled waiter
        (outcome,) = await asyncio.gather(waiting, return_exceptions=True)
        return outcome, paced.occupancy()

    outcome, occupancy = run_virtual(main())
    assert isinstance(outcome, asyncio.CancelledError)
    assert occupancy == (0, 0)


def test_a_new_rate_is_logged_exactly_every_seconds_and_change_apart() -> None:
    log = RateChangeLog(every=10.0, change=0.2)
    assert log.should_log(0.0, 10.0)
    assert log.should_log(10.0, 12.0)  # ten seconds later, 20% more: a line


# -- the edges of a cut: a request sent at its very moment, a cycle of exactly MIN_CYCLE -------


def test_a_request_sent_at_the_moment_of_a_cut_was_sent_at_the_cut_rate() -> None:
    """Its refusal is news (the rate just cut is still too high): a second cut, a pause."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6, at=0.1)
    assert rate.cuts == 1
    refuse(rate, 0.2, sent_at=0.1)
    assert rate.cuts == 2
    assert rate.delay(0.2) == pytest.approx(AdaptiveRate.PAUSE_ROUGH)


def test_a_refusal_exactly_min_cycle_seconds_after_the_last_measures_the_limit() -> None:
    """MIN_CYCLE (2 s) after the first refusal, with answers accepted in between: what was
    accepted in between is the limit, measured."""
    assert AdaptiveRate.MIN_CYCLE == 2.0
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6, at=0.5)
    send_as_allowed(rate, 0.5, 2.5)
    assert not rate.measured
    refuse(rate, 2.5, sent_at=2.45)
    assert rate.measured


def test_a_bucket_refuses_a_new_rate_that_is_not_positive() -> None:
    bucket = TokenBucket(rate=1.0, capacity=2.0, stamp=0.0)
    with pytest.raises(ValueError, match=r"^rate must be > 0, got 0.0$"):
        bucket.set_rate(1.0, 0.0)
    assert bucket.rate == 1.0


def test_after_one_refusal_the_rate_alone_spaces_the_requests() -> None:
    """One refusal is no run of them: no pause, and no request sent alone (a probe) holds
    back the next one: at six a second, three in a row each a sixth of a second apart."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6, at=0.1)
    assert rate.rate == pytest.approx(6.0)
    assert [rate.take(0.1 + k / 6.0) for k in (1, 2, 3)] == [True, True, True]


def test_refused_again_soon_a_learned_rate_drops_by_beta_of_itself() -> None:
    """A client that started at the key's rate learned before (20 a second) and sent little:
    refused within MIN_CYCLE of that, its limit is beta times its rate, not what the few
    answers it had accepted would say (one a second)."""
    rate = AdaptiveRate(now=0.0)
    rate.share(0.0, (), learned=20.0)
    assert (rate.rate, rate.measured) == (20.0, True)
    assert rate.take(0.1)
    accept(rate, 0.15, sent_at=0.1)
    refuse(rate, 0.5, sent_at=0.4)
    assert rate.limit == pytest.approx(rate.shape.beta * 20.0)


# -- the bucket's and the window's edges, the checks of a rate's settings ----------------------


def test_a_bucket_made_without_a_stamp_starts_full_at_its_first_use() -> None:
    bucket = TokenBucket(rate=10.0, capacity=2.0)
    assert [bucket.take(5.0) for _ in range(3)] == [True, True, False]
    assert bucket.wait(5.0) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RateWindow(0.0), "span must be > 0, got 0.0"),
        (lambda: AdaptiveRate(now=0.0, ceiling=0.0), "ceiling must be > 0 or None, got 0.0"),
        (lambda: AdaptiveRate(now=0.0, max_in_flight=0), "max_in_flight must be >= 1, got 0"),
    ],
    ids=["span", "ceiling", "max_in_flight"],
)
def test_settings_at_the_edge_are_refused_by_name(make: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        make()
    assert str(caught.value) == message


def test_the_smallest_settings_allowed_work() -> None:
    """A bucket of one token, one request in flight."""
    bucket = TokenBucket(rate=1.0, capacity=1.0, stamp=0.0)
    assert [bucket.take(0.0), bucket.take(0.0)] == [True, False]
    assert AdaptiveRate(now=0.0, max_in_flight=1).concurrency == 1


def test_an_event_exactly_span_seconds_old_has_left_the_window() -> None:
    window = RateWindow(1.0)
    window.add(0.0)
    window.add(0.5)
    assert window.count(0.999) == 2
    assert window.count(1.0) == 1


def test_a_cut_shrinks_the_bucket_with_the_rate() -> None:
    """Under a ceiling of 1,000 a second the bucket holds five requests' worth (5 ms); cut
    to six a second it holds one and a half: after idling, one request goes at once, not
    five."""
    rate = AdaptiveRate(now=0.0, ceiling=1000.0)
    for k in range(7):
        assert rate.take(k * 0.001)
    for k in range(6):
        accept(rate, 0.1, sent_at=k * 0.001)
    refuse(rate, 0.1, sent_at=0.006)
    assert rate.rate == pytest.approx(6.0)
    assert [rate.take(10.0) for _ in range(3)] == [True, False, False]


# -- refusals in a row: the streak, the resume, a request at the cut's moment accepted --------


def test_accepted_at_the_cut_s_moment_a_request_ends_the_streak() -> None:
    """A request sent at the very moment of the cut, accepted: the next refusal is the first
    of a new streak (no pause)."""
    rate = AdaptiveRate(now=0.0)
    first_refusal(rate, 6, at=0.1)
    accept(rate, 0.15, sent_at=0.1)
    refuse(rate, 0.3, sent_at=0.2)
    assert rate.cuts == 2
    assert rate.delay(0.3) < AdaptiveRate.PAUSE_ROUGH


def test_through_after_exactly_resume_after_refusals_it_resumes_then_starts_afresh() -> None:
    """RESUME_AFTER (3) refusals in a row, then one through: the rate resumes at what Mettl
    has been accepting; the streak is over (a refusal after that is a first one, no pause)."""
    assert AdaptiveRate.RESUME_AFTER == 3
    rate = AdaptiveRate(now=0.0)
    for k in range(41):
        assert rate.take(k * 0.005)
        accept(rate, k * 0.005 + 0.05, sent_at=k * 0.005)
    now = 0.3
    refuse(rate, now)
    for _ in range(2):  # three refusals in a row in all
        now += rate.delay(now)
        assert rate.take(now)
        refuse(rate, now + 0.05, sent_at=now)
        now += 0.05
    now = 5.0 + rate.delay(5.0)
    assert rate.take(now)
    accept(rate, now + 0.05, sent_at=now)
    assert rate.rate == pytest.approx(rate.accepting(now + 0.05))
    now += 0.1
    refuse(rate, now, sent_at=now - 0.05)
    assert rate.delay(now) < AdaptiveRate.PAUSE_FIRST


# -- a rate as made: not measured, its bucket filling from then, a ceiling below the floor ----


def test_a_new_rate_is_neither_learned_nor_measured() -> None:
    rate = AdaptiveRate(now=0.0)
    assert (rate.learned, rate.measured, rate.limit) == (False, False, None)


def test_a_ceilings_bucket_fills_from_when_the_rate_was_made() -> None:
    """Made at 0 with one token, first used a second later: the bucket is full (a token and
    a half at ten a second), so the next request waits half a tenth of a second, not a
    tenth."""
    rate = AdaptiveRate(now=0.0, ceiling=10.0)
    assert rate.take(1.0)
    assert rate.delay(1.0) == pytest.approx(0.05)


def test_a_ceiling_below_the_floor_holds_after_refusals_and_answers() -> None:
    """requests_per_second=0.2, below MIN_RATE (0.5): the floor is the ceiling then, and the
    rate never goes above it."""
    assert MIN_RATE == 0.5
    rate = AdaptiveRate(now=0.0, ceiling=0.2)
    assert rate.take(0.0)
    refuse(rate, 0.05, sent_at=0.0)
    assert rate.take(10.0)
    accept(rate, 10.05, sent_at=10.0)
    assert rate.rate == pytest.approx(0.2)
