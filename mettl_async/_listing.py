"""What every listing the client returns has in common, as one protocol.

:class:`~mettl_async.Listing` (walked in concurrent pages),
:class:`~mettl_async.UnpagedListing` (one answer) and
:class:`~mettl_async.AccountResults` (every result of many schedules) are
lazy, and each has a raw view and a page view. Code that only iterates, or
only needs those views, can accept any of them as a :class:`MettlListing`.
Each is closable: ``aclose()`` closes every iteration of it still open,
cancelling their requests at once, so ``contextlib.aclosing(listing)`` works.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

__all__ = ["MettlListing", "OpenIterations"]

T_co = TypeVar("T_co", covariant=True)
G = TypeVar("G", bound=AsyncGenerator[Any, None])


@runtime_checkable
class MettlListing(Protocol[T_co]):
    """A lazy async iterable of ``T_co`` with a raw view and a page view, closable.

    ``async for item in listing`` yields typed records (``(schedule, result)``
    pairs for :class:`~mettl_async.AccountResults`); :meth:`raw` is the same
    listing yielding what Mettl sent, without typed decoding; :meth:`pages`
    yields the listing page by page (a :class:`~mettl_async.Page`, or a
    :class:`~mettl_async.SchedulePage` for ``AccountResults``); :meth:`aclose`
    closes the iterations in progress. ``isinstance`` checks only that these
    methods exist.
    """

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    def raw(self) -> MettlListing[object]:
        """The same listing, yielding what Mettl sent (:class:`~mettl_async.RawRecord`)."""
        ...

    def pages(self) -> AsyncIterator[object]:
        """The listing page by page, in order."""
        ...

    async def aclose(self) -> None:
        """Close every iteration of this listing still open, cancelling its requests."""
        ...


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
