"""An in-memory listing that a real walk reads, with every change and every answer scripted.

A :class:`Shelf` holds the records of one listing in its order (newest first)
and answers a :class:`~mettl_async.Listing`'s page requests itself, without
HTTP. A test scripts what happens when: a hook runs when a request arrives,
before the page is read from the shelf, and may change the shelf (arrivals,
deletions) or wait for another page to be read first (:meth:`Shelf.read`), so
that pages are answered in the order the test chooses, deterministically,
without sleeping. Each page is read from the shelf as it is when its hook
returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from mettl_async import Listing
from mettl_async._paging import RawRecord
from mettl_async._protocol import Request
from mettl_async._streaming import ListingSpec, as_raw

URL = "https://api.mettl.com/v2/shelf"

#: (shelf, request number from 0, offset) -> awaited before the page is read.
Hook = Callable[["Shelf", int, int], Awaitable[None]]

#: The listings a walk meets: Mettl's candidates (totals or not) and schedules (no paging).
KINDS = {
    "results with totals": {"items_key": "candidates", "key_field": "email", "totals": True},
    "results without totals": {"items_key": "candidates", "key_field": "email", "totals": False},
    "schedules": {"items_key": "schedules", "key_field": "accessKey", "paged": False},
}


class Shelf:
    """The records of one listing, in order, and the requests a walk made of it."""

    def __init__(
        self,
        size: int,
        *,
        items_key: str = "candidates",
        key_field: str = "email",
        totals: bool = True,
        paged: bool = True,
        hook: Hook | None = None,
    ) -> None:
        self.records = [self.name(n) for n in range(size)]
        self.made = size
        self.at_start = frozenset(self.records)
        self.deleted: set[str] = set()
        self.items_key = items_key
        self.key_field = key_field
        self.totals = totals and paged
        self.paged = paged
        self.hook = hook
        self.requests: list[int] = []  # the offset of each request, in order of arrival
        self._read: dict[int, asyncio.Event] = {}

    @staticmethod
    def name(number: int) -> str:
        return f"r{number:05d}"

    # -- changes ------------------------------------------------------------------

    def arrive(self, count: int = 1) -> None:
        """``count`` new records at the front (Mettl's default order: newest first)."""
        for _ in range(count):
            self.records.insert(0, self.name(self.made))
            self.made += 1

    def delete_at(self, *positions: int) -> None:
        """Delete the records now at these positions."""
        for key in [self.records[position] for position in positions]:
            self.records.remove(key)
            self.deleted.add(key)

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.records.remove(key)
            self.deleted.add(key)

    @property
    def throughout(self) -> frozenset[str]:
        """The records that existed during the whole walk (so far)."""
        return self.at_start - self.deleted

    # -- ordering answers ---------------------------------------------------------

    def _event(self, offset: int) -> asyncio.Event:
        return self._read.setdefault(offset, asyncio.Event())

    async def read(self, offset: int) -> None:
        """Wait until the page at ``offset`` has been read from the shelf (a test waiting for
        a page the walk never asks for fails after 10 s rather than hanging)."""
        async with asyncio.timeout(10):
            await self._event(offset).wait()

    # -- the server ---------------------------------------------------------------

    async def fetch(self, request: Request, decode: Any) -> dict[str, Any]:
        offset = int(request.params["offset"])
        limit = int(request.params["limit"])
        number = len(self.requests)
        self.requests.append(offset)
        if self.hook is not None:
            await self.hook(self, number, offset)
        page = self.records[offset : offset + limit]
        self._event(offset).set()
        items = [RawRecord(orjson.dumps({self.key_field: key}), key) for key in page]
        envelope: dict[str, Any] = {"status": "SUCCESS", self.items_key: items}
        if self.paged:
            more = offset + limit < len(self.records)
            paging: dict[str, Any] = {
                "next": f"{URL}?limit={limit}&offset={offset + limit}" if more else None
            }
            if self.totals:
                paging["totalRecords"] = len(self.records)
            envelope["paging"] = paging
        return envelope

    def listing(self, page_size: int, window: int, *, front: bool = True) -> Listing[RawRecord]:
        spec = ListingSpec(
            label="the shelf",
            request=Request("GET", URL, {"limit": str(page_size), "offset": "0"}),
            items_key=self.items_key,
            key_field=self.key_field,
            window=window,
            grows_at_front=front,
        )
        return Listing(self.fetch, spec, as_raw)

    async def walk(self, page_size: int = 10, window: int = 4) -> list[str]:
        """Every key the walk yields, in order."""
        listing = self.listing(page_size, window)
        return [record.key async for record in listing]  # type: ignore[misc]

    def sequential_requests(self, page_size: int) -> int:
        """What a walk following the links one by one needs for the listing as it is now."""
        size = len(self.records)
        if self.totals:
            return max(1, -(-size // page_size))
        return size // page_size + 1


def check(shelf: Shelf, keys: list[str]) -> None:
    """Every record that existed throughout, exactly once, and nothing that never existed."""
    assert len(keys) == len(set(keys)), "a record came twice"
    missing = shelf.throughout - set(keys)
    assert not missing, f"lost {sorted(missing)}"
    assert set(keys) <= shelf.at_start | {shelf.name(n) for n in range(shelf.made)}
