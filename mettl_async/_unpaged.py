"""Listings Mettl returns whole, in one answer: no ``limit``, no ``offset``, no paging.

Articles 4 (the PBTs), 10 (the schedules of one assessment) and 18 before v3
(a candidate's results across the account) document no paging parameters. An
:class:`UnpagedListing` sends exactly the parameters the article documents,
once, when iterated, and has the surface of a paginated
:class:`~mettl_async._streaming.Listing`: ``async for``, :meth:`pages` (here
always one page), :meth:`raw` and :meth:`collect`. Code written against one
works with the other.

Why not a :class:`Listing` with a large ``limit``: every parameter sent is
signed and checked by Mettl, and these endpoints document none; and a
``Listing`` that saw a "full" first page would ask for an ``offset`` these
endpoints would ignore.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import attrs

from ._closing import OpenIterations
from ._errors import DecodeError
from ._paging import Page, RawRecord, decode_listing, page_from_envelope, record_of
from ._protocol import Request
from ._streaming import Fetch, as_raw

__all__ = ["UnpagedListing"]

T = TypeVar("T")


class UnpagedListing(Generic[T]):
    """An async iterable over every record of a listing Mettl sends in one answer.

    Lazy: nothing is sent until it is iterated, and each iteration sends the
    request again (a fresh view of the account). :meth:`raw` gives the same
    listing yielding :class:`RawRecord` mappings over the JSON exactly as
    Mettl sent it.
    """

    def __init__(
        self,
        fetch: Fetch,
        request: Request,
        items_key: str,
        convert: Callable[[RawRecord], T],
        *,
        label: str,
        key_field: str | None = None,
    ) -> None:
        self._fetch = fetch
        self._request = request
        self._items_key = items_key
        self._convert = convert
        self._label = label
        self._key_field = key_field
        self._iterations = OpenIterations()

    @property
    def request(self) -> Request:
        """The one request this listing sends."""
        return self._request

    @property
    def label(self) -> str:
        return self._label

    def raw(self) -> UnpagedListing[RawRecord]:
        """This listing, yielding the wire mappings instead of typed objects."""
        return UnpagedListing(
            self._fetch,
            self._request,
            self._items_key,
            as_raw,
            label=self._label,
            key_field=self._key_field,
        )

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterations.track(self._items())

    async def aclose(self) -> None:
        """Close every iteration of this listing still open (its request, if in flight).

        For ``contextlib.aclosing(listing)``; the listing can be iterated again.
        """
        await self._iterations.aclose()

    async def _items(self) -> AsyncGenerator[T, None]:
        convert = self._convert
        page = await self._page()
        for item in page.items:
            yield convert(item)

    def pages(self) -> AsyncGenerator[Page[T], None]:
        """The listing as one page (``is_last``), records converted."""
        return self._iterations.track(self._pages())

    async def _pages(self) -> AsyncGenerator[Page[T], None]:
        page = await self._page()
        convert = self._convert
        yield attrs.evolve(page.with_items([convert(item) for item in page.items]), is_last=True)

    async def collect(self) -> list[T]:
        """Every record, in a list."""
        async with contextlib.aclosing(self._items()) as items:
            return [item async for item in items]

    async def _page(self) -> Page[RawRecord]:
        request = self._request
        decode = functools.partial(
            decode_listing, items_key=self._items_key, key_field=self._key_field
        )
        envelope: dict[str, Any] = await self._fetch(request, decode)
        try:
            items = envelope[self._items_key]
            count = len(items) if isinstance(items, list) else 0
            page = page_from_envelope(envelope, self._items_key, offset=0, limit=count)
        except (KeyError, TypeError) as exc:
            raise DecodeError(
                f"{self._label}: the answer has no list of {self._items_key!r} ({exc})",
                method=request.method,
                path=request.path,
            ) from None
        records = [record_of(item, self._key_field) for item in page.items]
        return Page(
            records, 0, page.limit, page.total_records, received=len(records), paged=page.paged
        )
