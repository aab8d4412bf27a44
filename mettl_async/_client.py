"""``MettlClient``: one object per account, one method per endpoint."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from ._convert import (
    candidate_result_from_wire,
    decode_instance_page,
    decode_result_page,
    decode_schedule_page,
    schedule_from_wire,
    structure,
    to_json,
)
from ._endpoints import (
    ASSESSMENT_SORTS,
    RESULT_SORTS,
    SCHEDULE_SORTS,
    SORT_ORDERS,
    AssessmentSort,
    ResultSort,
    ScheduleSort,
    SortOrder,
    check_access_key,
    check_assessment_id,
    check_choice,
    check_email,
    check_schedule_edit,
    created_assessment_id,
    filter_param,
    logo_part,
    member,
    newest_first,
    result_params,
    schedule_record,
    typed_assessment,
    typed_instance,
    typed_pbt,
    typed_result,
    typed_schedule,
    white_label_parts,
)
from ._errors import ConfigurationError, RequestError
from ._models import (
    PBT,
    AccountInfo,
    Assessment,
    AssessmentInfo,
    AssessmentSettings,
    CandidateRegistration,
    CandidateResult,
    CreatedSchedule,
    RegistrationOutcome,
    Schedule,
    ScheduleFilter,
    ScheduleSettings,
    TestInstance,
    WhiteLabel,
)
from ._paging import RawRecord, check_page_size
from ._protocol import FilePart, Placement, Request, endpoint_url, path_segment
from ._registration import (
    checked_registrations,
    chunked,
    merged_outcomes,
    registration_json,
    registration_options,
    registration_outcomes,
)
from ._retry import RetryPolicy
from ._session import DEFAULT_MAX_RESPONSE_BYTES, ClientStats, Transport
from ._signing import SigningKey, algorithm_for_version
from ._streaming import AccountResults, Listing, ListingSpec, PageDecoder, as_raw, iterate
from ._tracing import AttemptHook
from ._unpaged import UnpagedListing
from ._validation import is_finite_number, is_whole_number, pbt_id_problems, raise_if

if TYPE_CHECKING:
    import aiohttp
    from opentelemetry.trace import TracerProvider

__all__ = ["DEFAULT_BASE_URL", "EU_BASE_URL", "MettlClient"]

DEFAULT_BASE_URL: Final = "https://api.mettl.com"
EU_BASE_URL: Final = "https://api.mercermettl.eu"
ENV_PUBLIC_KEY: Final = "METTL_PUBLIC_KEY"
ENV_PRIVATE_KEY: Final = "METTL_PRIVATE_KEY"
ENV_BASE_URL: Final = "METTL_BASE_URL"

T = TypeVar("T")
Raw = RawRecord
#: A schedule to walk: a Schedule from a listing, its wire mapping, or an access key.
ScheduleRef = Any


def _check_base_url(base_url: str) -> str:
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0..65535
    except ValueError as exc:
        raise ConfigurationError(f"base_url is not a valid URL ({exc}): {base_url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base_url must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, "
            f"got {base_url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url must not carry a query or fragment: {base_url!r}")
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments and segments[-1].lower() in ("v1", "v2", "v3"):
        host = urlunsplit(parts._replace(path="/".join(["", *segments[:-1]])))
        raise ConfigurationError(
            f"base_url must not end with the API version (the client adds "
            f"/{segments[-1].lower()} itself): use {host!r}, not {base_url!r} "
            "(api_version= chooses the version)"
        )
    return base_url.rstrip("/")


def _positive_finite(value: object) -> bool:
    return is_finite_number(value) and value > 0


def _check_seconds(name: str, value: object) -> None:
    """A duration option: a finite number of seconds > 0 (``nan`` would mean no limit)."""
    if not _positive_finite(value):
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def _keys_from(
    env: Mapping[str, str], *, public_key: str | None = None, private_key: str | None = None
) -> tuple[str, str]:
    """The keys not given, from ``env``; a missing variable is named in the error."""
    public = public_key if public_key is not None else env.get(ENV_PUBLIC_KEY)
    private = private_key if private_key is not None else env.get(ENV_PRIVATE_KEY)
    missing = [
        name
        for name, given, value in (
            (ENV_PUBLIC_KEY, public_key, public),
            (ENV_PRIVATE_KEY, private_key, private),
        )
        if given is None and not value
    ]
    if missing:
        names = " and ".join(missing)
        raise ConfigurationError(
            f"{names} {'is' if len(missing) == 1 else 'are'} not set: export your Mettl API "
            f"keys as {ENV_PUBLIC_KEY} and {ENV_PRIVATE_KEY}, or pass public_key= and "
            "private_key="
        )
    return public or "", private or ""


class MettlClient:
    """An async client for the Mettl Examine REST API.

    Use it as an async context manager::

        async with MettlClient() as mettl:
            account = await mettl.get_account()

    Keys not given are read from ``METTL_PUBLIC_KEY`` and ``METTL_PRIVATE_KEY``
    (a missing variable is a :class:`~mettl_async.ConfigurationError` naming
    it), and a ``base_url`` not given from ``METTL_BASE_URL``, else
    ``https://api.mettl.com`` (the EU host is ``https://api.mercermettl.eu``).
    ``api_version`` is ``v1`` (HMAC-SHA1), ``v2`` or ``v3`` (HMAC-SHA256).

    It owns an ``aiohttp.ClientSession`` (created on first use) unless you pass
    ``session``, which it then borrows and leaves open. Every request is signed
    afresh (fresh ``ts``) on every attempt; at most ``max_in_flight`` requests
    are in flight at once across everything this client does, optionally spaced
    to ``requests_per_second``. ``timeout`` is the total seconds one attempt may
    take; ``retry`` decides what is retried and how long to wait. An answer
    larger than ``max_response_bytes`` (32 MiB by default) is not read further:
    the call raises :class:`~mettl_async.ResponseTooLargeError`, not retried.

    Throttling is not failure: when Mettl refuses requests for their rate (E509,
    HTTP 429) the client slows down, learning the rate Mettl allows (shared by
    everything it sends; ``requests_per_second`` stays a hard ceiling), and
    tries the refused calls again, POSTs included, for up to
    ``throttle_deadline`` seconds per call (``None``: as long as it takes),
    then raises :class:`ThrottledError`. ``stats`` shows the learned rate.

    With ``opentelemetry-api`` installed (the ``otel`` extra), each call is a
    span of ``tracer_provider`` (default: the global one; a
    ``NoOpTracerProvider`` turns tracing off), walks and runs their parents;
    ``asgn`` is redacted everywhere. ``on_request`` and ``on_response`` are
    called with an :class:`AttemptInfo` before and after each attempt (for
    metrics). See "Tracing and metrics" in the README.
    """

    def __init__(
        self,
        public_key: str | None = None,
        private_key: str | None = None,
        *,
        base_url: str | None = None,
        api_version: str = "v2",
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
        max_in_flight: int = 16,
        requests_per_second: float | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        correct_clock_skew: bool = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        throttle_deadline: float | None = 600.0,
        tracer_provider: TracerProvider | None = None,
        on_request: AttemptHook | None = None,
        on_response: AttemptHook | None = None,
    ) -> None:
        if public_key is None or private_key is None:
            public_key, private_key = _keys_from(
                os.environ, public_key=public_key, private_key=private_key
            )
        if not public_key:
            raise ConfigurationError("the Mettl public key is empty")
        if not private_key:
            raise ConfigurationError("the Mettl private key is empty")
        if base_url is None:
            base_url = os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        try:
            algorithm = algorithm_for_version(api_version)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not is_whole_number(max_in_flight) or max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be >= 1, got {max_in_flight!r}")
        _check_seconds("timeout", timeout)
        if requests_per_second is not None and not _positive_finite(requests_per_second):
            raise ConfigurationError(
                "requests_per_second must be a finite number > 0 or None, "
                f"got {requests_per_second!r}"
            )
        if not is_whole_number(max_response_bytes) or max_response_bytes < 1:
            raise ConfigurationError(
                f"max_response_bytes must be a whole number >= 1, got {max_response_bytes!r}"
            )
        if throttle_deadline is not None and not throttle_deadline >= 0:
            raise ConfigurationError(
                f"throttle_deadline must be >= 0 seconds or None, got {throttle_deadline!r}"
            )
        self._public_key = public_key
        self._base_url = _check_base_url(base_url)
        self._api_version = api_version
        self._max_in_flight = max_in_flight
        # The private key lives only inside the SigningKey's HMAC state.
        self._transport = Transport(
            public_key=public_key,
            key=SigningKey(private_key, algorithm=algorithm),
            session=session,
            timeout=timeout,
            max_in_flight=max_in_flight,
            requests_per_second=requests_per_second,
            retry=retry if retry is not None else RetryPolicy(),
            clock=clock,
            correct_clock_skew=correct_clock_skew,
            max_response_bytes=max_response_bytes,
            throttle_deadline=throttle_deadline,
            tracer_provider=tracer_provider,
            on_request=on_request,
            on_response=on_response,
        )

    @classmethod
    def from_env(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_version: str = "v2",
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
        max_in_flight: int = 16,
        requests_per_second: float | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        correct_clock_skew: bool = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        throttle_deadline: float | None = 600.0,
        tracer_provider: TracerProvider | None = None,
        on_request: AttemptHook | None = None,
        on_response: AttemptHook | None = None,
    ) -> MettlClient:
        """A client from ``METTL_PUBLIC_KEY``, ``METTL_PRIVATE_KEY`` and ``METTL_BASE_URL``.

        The same as ``MettlClient()`` with no keys, except that ``environ`` (default:
        ``os.environ``) is where the variables are read. ``METTL_BASE_URL`` is
        optional (default ``https://api.mettl.com``; the EU host is
        ``https://api.mercermettl.eu``); ``base_url`` wins over it. The other
        arguments are the constructor's.
        """
        env = os.environ if environ is None else environ
        public_key, private_key = _keys_from(env)
        return cls(
            public_key,
            private_key,
            base_url=base_url or env.get(ENV_BASE_URL) or DEFAULT_BASE_URL,
            api_version=api_version,
            session=session,
            timeout=timeout,
            max_in_flight=max_in_flight,
            requests_per_second=requests_per_second,
            retry=retry,
            clock=clock,
            correct_clock_skew=correct_clock_skew,
            max_response_bytes=max_response_bytes,
            throttle_deadline=throttle_deadline,
            tracer_provider=tracer_provider,
            on_request=on_request,
            on_response=on_response,
        )

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the owned session (a borrowed one is left open). Idempotent."""
        await self._transport.close()

    def __repr__(self) -> str:
        shown = self._public_key[:8] + "…" if len(self._public_key) > 8 else self._public_key
        return (
            f"MettlClient(public_key={shown!r}, base_url={self._base_url!r}, "
            f"api_version={self._api_version!r})"
        )

    # -- properties ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def api_version(self) -> str:
        return self._api_version

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    @property
    def stats(self) -> ClientStats:
        """Requests sent, retries, failures and in-flight counts of this client."""
        return self._transport.stats

    # -- raw access ----------------------------------------------------------------

    def url(self, path: str) -> str:
        """The full URL (as signed) of an API path such as ``/schedules``."""
        if path.startswith(("http://", "https://")):
            return path
        if not path.startswith("/"):
            path = "/" + path
        return endpoint_url(self._base_url, self._api_version, path)

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        placement: Placement | None = None,
        files: tuple[FilePart, ...] = (),
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one signed request and return Mettl's JSON envelope.

        The low-level escape hatch under every endpoint method. ``path`` is
        relative to the API version (``/account``) with path segments already
        encoded (see :func:`mettl_async.path_segment`), or an absolute URL.
        ``params`` are raw string values, signed and URL-encoded once. Raises a
        :class:`~mettl_async.MettlError` subclass for every failure.
        """
        method = method.upper()
        if method not in ("GET", "POST", "DELETE"):
            raise ConfigurationError(f"Mettl uses GET, POST and DELETE, not {method!r}")
        if timeout is not None:
            _check_seconds("timeout", timeout)
        request = Request(
            method=method,
            url=self.url(path),
            params=dict(params or {}),
            placement=placement,
            files=files,
            timeout=timeout,
        )
        return await self._transport.call(request)

    # -- assessments and schedules (articles 8, 12, 13) -------------------------------

    async def create_assessment(self, assessment: Assessment) -> int:
        """Create an assessment (article 8, ``POST /assessments``); returns its id.

        The assessment is validated first (every problem in one
        :class:`ValidationError`, nothing sent), serialized once, and that one
        string is signed and sent in a form-urlencoded body.
        """
        assessment.validate()
        envelope = await self._transport.call(
            Request("POST", self.url("/assessments"), {"assessments": to_json(assessment)})
        )
        return created_assessment_id(envelope)

    async def create_schedule(
        self, assessment_id: int, schedule: ScheduleSettings
    ) -> CreatedSchedule:
        """Create a schedule (test link) of an assessment (article 13).

        ``schedule`` is validated for creation first (``sc.name``,
        ``sc.sourceApp``, ``sc.access.type``, ``sc.scheduleType`` and every
        conditional rule), then sent as ``sc`` in the query string, as the
        article's examples do (a very long one goes in the body instead).
        """
        schedule.validate(for_create=True)
        envelope = await self._transport.call(
            Request(
                "POST",
                self.url(f"/assessments/{int(assessment_id)}/schedules"),
                {"sc": to_json(schedule)},
                placement="query",
            )
        )
        path = f"/assessments/{assessment_id}/schedules"
        return structure(member(envelope, "createdSchedule", "POST", path), CreatedSchedule)

    async def get_schedule(self, access_key: str) -> Schedule:
        """One schedule (article 12, ``GET /schedules/{access-key}``)."""
        return schedule_from_wire(await self.get_schedule_raw(access_key))

    # -- listings ------------------------------------------------------------------

    def _window(self, window: int | None) -> int:
        if window is None:
            return self._max_in_flight
        if window < 1:
            raise ConfigurationError(f"window must be >= 1 page, got {window!r}")
        return window

    def _paged(
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
            request=Request("GET", self.url(path), params),
            items_key=items_key,
            key_field=key_field,
            window=self._window(window),
            grows_at_front=default_sort is None or newest_first(params, default_sort),
        )
        return Listing(self._transport.call_with, spec, convert, slots=slots, decode=decode)

    def iter_schedules(
        self,
        *,
        sort: ScheduleSort | None = None,
        sort_order: SortOrder | None = None,
        filter: ScheduleFilter | Mapping[str, Any] | str | None = None,
        page_size: int = 100,
        window: int | None = None,
    ) -> Listing[Schedule]:
        """Every schedule of the account (article 11, ``GET /schedules``).

        ``sort`` is ``createdAt`` (Mettl's default), ``testTaken`` or ``name``;
        ``sort_order`` is ``asc`` or ``desc``; ``filter`` is article 11's filter
        (a :class:`ScheduleFilter`, validated first; a mapping, serialized once;
        or a JSON string, sent as is). Pages
        of ``page_size`` (1..100) are fetched ``window`` at a time (default: the
        client's ``max_in_flight``). Lazy: nothing is sent until iteration.
        """
        params = {"limit": str(check_page_size(page_size)), "offset": "0"}
        check_choice("sort", sort, SCHEDULE_SORTS, params)
        check_choice("sort_order", sort_order, SORT_ORDERS, params)
        filter_param(filter, params)
        return self._paged(
            "/schedules",
            params,
            typed_schedule,
            label="the schedules of the account",
            items_key="schedules",
            key_field="accessKey",
            window=window,
            default_sort="createdAt",
            decode=decode_schedule_page,
        )

    def iter_candidate_results(
        self,
        access_key: str,
        *,
        include_recommendation: bool = False,
        include_essay_responses: bool = False,
        sort: ResultSort | None = None,
        sort_order: SortOrder | None = None,
        page_size: int = 100,
        window: int | None = None,
    ) -> Listing[CandidateResult]:
        """Every candidate's status and result in one schedule (article 16).

        ``include_recommendation`` sends ``ir={"recommendation":true}``,
        ``include_essay_responses`` sends ``qr=true``. ``sort`` is
        ``testStartTime`` (Mettl's default) or ``name``. Each candidate is
        yielded once, even if offsets shift while candidates arrive.
        """
        check_access_key(access_key)
        return self._results(
            access_key,
            typed_result,
            decode=decode_result_page,
            label=f"schedule {access_key}",
            include_recommendation=include_recommendation,
            include_essay_responses=include_essay_responses,
            sort=sort,
            sort_order=sort_order,
            page_size=page_size,
            window=window,
        )

    def _results(
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
        params = result_params(
            recommendation=include_recommendation, essay_responses=include_essay_responses
        )
        params["limit"] = str(check_page_size(page_size))
        params["offset"] = "0"
        check_choice("sort", sort, RESULT_SORTS, params)
        check_choice("sort_order", sort_order, SORT_ORDERS, params)
        return self._paged(
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

    def iter_all_results(
        self,
        *,
        schedules: Iterable[ScheduleRef] | AsyncIterable[ScheduleRef] | None = None,
        concurrency: int | None = None,
        include_recommendation: bool = False,
        include_essay_responses: bool = False,
        page_size: int = 100,
        window: int | None = None,
    ) -> AccountResults[Schedule, CandidateResult]:
        """Every candidate result of every schedule, as ``(schedule, result)`` pairs.

        ``schedules`` limits the walk to those given (schedules from
        :meth:`iter_schedules`, their mappings, or access keys); by default the
        account's schedules are listed as the walk goes. ``concurrency``
        schedules are walked at once (default: ``max_in_flight``), all under
        the client's one bound on requests in flight; results are yielded as
        they arrive, in order within each schedule.
        """
        concurrency = self._window(concurrency)
        check_page_size(page_size)
        window = self._window(window)

        async def source() -> AsyncGenerator[Raw, None]:
            if schedules is None:
                async for raw in self.iter_schedules(page_size=100).raw():
                    yield raw
                return
            async for item in iterate(schedules):
                yield await self._schedule_mapping(item)

        def listing_for(schedule: Raw, slots: Any) -> Listing[Raw]:
            access_key = str(schedule.get("accessKey") or "")
            name = schedule.get("name")
            return self._results(
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

    async def _schedule_mapping(self, item: ScheduleRef) -> Raw:
        if isinstance(item, str):
            item = await self.get_schedule_raw(item)
        return schedule_record(item)

    async def get_schedule_raw(self, access_key: str) -> dict[str, Any]:
        """One schedule's wire mapping (article 12, ``GET /schedules/{access-key}``)."""
        check_access_key(access_key)
        envelope = await self._transport.call(
            Request("GET", self.url(f"/schedules/{path_segment(access_key, 'access_key')}"))
        )
        return member(envelope, "schedule", "GET", f"/schedules/{access_key}")

    # -- the account (articles 1 to 5) ---------------------------------------------

    async def get_account(self) -> AccountInfo:
        """The account's details (article 1, ``GET /account``)."""
        envelope = await self._transport.call(Request("GET", self.url("/account")))
        return structure(member(envelope, "accountInfo", "GET", "/account"), AccountInfo)

    async def update_logo(
        self, image: bytes, *, filename: str | None = None, content_type: str | None = None
    ) -> None:
        """Replace the account's logo (article 2, ``POST /account/upload-logo``).

        ``image`` is a JPEG, PNG or GIF of at most 100 KB (160x60 px
        recommended), checked before anything is sent: its format is read
        from the bytes, and ``filename`` (default ``logo.png`` & co.) and
        ``content_type`` (default: the format's), when given, must agree. The
        image travels as the multipart field ``logo``, which is not signed.
        """
        part = logo_part(image, filename=filename, content_type=content_type)
        await self._transport.call(
            Request("POST", self.url("/account/upload-logo"), placement="multipart", files=(part,))
        )

    async def update_white_label(
        self,
        white_label: WhiteLabel | Mapping[str, Any],
        *,
        support_numbers: Sequence[str] | None = None,
        favicon: bytes | None = None,
        cover: bytes | None = None,
    ) -> None:
        """Set the test window's colours, support numbers and images (article 3).

        ``white_label`` is sent as ``wl`` (a :class:`WhiteLabel`, validated,
        or a mapping sent as is, for properties the class does not know);
        ``support_numbers`` as ``sn`` (at most two). ``favicon`` (PNG or ICO,
        at most 10 KB) and ``cover`` (JPEG, PNG or GIF) are multipart files,
        not signed. Everything is checked before anything is sent. Mettl lets
        only authorised accounts use this endpoint (others get
        :class:`~mettl_async.PermissionDeniedError`).
        """
        params, files = white_label_parts(
            white_label, support_numbers=support_numbers, favicon=favicon, cover=cover
        )
        await self._transport.call(
            Request(
                "POST",
                self.url("/account/update-white-labeling"),
                params,
                placement="multipart" if files else None,
                files=files,
            )
        )

    def iter_pbts(self) -> UnpagedListing[PBT]:
        """Every Pre-Built Test of Mettl's library (article 4, ``GET /pbts``).

        Mettl sends the whole library in one answer (no paging): the listing
        sends one request when iterated. Lazy; ``.raw()`` yields the JSON as sent.
        """
        return UnpagedListing(
            self._transport.call_with,
            Request("GET", self.url("/pbts")),
            "pbts",
            typed_pbt,
            label="the PBTs of Mettl's library",
            key_field="id",
        )

    async def add_pbts(self, ids: Iterable[int]) -> list[Any]:
        """Add PBTs (ids from :meth:`iter_pbts`) to the account's assessments (article 5).

        Sent as ``pbts=[1336,1255,1176]`` to ``POST /pbts`` (``/pbts/add`` on
        v1, as the v1 documentation has it). Returns the ``pbts`` list of
        Mettl's answer as sent (its shape is not documented; empty if absent).
        """
        wanted = list(ids)
        raise_if(pbt_id_problems(wanted), subject="PBT ids")
        path = "/pbts/add" if self._api_version == "v1" else "/pbts"
        envelope = await self._transport.call(
            Request("POST", self.url(path), {"pbts": orjson.dumps(wanted).decode()})
        )
        added = envelope.get("pbts")
        return list(added) if isinstance(added, list) else []

    # -- assessments (articles 6, 7, 9, 10) -----------------------------------------

    def iter_assessments(
        self,
        *,
        sort: AssessmentSort | None = None,
        sort_order: SortOrder | None = None,
        page_size: int = 100,
        window: int | None = None,
    ) -> Listing[AssessmentInfo]:
        """Every assessment of the account (article 6, ``GET /assessments``).

        ``sort`` is ``createdAt`` (Mettl's default), ``testTaken`` or
        ``name``; ``sort_order`` is ``asc`` or ``desc`` (default). Paginated
        like article 16: pages of ``page_size`` (1..100) fetched ``window`` at
        a time, each assessment yielded once (by ``id``), a short walk raised
        as :class:`~mettl_async.IncompleteListingError`. Lazy.
        """
        params = {"limit": str(check_page_size(page_size)), "offset": "0"}
        check_choice("sort", sort, ASSESSMENT_SORTS, params)
        check_choice("sort_order", sort_order, SORT_ORDERS, params)
        return self._paged(
            "/assessments",
            params,
            typed_assessment,
            label="the assessments of the account",
            items_key="assessments",
            key_field="id",
            window=window,
            default_sort="createdAt",
        )

    async def get_assessment(self, assessment_id: int) -> AssessmentInfo:
        """One assessment (article 7, ``GET /assessments/{assessment-id}``)."""
        path = f"/assessments/{check_assessment_id(assessment_id)}"
        envelope = await self._transport.call(Request("GET", self.url(path)))
        return structure(member(envelope, "assessment", "GET", path), AssessmentInfo)

    async def edit_assessment_settings(
        self, assessment_id: int, settings: AssessmentSettings
    ) -> None:
        """Change an assessment's settings (article 9).

        Only the properties set on ``settings`` are sent (as ``as``), to
        ``POST /assessments/{assessment-id}/settings/edit`` (the path production
        code uses; article 9's syntax line is wrong). Validated first.
        """
        path = f"/assessments/{check_assessment_id(assessment_id)}/settings/edit"
        settings.validate()
        await self._transport.call(Request("POST", self.url(path), {"as": to_json(settings)}))

    def iter_assessment_schedules(
        self,
        assessment_id: int,
        *,
        filter: ScheduleFilter | Mapping[str, Any] | str | None = None,
    ) -> UnpagedListing[Schedule]:
        """Every schedule of one assessment (article 10).

        ``GET /assessments/{assessment-id}/schedules``, optionally narrowed by
        ``filter`` (as in :meth:`iter_schedules`). Mettl documents no paging
        here: the listing sends one request when iterated. Lazy.
        """
        path = f"/assessments/{check_assessment_id(assessment_id)}/schedules"
        params: dict[str, str] = {}
        filter_param(filter, params)
        return UnpagedListing(
            self._transport.call_with,
            Request("GET", self.url(path), params),
            "schedules",
            typed_schedule,
            label=f"the schedules of assessment {assessment_id}",
            key_field="accessKey",
        )

    # -- schedules (article 14) -------------------------------------------------------

    async def edit_schedule(self, access_key: str, settings: ScheduleSettings) -> Schedule | None:
        """Change a schedule (article 14, ``POST /schedules/{access-key}/edit``).

        ``settings`` is Create Schedule's model with every property optional
        (validated with ``for_create=False``: ``access.type`` is needed
        whenever ``access`` is sent); only the properties set are sent, as
        ``sc``. To have Mettl email candidates added to a ``ByInvitation``
        schedule, set ``access.send_email=True`` on every such call. Returns
        the schedule Mettl sends back, or ``None`` if it sends none.
        """
        check_access_key(access_key)
        check_schedule_edit(settings)
        path = f"/schedules/{path_segment(access_key, 'access_key')}/edit"
        envelope = await self._transport.call(
            Request("POST", self.url(path), {"sc": to_json(settings)}, placement="query")
        )
        schedule = envelope.get("schedule")
        return schedule_from_wire(schedule) if isinstance(schedule, dict) else None

    # -- candidates (articles 15, 17, 18, 19) -----------------------------------------

    async def register_candidates(
        self,
        access_key: str,
        candidates: Iterable[CandidateRegistration | Mapping[str, str]],
        *,
        allow_missing_mandatory_fields: bool = False,
        time_limit_seconds: int | None = None,
        show_custom_instructions: bool = False,
    ) -> list[RegistrationOutcome]:
        """Register candidates in a schedule and get each one's test link (article 15).

        ``candidates`` are :class:`CandidateRegistration` objects or mappings of
        registration-field labels to values (``{"Email Address": ...,
        "First Name": ..., "Last Name": ...}``). Any number is accepted: they
        are validated together first (every problem at once, nothing sent),
        then sent in chunks of 20 (Mettl's maximum per call), concurrently
        within the client's bound on requests in flight.

        Returns one :class:`RegistrationOutcome` per candidate, in the order
        given: the test link of each registered candidate, Mettl's error for
        each one it refused. A request that fails as a whole (a timeout, a
        network failure, an ERROR envelope like E607) makes its chunk's
        candidates fail with that error while the other chunks' outcomes are
        kept. Only when **every** chunk failed as a whole (so no candidate got
        an answer: bad keys, Mettl down) is that failure raised, the first
        chunk's error. A chunk is retried only when Mettl cannot have acted on
        it (a rate-limit answer, a connection refused), so the client never
        registers anyone twice. ``allow_missing_mandatory_fields``,
        ``time_limit_seconds`` (links expire after that many seconds) and
        ``show_custom_instructions`` are article 15's optional parameters.
        """
        check_access_key(access_key)
        registrations = checked_registrations(candidates, time_limit_seconds=time_limit_seconds)
        if not registrations:
            return []
        options = registration_options(
            allow_missing_mandatory_fields=allow_missing_mandatory_fields,
            show_custom_instructions=show_custom_instructions,
            time_limit_seconds=time_limit_seconds,
        )
        url = self.url(f"/schedules/{path_segment(access_key, 'access_key')}/candidates")
        chunks = chunked(registrations)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._register_chunk(url, chunk, options)) for chunk in chunks
                ]
        except ExceptionGroup as group:
            # Request failures are answers (see _register_chunk); anything else, such as a
            # closed client, is raised as itself, not wrapped in a group.
            raise group.exceptions[0] from None
        return merged_outcomes(chunks, [task.result() for task in tasks])

    async def _register_chunk(
        self, url: str, chunk: Sequence[CandidateRegistration], options: Mapping[str, str]
    ) -> list[RegistrationOutcome] | RequestError:
        request = Request("POST", url, {"rd": registration_json(chunk), **options})
        try:
            envelope = await self._transport.call(request)
            return registration_outcomes(chunk, envelope, path=request.path)
        except RequestError as error:
            return error

    async def get_candidate_result(
        self,
        access_key: str,
        email: str,
        *,
        include_recommendation: bool = False,
        include_response_styles: bool = False,
        include_essay_responses: bool = False,
    ) -> CandidateResult:
        """One candidate's status and result in a schedule (article 17).

        ``GET /schedules/{access-key}/candidates/{email}``, the email
        percent-encoded in the path (``+`` as ``%2B``, ``?`` as ``%3F``) and
        signed in that form. ``include_recommendation`` sends
        ``ir={"recommendation":true}``, ``include_response_styles`` ``rs=true``,
        ``include_essay_responses`` ``qr=true``. The PDF and HTML report links
        of a completed test are ``result.test_status.pdf_report`` and
        ``.html_report``. An unknown key or email raises
        :class:`~mettl_async.NotFoundError`.
        """
        check_access_key(access_key)
        check_email(email)
        params = result_params(
            recommendation=include_recommendation,
            response_styles=include_response_styles,
            essay_responses=include_essay_responses,
        )
        key, address = path_segment(access_key, "access_key"), path_segment(email, "email")
        path = f"/schedules/{key}/candidates/{address}"
        envelope = await self._transport.call(Request("GET", self.url(path), params))
        return candidate_result_from_wire(member(envelope, "candidate", "GET", path))

    async def get_candidate_result_raw(
        self,
        access_key: str,
        email: str,
        *,
        include_recommendation: bool = False,
        include_response_styles: bool = False,
        include_essay_responses: bool = False,
    ) -> dict[str, Any]:
        """:meth:`get_candidate_result`'s ``candidate`` mapping as Mettl sent it (article 17)."""
        check_access_key(access_key)
        check_email(email)
        params = result_params(
            recommendation=include_recommendation,
            response_styles=include_response_styles,
            essay_responses=include_essay_responses,
        )
        path = f"/schedules/{path_segment(access_key)}/candidates/{path_segment(email)}"
        envelope = await self._transport.call(Request("GET", self.url(path), params))
        return member(envelope, "candidate", "GET", path)

    def iter_candidate_results_in_account(
        self,
        email: str,
        *,
        include_essay_responses: bool = False,
        page_size: int = 100,
        window: int | None = None,
    ) -> Listing[TestInstance] | UnpagedListing[TestInstance]:
        """A candidate's status and result in every schedule of the account (article 18).

        ``GET /candidates/{email}`` (the email percent-encoded and signed so).
        Article 18 pages with ``limit``/``offset`` on v3 only: a client on v3
        walks pages of ``page_size`` like any listing; on v1 and v2 one request
        returns everything and neither parameter is sent. Either way the
        result is a lazy listing with ``.raw()``. ``include_essay_responses``
        sends ``qr=true``.
        """
        check_email(email)
        check_page_size(page_size)
        params = result_params(essay_responses=include_essay_responses)
        path = f"/candidates/{path_segment(email, 'email')}"
        label = f"the results of {email}"
        if self._api_version == "v3":
            params["limit"] = str(page_size)
            params["offset"] = "0"
            return self._paged(
                path,
                params,
                typed_instance,
                label=label,
                items_key="testInstances",
                key_field=None,
                window=window,
                decode=decode_instance_page,
            )
        self._window(window)
        return UnpagedListing(
            self._transport.call_with,
            Request("GET", self.url(path), params),
            "testInstances",
            typed_instance,
            label=label,
        )

    async def delete_candidate_result(self, access_key: str, email: str) -> None:
        """Delete a candidate's status and result in a schedule (article 19).

        ``DELETE /schedules/{access-key}/candidates/{email}``. Mettl deletes
        only a completed or expired test (an in-progress one is left alone);
        the candidate can then be registered again (:meth:`register_candidates`)
        to retake it. An unknown key or email raises
        :class:`~mettl_async.NotFoundError`.
        """
        check_access_key(access_key)
        check_email(email)
        key, address = path_segment(access_key, "access_key"), path_segment(email, "email")
        path = f"/schedules/{key}/candidates/{address}"
        await self._transport.call(Request("DELETE", self.url(path)))
