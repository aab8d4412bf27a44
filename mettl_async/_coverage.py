"""The proof a walk keeps that it missed nothing while the listing changed under it.

Mettl's listings are offset based. Records that arrive (at the front, in the
default order: newest first) move every record after them to a later offset;
records deleted move every record after them to an earlier one. A page read
after such a change and its neighbour read before it no longer meet: a record
that existed the whole time can fall between them (a gap), or appear in both (a
duplicate, which the walk drops by key). Pages fetched concurrently, or
answered late, are read in any order, so shifts either way open gaps.

A walk here keeps a *chain*: the records it has proven to be every record that
existed throughout the walk, up to the chain's last record (its *end*). A page
extends the chain when either

- it holds a record of the chain and records after it (an *anchor*): when the
  page was read, those records followed that one with nothing in between, so
  no record that existed throughout is missing up to the page's last record,
  whenever the page was read; or
- the walk has seen no sign of change yet, the listing has ``totalRecords``
  and new records appear only at its front, and the page starts right after
  where the chain's end was seen and reports the first page's total. Since the
  first page was read (alone, before any other), a record has moved by the
  arrivals less the deletions before it: at least by the change of the total,
  and the further down the listing, the less. While every page reports the
  same total and none repeats a record of the one before it, no record can have
  moved back at the boundary between two of them: nothing fell in between.
  (Only a burst of arrivals and as many deletions between two reads, a page's
  worth or more, would cancel out in the totals unseen; from the first sign of
  change on, the walk relies on overlaps alone, which assume nothing.)

Anything else is a *break*: the walk reads a repair page placed where the
chain's end should now be, and goes on from the page that holds it. The one
rule "a page must meet the chain" covers arrivals and deletions, pages read in
order or not, with or without totals. A page at offset 0 meets every chain
where both start. A page whose records are all on the chain already, before its
end (arrivals moved them down), is *covered*: it proves nothing new, and says
where the chain's end is now (counted on from the latest chain record it holds);
the walk goes on from there. A walk is complete when a page that extends the chain is
the last of the listing by what the server said when it was read.

Pure: no I/O, no clock. The walk (``_pagewalk``) fetches, this judges.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Final, Literal

import attrs

from ._paging import Page

__all__ = ["Coverage", "Verdict"]

#: Chain records remembered (in pages), to recognise a page that meets the chain.
RECENT_PAGES: Final = 3


@attrs.frozen
class Verdict:
    """What a page does for the chain.

    ``extend``: records from ``start`` on are new to the chain (the page met it);
    ``covered``: the page lies within the chain already (nothing new proven);
    ``break``: the page does not meet the chain; ``seek`` is where the chain's
    end is estimated to be now (the offset a repair page should hold).
    """

    kind: Literal["extend", "covered", "break"]
    start: int = 0
    seek: int = 0


class Coverage:
    """The chain of one walk: what it has proven, and where its end was last seen.

    ``step`` is the page size the server serves; ``front_only`` says new records
    appear only at the front of the listing (its default sort), which the proof
    by totals needs; ``keyed`` says records have identities (without them nothing
    can be recognised, and every page is taken as it comes).
    """

    def __init__(self, step: int, *, front_only: bool, keyed: bool) -> None:
        self.step = step
        self.front_only = front_only
        self.keyed = keyed
        #: Recent chain records -> their place in the chain (1, 2, ...), oldest first.
        self._recent: dict[Hashable, int] = {}
        self._count = 0
        #: The offset at which the chain's last record was last seen.
        self.end_offset = -1
        #: Where the chain's end is now, as the last page judged tells: where it was
        #: seen, or, after a covered page, counted on from the chain record it held
        #: (its :attr:`Verdict.seek`). The next page is planned from here.
        self.place = -1
        #: ``totalRecords`` of the page that last extended the chain.
        self.end_total: int | None = None
        #: The walk has proven its chain reaches the end of the listing.
        self.complete = False
        #: No sign of any change so far: every total equal, no shift, no break.
        self.quiet = True
        #: The first page's total (None: the server gives none).
        self.base_total: int | None = None

    def start(self, page: Page[Any], keys: Sequence[Hashable]) -> None:
        """The first page, read alone: the chain's start, and what later totals compare to."""
        self.base_total = page.total_records
        self._extend(page, keys, 0)

    @property
    def totals_prove(self) -> bool:
        """Whether the next page may be proven by its total (see the module)."""
        return self.quiet and self.front_only and self.keyed and self.base_total is not None

    # -- judging a page --------------------------------------------------------------

    def judge(self, page: Page[Any], keys: Sequence[Hashable]) -> Verdict:
        """What ``page`` does for the chain, updating it (see :class:`Verdict`)."""
        if not self.keyed:
            self._extend(page, keys, 0)
            return Verdict("extend")
        total = page.total_records
        by_total = self.totals_prove and page.offset == self.end_offset + 1
        if total != self.base_total:
            self.quiet = by_total = False
        found, latest = self._latest_in(keys)
        if found >= 0:
            position = page.offset + found
            if latest != self._count or position != self.end_offset:
                self.quiet = False
            if latest == self._count:
                self.end_offset = position  # where the chain's end is now
            if found < len(keys) - 1 or page.is_end():
                # What follows the chain's record here followed it when the page was
                # read. (A page ending with it, the last of the listing then: the
                # chain's later records were deleted, and nothing came after.)
                self._extend(page, keys, found + 1)
                return Verdict("extend", found + 1)
            # Every record is behind the chain's end, which is further on (arrivals
            # before the page moved it there): the walk goes on from there, not from
            # where the end was last seen (a page read there again holds the same).
            self.place = position + (self._count - latest)
            return Verdict("covered", seek=self.place)
        if by_total:
            self._extend(page, keys, 0)
            return Verdict("extend")
        self.quiet = False
        if page.offset == 0:
            # The listing's first page meets the chain where both start: every record
            # before the chain's end that existed throughout was yielded, and the page
            # holds everything from the start to its last record.
            self._extend(page, keys, 0)
            return Verdict("extend")
        # The chain's end is before this page: records were deleted before it, or
        # the page was read before records arrived that moved the end further on.
        moved = 0
        if total is not None and self.end_total is not None:
            moved = max(0, self.end_total - total)
        return Verdict("break", seek=max(0, page.offset - 1 - moved))

    def _latest_in(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        """The index in ``keys`` of the latest chain record there, and its place (-1, 0: none)."""
        recent = self._recent
        common = recent.keys() & keys  # one pass in C: most pages share 0 or 1 record
        if not common:
            return -1, 0
        latest_key = max(common, key=recent.__getitem__)
        return list(keys).index(latest_key), recent[latest_key]

    def _extend(self, page: Page[Any], keys: Sequence[Hashable], start: int) -> None:
        recent = self._recent
        new = keys[start:]
        for key in recent.keys() & new:  # read again: moved to the end, with a new place
            del recent[key]
        first = self._count + 1
        self._count += len(new)
        recent.update(zip(new, range(first, self._count + 1), strict=True))
        keep = RECENT_PAGES * max(self.step, 1)
        if len(recent) > 2 * keep:
            self._recent = dict(list(recent.items())[-keep:])
        if page.received:
            self.end_offset = page.offset + page.received - 1
        self.place = self.end_offset
        if page.total_records is not None:
            self.end_total = page.total_records
        self.complete = page.is_end()
