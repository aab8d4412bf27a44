"""``MettlClient``: one object per account, one method per endpoint."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import orjson

from ._client_base import ClientBase
from ._config import (
    DEFAULT_BASE_URL,
    ENV_BASE_URL,
    EU_BASE_URL,
    ClientConfig,
    ClientOptions,
    keys_from,
)
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
    member,
    result_params,
    typed_assessment,
    typed_instance,
    typed_pbt,
    typed_result,
    typed_schedule,
)
from ._lister import Lister, ScheduleRef
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
from ._paging import check_page_size
from ._protocol import Request, path_segment
from ._registration import checked_registrations, register_in_chunks, registration_options
from ._retry import RetryPolicy
from ._session import DEFAULT_MAX_RESPONSE_BYTES, Transport
from ._streaming import AccountResults, Listing
from ._tracing import AttemptHook
from ._unpaged import UnpagedListing
from ._uploads import logo_part, white_label_parts
from ._validation import pbt_id_problems, raise_if

if TYPE_CHECKING:
    import aiohttp
    from opentelemetry.trace import TracerProvider

__all__ = ["DEFAULT_BASE_URL", "EU_BASE_URL", "MettlClient"]


class MettlClient(ClientBase):
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

    ``tracer_provider``, ``on_request`` and ``on_response``: spans (with the
    ``otel`` extra) and per-attempt hooks; see "Tracing and metrics" in the README.
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
        self._config = config = ClientConfig.create(
            public_key,
            private_key,
            environ=os.environ,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            max_in_flight=max_in_flight,
            requests_per_second=requests_per_second,
            retry=retry,
            clock=clock,
            correct_clock_skew=correct_clock_skew,
            max_response_bytes=max_response_bytes,
            throttle_deadline=throttle_deadline,
        )
        self._transport = Transport(
            config,
            session=session,
            tracer_provider=tracer_provider,
            on_request=on_request,
            on_response=on_response,
        )
        self._lister = Lister(
            self._transport.call_with, self.url, max_in_flight=config.max_in_flight
        )

    @classmethod
    def from_env(
        cls, *, environ: Mapping[str, str] | None = None, **options: Unpack[ClientOptions]
    ) -> MettlClient:
        """A client from ``METTL_PUBLIC_KEY``, ``METTL_PRIVATE_KEY`` and ``METTL_BASE_URL``.

        The same as ``MettlClient()`` with no keys, except that ``environ`` (default:
        ``os.environ``) is where the variables are read. ``METTL_BASE_URL`` is
        optional (default ``https://api.mettl.com``; the EU host is
        ``https://api.mercermettl.eu``); ``base_url`` wins over it. The other
        keyword arguments are the constructor's, with its defaults.
        """
        env = os.environ if environ is None else environ
        public_key, private_key = keys_from(env)
        options["base_url"] = options.get("base_url") or env.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        return cls(public_key, private_key, **options)

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
                self.url(f"/assessments/{check_assessment_id(assessment_id)}/schedules"),
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
        return self._lister.paged(
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
        return self._lister.results(
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
        return self._lister.all_results(
            schedules=schedules,
            every_schedule=lambda: self.iter_schedules(page_size=100).raw(),
            schedule_raw=self.get_schedule_raw,
            concurrency=concurrency,
            include_recommendation=include_recommendation,
            include_essay_responses=include_essay_responses,
            page_size=page_size,
            window=window,
        )

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
        path = "/pbts/add" if self._config.api_version == "v1" else "/pbts"
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
        return self._lister.paged(
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
        an answer: bad keys, Mettl down) is that failure raised: one chunk's
        error as itself, several chunks' as one
        :class:`~mettl_async.RegistrationError` carrying each (``errors``) and
        caught by ``except`` of the class they share (``ServerError`` when each
        chunk got one). A chunk is retried only when Mettl cannot have acted on
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
        return await register_in_chunks(self._transport.call, url, registrations, options)

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
        if self._config.api_version == "v3":
            params["limit"] = str(page_size)
            params["offset"] = "0"
            return self._lister.paged(
                path,
                params,
                typed_instance,
                label=label,
                items_key="testInstances",
                key_field=None,
                window=window,
                decode=decode_instance_page,
            )
        self._lister.window(window)
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
