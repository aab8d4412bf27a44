"""How a client builds its listings: the window of pages, the paginated GET, the walks.

Every paginated listing of ``MettlClient`` is one lazy ``GET`` walked page by
page (:meth:`Lister.paged`); the results of a schedule are one such listing
(:meth:`Lister.results`), and the results of every schedule are many of them
walked at once (:meth:`Lister.all_results`). Nothing is sent until a listing
is iterated; the arguments are checked when it is built.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ._convert import decode_result_page
from ._endpoints import (
    RESULT_SORTS,
    SORT_ORDERS,
    ResultSort,
    SortOrder,
    check_choice,
    newest_first,
    result_params,
    schedule_record,
    typed_result,
    typed_schedule,
)
from ._errors import ConfigurationError
from ._models import CandidateResult, Schedule
from ._paging import RawRecord, check_page_size
from ._protocol import Request, path_segment
from ._streaming import AccountResults, Fetch, Listing, ListingSpec, PageDecoder, as_raw, iterate

__all__ = ["Lister", "ScheduleRef"]

T = TypeVar("T")
Raw = RawRecord
#: A schedule to walk: a Schedule from a listing, its wire mapping, or an access key.
ScheduleRef = Any


class Lister:
    """The listings of one client: ``fetch`` sends, ``url`` makes an API path absolute."""

    def __init__(self, fetch: Fetch, url: Callable[[str], str], *, max_in_flight: int) -> None:
        self._fetch = fetch
        self._url = url
        self._max_in_flight = max_in_flight

    def window(self, window: int | None) -> int:
        """Pages fetched at once: ``window``, checked, or the client's ``max_in_flight``."""
        if window is None:
            return self._max_in_flight
        if window < 1:
            raise ConfigurationError(f"window must be >= 1 page, got {window!r}")
        return window

    def paged(
        self,
        path: str,
        params: dict[str, str],
        convert: Callable[[Raw], T],
        *,
        label: str,
        items_key: str,
        key_field: str | None,
        window: int | None,
        default_sort: str | None = None,
        slots: asyncio.Semaphore | None = None,
        decode: PageDecoder | None = None,
    ) -> Listing[T]:
        """The one way a paginated listing is built: lazy ``GET path`` walked page by page.

        ``params`` already hold the first page's ``limit`` and ``offset``, in the
        order they are sent. ``default_sort`` is the listing's default sort
        (newest first: new records appear at its start); None for a listing
        that takes no sort. ``decode`` reads each page (default: scanned into
        RawRecords); ``convert`` takes what it gives.
        """
        spec = ListingSpec(
            label=label,
            request=Request("GET", self._url(path), params),
            items_key=items_key,
            key_field=key_field,
            window=self.window(window),
            grows_at_front=default_sort is None or newest_first(params, default_sort),
        )
        return Listing(self._fetch, spec, convert, slots=slots, decode=decode)

    def results(
        self,
        access_key: str,
        convert: Callable[[Raw], T],
        *,
        label: str,
        include_recommendation: bool,
        include_essay_responses: bool,
        sort: ResultSort | None,
        sort_order: SortOrder | None,
        page_size: int,
        window: int | None,
        slots: asyncio.Semaphore | None = None,
        decode: PageDecoder | None = None,
    ) -> Listing[T]:
        """Article 16: the results of one schedule (``access_key`` checked by the caller)."""
        params = result_params(
            recommendation=include_recommendation, essay_responses=include_essay_responses
        )
        params["limit"] = str(check_page_size(page_size))
        params["offset"] = "0"
        check_choice("sort", sort, RESULT_SORTS, params)
        check_choice("sort_order", sort_order, SORT_ORDERS, params)
        return self.paged(
            f"/schedules/{path_segment(access_key, 'access_key')}/candidates",
            params,
            convert,
            label=label,
            items_key="candidates",
            key_field="email",
            window=window,
            default_sort="testStartTime",
            slots=slots,
            decode=decode,
        )

    def all_results(
        self,
        *,
        schedules: Iterable[ScheduleRef] | AsyncIterable[ScheduleRef] | None,
        every_schedule: Callable[[], AsyncIterable[Raw]],
        schedule_raw: Callable[[str], Awaitable[dict[str, Any]]],
        concurrency: int | None,
        include_recommendation: bool,
        include_essay_responses: bool,
        page_size: int,
        window: int | None,
    ) -> AccountResults[Schedule, CandidateResult]:
        """The results of every schedule given (default: ``every_schedule()``, listed as
        the walk goes), ``concurrency`` schedules at once; an access key among
        ``schedules`` is read with ``schedule_raw``."""
        concurrency = self.window(concurrency)
        check_page_size(page_size)
        window = self.window(window)

        async def source() -> AsyncGenerator[Raw, None]:
            if schedules is None:
                async for raw in every_schedule():
                    yield raw
                return
            async for item in iterate(schedules):
                yield schedule_record(await schedule_raw(item) if isinstance(item, str) else item)

        def listing_for(schedule: Raw, slots: Any) -> Listing[Raw]:
            access_key = str(schedule.get("accessKey") or "")
            name = schedule.get("name")
            return self.results(
                access_key,
                as_raw,
                label=f"schedule {access_key}" + (f" ({name})" if name else ""),
                include_recommendation=include_recommendation,
                include_essay_responses=include_essay_responses,
                sort=None,
                sort_order=None,
                page_size=page_size,
                window=window,
                slots=slots,
            )

        return AccountResults(
            source,
            listing_for,
            typed_schedule,
            typed_result,
            concurrency=concurrency,
            page_budget=2 * self._max_in_flight,
            decode_result=decode_result_page,
        )
