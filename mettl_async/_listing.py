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

from collections.abc import AsyncIterator
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["MettlListing"]

T_co = TypeVar("T_co", covariant=True)


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
