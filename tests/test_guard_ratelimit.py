"""Tests that pin down ratelimit mechanisms mutation testing found unguarded (docs/mutation.md).

Each drives the pure rate (``_ratelimit``) or the pacer (``_pacer``) on a clock the
test sets: no sleep, no wall time.
"""

from __future__ import annotations

import pytest

from mettl_async._pacer import Pacer
from mettl_async._ratelimit import AdaptiveRate, PeerRate

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
