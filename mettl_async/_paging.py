"""Sans-I/O paging: pages, next links, and the bookkeeping of a walk.

Mettl's listings are offset based (``limit`` 1..100, ``offset``); article 16
also returns ``paging.next``/``previous`` links that repeat every optional
parameter of the first request, and production code reads
``paging.totalRecords``. Article 11 shows no paging block at all: a short page
is the last one.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar
from urllib.parse import parse_qsl, urljoin, urlsplit

import attrs

from ._errors import PaginationError, ValidationError, ValidationProblem
from ._signing import SIGNATURE_PARAMS

__all__ = [
    "MAX_LIMIT",
    "Page",
    "check_page_size",
    "link_request",
    "page_from_envelope",
]

T = TypeVar("T")
MAX_LIMIT: Final = 100


@attrs.frozen
class Page(Generic[T]):
    """One page of a listing, as the walk yields it.

    ``items`` holds the records not yielded before (a record whose key was
    already seen in this walk is dropped, so offsets shifting under live data
    never duplicate anyone). ``offset``/``limit`` are what was asked for;
    ``total_records``, ``next`` and ``previous`` are what the server said
    (``None`` when it said nothing; ``paged`` tells whether it sent a paging
    block at all). ``received`` counts the records the server sent for this
    page, duplicates included. ``is_last`` marks the final page of the walk.
    """

    items: Sequence[T]
    offset: int
    limit: int
    total_records: int | None = None
    next: str | None = None
    previous: str | None = None
    received: int = 0
    is_last: bool = False
    paged: bool = False

    def is_end(self) -> bool:
        """Whether nothing follows this page, by what the server said, else by its size."""
        if self.received == 0:
            return True
        if self.total_records is not None:
            return self.offset + self.received >= self.total_records
        if self.paged:
            return self.next is None
        return self.received < self.limit  # article 11: no paging block, a short page ends


def check_page_size(page_size: int) -> int:
    """Mettl's ``limit`` is 1..100: refuse anything else before any I/O."""
    valid = isinstance(page_size, int) and not isinstance(page_size, bool)
    if not valid or not 1 <= page_size <= MAX_LIMIT:
        problem = f"must be an integer from 1 to {MAX_LIMIT}, got {page_size!r}"
        raise ValidationError([ValidationProblem("limit", problem)], subject="page size")
    return page_size


def link_request(link: str, current_url: str) -> tuple[str, dict[str, str]]:
    """The URL (without query) and parameters a next/previous link asks for.

    Relative links resolve against the URL of the page they came in. Any
    ``ak``, ``ts`` or ``asgn`` in the link is dropped (the request is re-signed
    fresh); every other parameter is kept as the link gives it. A link to
    another scheme or host is refused: the client signs only for its own host.
    """
    absolute = urljoin(current_url, link)
    target, here = urlsplit(absolute), urlsplit(current_url)
    if (target.scheme, target.netloc) != (here.scheme, here.netloc):
        raise PaginationError(
            f"the server sent a page link to another host ({target.scheme}://{target.netloc}); "
            "not following it"
        )
    params: dict[str, str] = {}
    for name, value in parse_qsl(target.query, keep_blank_values=True):
        if name not in SIGNATURE_PARAMS:
            params[name] = value
    return f"{target.scheme}://{target.netloc}{target.path}", params


def link_identity(url: str, params: Mapping[str, str]) -> Hashable:
    """What makes two links the same request (auth parameters aside)."""
    return (url, tuple(sorted(params.items())))


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def page_from_envelope(
    envelope: Mapping[str, Any], items_key: str, *, offset: int, limit: int
) -> Page[dict[str, Any]]:
    """Read a listing page out of a SUCCESS envelope.

    A missing list is an error (a walk must never end quietly because of a
    shape it did not expect); ``null`` is read as an empty page.
    """
    if items_key not in envelope:
        raise KeyError(items_key)
    items = envelope[items_key]
    if items is None:
        items = []
    elif not isinstance(items, list):
        raise TypeError(f"{items_key!r} is a {type(items).__name__}, not a list")
    paging = envelope.get("paging")
    if not isinstance(paging, Mapping):
        return Page(items, offset, limit, received=len(items))
    next_link = paging.get("next")
    previous = paging.get("previous")
    return Page(
        items,
        offset,
        limit,
        total_records=_optional_int(paging.get("totalRecords")),
        next=next_link if isinstance(next_link, str) and next_link else None,
        previous=previous if isinstance(previous, str) and previous else None,
        received=len(items),
        paged=True,
    )
