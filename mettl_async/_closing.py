"""Closing a listing: its iterations still open, and the walks still running.

Kept apart from the protocol (:mod:`mettl_async._listing`, pure) because it
waits on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator
from typing import Any, Final, TypeVar

__all__ = ["OpenIterations"]

G = TypeVar("G", bound=AsyncGenerator[Any, None])


class OpenIterations:
    """The iterations of one listing not yet finished, for the listing's ``aclose()``.

    A listing is an iterable, not an iterator: each ``async for`` (and each
    ``pages()``) is a generator of its own, and a walk (with its requests in
    flight) runs inside it. :meth:`track` remembers such a generator, weakly,
    so that one dropped unfinished is not kept alive; :meth:`begin` and
    :meth:`end` bracket a walk. :meth:`aclose` closes every generator still open, then
    waits for the walks of generators Python is already finalizing (a loop
    left with ``break`` drops its generator, and the event loop closes it a
    moment later): when it returns, no request of this listing is in flight.
    The listing stays usable: a new ``async for`` starts a new walk.
    """

    __slots__ = ("_ended", "_open", "_walks")

    #: Seconds ``aclose`` waits for walks that Python is finalizing.
    FINALIZING_WAIT: Final = 30.0

    def __init__(self) -> None:
        self._open: weakref.WeakSet[AsyncGenerator[Any, None]] = weakref.WeakSet()
        self._walks = 0
        self._ended: asyncio.Event | None = None

    def track(self, iteration: G) -> G:
        """Remember ``iteration`` until :meth:`aclose`; returns it."""
        self._open.add(iteration)
        return iteration

    def begin(self) -> None:
        """A walk starts (its requests may be in flight until :meth:`end`)."""
        self._walks += 1

    def end(self) -> None:
        """A walk has ended: nothing of it is in flight any more."""
        self._walks -= 1
        if not self._walks and self._ended is not None:
            self._ended.set()

    async def aclose(self) -> None:
        """Close every iteration still open, then wait for the walks being finalized.

        The first error of a generator's closing, if any, is raised once the
        others are closed.
        """
        first: BaseException | None = None
        while self._open:
            iteration = self._open.pop()
            try:
                await iteration.aclose()
            except BaseException as exc:  # close the others first
                first = first or exc
        if first is not None:
            raise first
        if self._walks:
            self._ended = ended = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), self.FINALIZING_WAIT)
            self._ended = None
