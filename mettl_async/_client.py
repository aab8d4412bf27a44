"""``MettlClient``: one object per account, one method per endpoint."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import urlsplit

from ._convert import candidate_result_from_wire, schedule_from_wire, structure, to_json
from ._errors import ConfigurationError, DecodeError, ValidationError, ValidationProblem
from ._models import (
    Assessment,
    CandidateResult,
    CreatedSchedule,
    Schedule,
    ScheduleFilter,
    ScheduleSettings,
)
from ._paging import RawRecord, check_page_size
from ._protocol import FilePart, Placement, Request, endpoint_url, path_segment
from ._retry import RetryPolicy
from ._session import ClientStats, Transport
from ._signing import SigningKey, algorithm_for_version
from ._streaming import AccountResults, Listing, ListingSpec, iterate

if TYPE_CHECKING:
    import aiohttp

__all__ = ["DEFAULT_BASE_URL", "EU_BASE_URL", "MettlClient"]

DEFAULT_BASE_URL: Final = "https://api.mettl.com"
EU_BASE_URL: Final = "https://api.mercermettl.eu"
ENV_PUBLIC_KEY: Final = "METTL_PUBLIC_KEY"
ENV_PRIVATE_KEY: Final = "METTL_PRIVATE_KEY"
ENV_BASE_URL: Final = "METTL_BASE_URL"

Raw = RawRecord
#: A schedule to walk: a Schedule from a listing, its wire mapping, or an access key.
ScheduleRef = Any
SCHEDULE_SORTS: Final = ("createdAt", "testTaken", "name")
RESULT_SORTS: Final = ("testStartTime", "name")
SORT_ORDERS: Final = ("asc", "desc")


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"base_url must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, "
            f"got {base_url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url must not carry a query or fragment: {base_url!r}")
    return base_url.rstrip("/")


class MettlClient:
    """An async client for the Mettl Examine REST API.

    Use it as an async context manager::

        async with MettlClient.from_env() as mettl:
            account = await mettl.request("GET", "/account")

    It owns an ``aiohttp.ClientSession`` (created on first use) unless you pass
    ``session``, which it then borrows and leaves open. Every request is signed
    afresh (fresh ``ts``) on every attempt; at most ``max_in_flight`` requests
    are in flight at once across everything this client does, optionally spaced
    to ``requests_per_second``. ``timeout`` is the total seconds one attempt may
    take; ``retry`` decides what is retried and how long to wait.
    """

    def __init__(
        self,
        public_key: str,
        private_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = "v2",
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
        max_in_flight: int = 16,
        requests_per_second: float | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        correct_clock_skew: bool = True,
    ) -> None:
        if not public_key:
            raise ConfigurationError("the Mettl public key is empty")
        if not private_key:
            raise ConfigurationError("the Mettl private key is empty")
        try:
            algorithm = algorithm_for_version(api_version)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be >= 1, got {max_in_flight!r}")
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        if requests_per_second is not None and requests_per_second <= 0:
            raise ConfigurationError(
                f"requests_per_second must be > 0 or None, got {requests_per_second!r}"
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
        )

    @classmethod
    def from_env(cls, *, environ: Mapping[str, str] | None = None, **kwargs: Any) -> MettlClient:
        """Build a client from ``METTL_PUBLIC_KEY``, ``METTL_PRIVATE_KEY`` and ``METTL_BASE_URL``.

        ``METTL_BASE_URL`` is optional (default ``https://api.mettl.com``; the EU
        host is ``https://api.mercermettl.eu``). Keyword arguments are passed on
        to the constructor and win over the environment.
        """
        env = os.environ if environ is None else environ
        missing = [name for name in (ENV_PUBLIC_KEY, ENV_PRIVATE_KEY) if not env.get(name)]
        if missing:
            names = " and ".join(missing)
            raise ConfigurationError(
                f"{names} {'is' if len(missing) == 1 else 'are'} not set: export your Mettl API "
                f"keys as {ENV_PUBLIC_KEY} and {ENV_PRIVATE_KEY}"
            )
        if env.get(ENV_BASE_URL):
            kwargs.setdefault("base_url", env[ENV_BASE_URL])
        return cls(env[ENV_PUBLIC_KEY], env[ENV_PRIVATE_KEY], **kwargs)

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
        assessment_id = envelope.get("assessmentId")
        if isinstance(assessment_id, bool) or not isinstance(assessment_id, int):
            raise DecodeError(
                f"Mettl sent no integer assessmentId (got {assessment_id!r})",
                method="POST",
                path="/assessments",
            )
        return assessment_id

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
        created = envelope.get("createdSchedule")
        if not isinstance(created, dict):
            raise DecodeError(
                "Mettl sent no 'createdSchedule' object",
                method="POST",
                path=f"/assessments/{assessment_id}/schedules",
            )
        return structure(created, CreatedSchedule)

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

    def iter_schedules(
        self,
        *,
        sort: str | None = None,
        sort_order: str | None = None,
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
        _check_choice("sort", sort, SCHEDULE_SORTS, params)
        _check_choice("sort_order", sort_order, SORT_ORDERS, params)
        if isinstance(filter, ScheduleFilter):
            filter.validate()
            params["filter"] = to_json(filter)
        elif filter is not None:
            params["filter"] = filter if isinstance(filter, str) else _minified(filter)
        spec = ListingSpec(
            label="the schedules of the account",
            request=Request("GET", self.url("/schedules"), params),
            items_key="schedules",
            key_field="accessKey",
            window=self._window(window),
        )
        return Listing(self._transport.call_with, spec, _typed_schedule)

    def iter_candidate_results(
        self,
        access_key: str,
        *,
        include_recommendation: bool = False,
        include_essay_responses: bool = False,
        sort: str | None = None,
        sort_order: str | None = None,
        page_size: int = 100,
        window: int | None = None,
    ) -> Listing[CandidateResult]:
        """Every candidate's status and result in one schedule (article 16).

        ``include_recommendation`` sends ``ir={"recommendation":true}``,
        ``include_essay_responses`` sends ``qr=true``. ``sort`` is
        ``testStartTime`` (Mettl's default) or ``name``. Each candidate is
        yielded once, even if offsets shift while candidates arrive.
        """
        if not access_key:
            raise ValidationError([ValidationProblem("access_key", "must not be empty")])
        return Listing(
            self._transport.call_with,
            self._results_spec(
                access_key,
                label=f"schedule {access_key}",
                include_recommendation=include_recommendation,
                include_essay_responses=include_essay_responses,
                sort=sort,
                sort_order=sort_order,
                page_size=page_size,
                window=window,
            ),
            _typed_result,
        )

    def _results_spec(
        self,
        access_key: str,
        *,
        label: str,
        include_recommendation: bool,
        include_essay_responses: bool,
        sort: str | None,
        sort_order: str | None,
        page_size: int,
        window: int | None,
    ) -> ListingSpec:
        params: dict[str, str] = {}
        if include_recommendation:
            params["ir"] = '{"recommendation":true}'
        if include_essay_responses:
            params["qr"] = "true"
        params["limit"] = str(check_page_size(page_size))
        params["offset"] = "0"
        _check_choice("sort", sort, RESULT_SORTS, params)
        _check_choice("sort_order", sort_order, SORT_ORDERS, params)
        return ListingSpec(
            label=label,
            request=Request(
                "GET", self.url(f"/schedules/{path_segment(access_key)}/candidates"), params
            ),
            items_key="candidates",
            key_field="email",
            window=self._window(window),
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
            spec = self._results_spec(
                access_key,
                label=f"schedule {access_key}" + (f" ({name})" if name else ""),
                include_recommendation=include_recommendation,
                include_essay_responses=include_essay_responses,
                sort=None,
                sort_order=None,
                page_size=page_size,
                window=window,
            )
            return Listing(self._transport.call_with, spec, _as_is, slots=slots)

        return AccountResults(
            source,
            listing_for,
            _typed_schedule,
            _typed_result,
            concurrency=concurrency,
            page_budget=2 * self._max_in_flight,
        )

    async def _schedule_mapping(self, item: ScheduleRef) -> Raw:
        if isinstance(item, str):
            item = await self.get_schedule_raw(item)
        if isinstance(item, RawRecord):
            return item
        if not isinstance(item, Mapping):
            item = getattr(item, "raw", None)  # a typed Schedule keeps what Mettl sent
        if isinstance(item, Mapping):
            if not item.get("accessKey"):
                raise ValidationError(
                    [ValidationProblem("schedules", "a schedule has no accessKey")]
                )
            return RawRecord.from_mapping(item, item["accessKey"])
        raise ValidationError(
            [
                ValidationProblem(
                    "schedules", f"expected a Schedule, a mapping or an access key, got {item!r}"
                )
            ]
        )

    async def get_schedule_raw(self, access_key: str) -> dict[str, Any]:
        """One schedule's wire mapping (article 12, ``GET /schedules/{access-key}``)."""
        envelope = await self._transport.call(
            Request("GET", self.url(f"/schedules/{path_segment(access_key)}"))
        )
        schedule = envelope.get("schedule")
        if not isinstance(schedule, dict):
            raise DecodeError(
                "Mettl sent no 'schedule' object", method="GET", path=f"/schedules/{access_key}"
            )
        return schedule


def _as_is(value: Raw) -> Raw:
    return value


def _typed_schedule(record: Raw) -> Schedule:
    return schedule_from_wire(record.to_dict())


def _typed_result(record: Raw) -> CandidateResult:
    return candidate_result_from_wire(record.to_dict())


def _minified(value: Mapping[str, Any]) -> str:
    import orjson

    return orjson.dumps(value).decode("utf-8")


def _check_choice(
    name: str, value: str | None, allowed: tuple[str, ...], params: dict[str, str]
) -> None:
    if value is None:
        return
    text = str(getattr(value, "value", value))
    if text not in allowed:
        raise ValidationError(
            [ValidationProblem(name, f"must be one of {', '.join(allowed)}; got {text!r}")]
        )
    params[name] = text
