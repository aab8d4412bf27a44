"""The waiting side of the adaptive rate: in-flight slots and turns, on an injected clock.

:class:`~mettl_async._ratelimit.AdaptiveRate` is pure arithmetic; :class:`Pacer`
makes requests wait for what it allows. Its clock and its sleep are passed in
(``time.monotonic`` and ``asyncio.sleep`` by default), so that tests and the
benchmarks' simulations drive this very code on a virtual clock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from ._ratelimit import AdaptiveRate, PeerRate

__all__ = ["Pacer", "PastDeadline", "RateShare"]


class RateShare(Protocol):
    """Where the clients of one key (other processes) tell each other their rates."""

    def exchange(self, now: float, mine: PeerRate) -> tuple[tuple[PeerRate, ...], float | None]:
        """Publish ``mine``; the others' reports, and the key's limit learned before."""

    def leave(self) -> None:
        """This client is done: take its report away."""


class PastDeadline(Exception):
    """The next turn of a throttled call would come after its deadline (internal)."""


class Pacer:
    """Makes requests wait for a slot and a turn at the rate of an :class:`AdaptiveRate`.

    A request first takes one of the in-flight slots (as many as the rate's
    :attr:`~mettl_async._ratelimit.AdaptiveRate.concurrency`, at most
    ``max_in_flight``), then waits its turn, in arrival order, for the rate to
    let it start. Unlimited (never throttled, no ceiling), that is a semaphore.
    An answer wakes the requests waiting for a slot (the rate, and with it the
    slots, may have grown). ``clock`` gives monotonic seconds, ``sleep`` waits.
    """

    #: Longest single sleep while waiting for a turn (a rate that went up is seen by then).
    MAX_NAP: Final = 0.5
    #: Seconds between two exchanges with the other clients of the key.
    SHARE_EVERY: Final = 1.0

    def __init__(
        self,
        rate: AdaptiveRate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        share: RateShare | None = None,
    ) -> None:
        self.rate = rate
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._active = 0  # slots taken
        self._turn = asyncio.Lock()
        self.clock = clock
        self._sleep = sleep
        self._share = share
        self._shared_at = -math.inf

    def occupancy(self) -> tuple[int, int]:
        """(slots taken: requests in flight or waiting for their turn, requests waiting
        for a slot)."""
        return self._active, len(self._waiters)

    async def start(self, *, not_after: float | None = None) -> float:
        """Wait for a slot and a turn; the time the request may start.

        ``not_after``: raise :class:`PastDeadline` rather than start after then.
        """
        self._exchange()
        await self._acquire_slot()
        try:
            rate = self.rate
            if rate.rate is None:  # nothing to wait for
                now = self.clock()
                rate.take(now)
                return now
            async with self._turn:
                while True:
                    now = self.clock()
                    if rate.take(now):
                        return now
                    wait = rate.delay(now)  # > 0: take and delay agree
                    if not_after is not None and now + wait > not_after:
                        raise PastDeadline
                    await self._sleep(min(wait, self.MAX_NAP))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the slot back (the answer is in, or no request went)."""
        self._active -= 1
        self._wake()

    def answered(self, sent_at: float, received_at: float, *, throttled: bool) -> None:
        """Tell the rate how a request sent at ``sent_at`` went."""
        self.rate.answered(received_at, sent_at=sent_at, throttled=throttled)
        self._exchange()
        if self._waiters:
            self._wake()  # the rate, and with it the slots, may have grown

    def _exchange(self) -> None:
        share = self._share
        if share is None:
            return
        now = self.clock()
        if now - self._shared_at < self.SHARE_EVERY:
            return
        self._shared_at = now
        rate = self.rate
        peers, learned = share.exchange(now, rate.report(now))
        rate.share(now, peers, learned=learned)

    @property
    def sharing(self) -> bool:
        """Whether it exchanges rates with the other clients of the key."""
        return self._share is not None

    def share_with(self, share: RateShare | None) -> None:
        """Exchange rates through ``share`` from now on (``None``: stop)."""
        self._share = share

    def leave(self) -> None:
        """Stop sharing (the client closes)."""
        if self._share is not None:
            self._share.leave()
            self._share = None

    async def _acquire_slot(self) -> None:
        if self._active < self.rate.concurrency and not self._waiters:
            self._active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted, then cancelled before it could use it
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _wake(self) -> None:
        limit = self.rate.concurrency
        waiters = self._waiters
        while waiters and self._active < limit:
            waiter = waiters.popleft()
            if not waiter.done():
                self._active += 1
                waiter.set_result(None)
