"""A fake Mettl server, for your tests and for mettl-async's own.

:class:`FakeMettl` is an ``aiohttp.web`` application that checks every request
the way Mettl does: it rebuilds the URL it was called on, reads the parameters
from the query string and from a form body, and verifies ``ak`` (E403 for an
unknown key), ``ts`` (E504 when missing, malformed or outside 24 hours) and
``asgn`` (E401 on a mismatch). It counts requests, the peak number in flight
and bad signatures, and can inject latency and faults.

Run it over loopback with :class:`FakeMettlServer`::

    async with FakeMettlServer() as server:
        async with server.client() as mettl:
            account = await mettl.request("GET", "/account")

or as a pytest fixture in your own ``conftest.py``::

    @pytest.fixture
    async def mettl_server():
        async with FakeMettlServer() as server:
            yield server
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from random import Random
from typing import Any, Final, Generic, Literal, Self, TypeVar, overload
from urllib.parse import parse_qsl

import attrs
import orjson
from aiohttp import web

from mettl_async._protocol import encode_params
from mettl_async._signing import SigningKey, algorithm_for_version, string_to_sign
from mettl_async._validation import FAVICON_MAX_BYTES, LOGO_MAX_BYTES, sniff_image
from mettl_async.testing.data import FakeAccount, FakeSchedule
from mettl_async.testing.errors import MESSAGES, Reply
from mettl_async.testing.state import (
    DEFAULT_REGISTRATION_FIELDS,
    FakeConfig,
    FakeParts,
    FakeState,
    FakeStats,
    LinkStyle,
    RecordedRequest,
)

__all__ = [
    "DEMO_PRIVATE_KEY",
    "DEMO_PUBLIC_KEY",
    "FakeMettl",
    "Fault",
    "RecordedRequest",
]

DEMO_PUBLIC_KEY: Final = "demo-0000-public-key"
DEMO_PRIVATE_KEY: Final = "demo-0000-private-key-never-shown"
TS_WINDOW: Final = 24 * 3600
#: A ts this far in the future is refused too (Mettl allows "within past 24 hours").
TS_FUTURE_SLACK: Final = 300

FaultKind = Literal[
    "E509",  # rate limited, in an HTTP 200 body
    "http429",  # rate limited as HTTP 429 (+ Retry-After)
    "E503",  # service unavailable, in an HTTP 200 body
    "http500",  # HTTP 500 with an ERROR body
    "drop",  # connection closed halfway through the answer
    "truncate",  # HTTP 200 whose JSON body is cut short (complete HTTP message)
    "slow",  # answer after `delay` seconds
]

FAULT_KINDS: Final = ("E509", "http429", "E503", "http500", "drop", "truncate")


@attrs.define
class Fault:
    """One scripted fault: the next ``times`` requests matching ``method``/``path`` get it.

    ``path`` is matched as a prefix of the path after the version
    (``/schedules`` matches ``/schedules/abc/candidates``); ``None`` matches all.
    ``params`` must all be present with these values (``{"offset": "100"}``).
    """

    kind: FaultKind
    times: int = 1
    path: str | None = None
    method: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    params: Mapping[str, str] | None = None

    def matches(self, method: str, path: str, params: Mapping[str, str]) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.params and any(params.get(k) != v for k, v in self.params.items()):
            return False
        return self.path is None or path.startswith(self.path)


@attrs.define
class FaultPlan:
    """The faults to inject: scripted ones (``faults``) first, else random ones (seeded)."""

    random: Random
    faults: list[Fault] = attrs.Factory(list)
    #: Fault kind -> its probability per request.
    fault_rates: dict[FaultKind, float] = attrs.Factory(dict)
    #: The ``Retry-After`` of a random ``http429``.
    retry_after: str = "0"

    def pick(self, method: str, path: str, params: Mapping[str, str]) -> Fault | None:
        """The fault for this request, if any (a scripted one is used up by it)."""
        for fault in self.faults:
            if fault.times > 0 and fault.matches(method, path, params):
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        if self.fault_rates:
            roll = self.random.random()
            for kind, rate in self.fault_rates.items():
                if roll < rate:
                    return Fault(kind, retry_after=self.retry_after)
                roll -= rate
        return None


Handler = Callable[["FakeMettl", web.Request, dict[str, str], dict[str, str]], Awaitable[Any]]

_T = TypeVar("_T")


class _Grouped(Generic[_T]):
    """A :class:`FakeMettl` attribute kept in one of its groups, read and written through.

    ``latency = _Grouped[float]("config")`` makes ``fake.latency`` mean
    ``fake.config.latency``, as it did before the fake's attributes were grouped.
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, fake: None, owner: type) -> Self: ...
    @overload
    def __get__(self, fake: FakeMettl, owner: type) -> _T: ...
    def __get__(self, fake: FakeMettl | None, owner: type) -> Self | _T:
        if fake is None:
            return self
        value: _T = getattr(getattr(fake, self.group), self.name)
        return value

    def __set__(self, fake: FakeMettl, value: _T) -> None:
        setattr(getattr(fake, self.group), self.name, value)


class FakeMettl:
    """A stand-in for Mettl's API: state, checks, faults, and the ``aiohttp.web`` app.

    ``account`` is the data served (a :class:`FakeAccount`; by default 3
    schedules of 10 candidates). Every answer leaves ``latency`` seconds after
    its request arrived (the fake's own work included).
    ``error_http_status`` is the HTTP status of error envelopes (Mettl often
    uses 200). ``clock`` is the server's notion of now, for ``ts`` checks.
    ``record`` keeps the last ``record`` requests in :attr:`log`.

    Listings (article 16): ``total_records`` says whether ``paging`` carries
    ``totalRecords``; ``link_style`` shapes ``paging.next``/``previous``:
    ``"absolute"`` or ``"relative"`` links, optionally ``-stale`` (carrying the
    request's own ``ak``, ``ts`` and ``asgn``, as Mettl's pre-signed links
    appear to), or ``"none"`` for no paging block at all. ``arrival_every=N``
    makes a new candidate start the test in a schedule before every N-th page
    request on it (live data shifting offsets under a walk). ``clamp_limit``
    silently serves at most that many records per page, whatever ``limit`` says.

    Every endpoint of articles 1 to 19 is served (see ``_add_default_routes``),
    with E404 for an unknown assessment id, access key or email. Uploads are
    checked like Mettl (``logo``: JPEG/PNG/GIF up to 100 KB; ``fav``: PNG/ICO
    up to 10 KB) and kept in :attr:`logo` and :attr:`white_label_files`;
    ``white_label_allowed = False`` makes Update White Label answer E403.
    :meth:`fail_registration` makes Register Candidates refuse chosen emails
    in their own items while the call succeeds; registered candidates join
    their schedule ("Yet to Start") and ``account.complete()`` finishes their
    test. Article 19 deletes only completed or expired tests. Article 18 pages
    on v3 only. Field names the reference does not give (articles 1, 4, 6, 7,
    18) are the fake's own choice, the ones the client's models read.

    What the fake keeps is grouped: :attr:`config` (:class:`FakeConfig`),
    :attr:`state` (:class:`FakeState`, the account and what requests changed),
    :attr:`stats` (:class:`FakeStats`, counters and the request log) and
    :attr:`fault_plan` (:class:`FaultPlan`). Each of their fields is also an
    attribute of the fake itself (``fake.latency`` is ``fake.config.latency``).
    """

    keys = _Grouped[dict[str, str]]("config")
    latency = _Grouped[float]("config")
    error_http_status = _Grouped[int]("config")
    clock = _Grouped[Callable[[], float]]("config")
    total_records = _Grouped[bool]("config")
    link_style = _Grouped[LinkStyle]("config")
    arrival_every = _Grouped[int]("config")
    clamp_limit = _Grouped[int | None]("config")
    white_label_allowed = _Grouped[bool]("config")

    faults = _Grouped[list[Fault]]("fault_plan")
    fault_rates = _Grouped[dict[FaultKind, float]]("fault_plan")
    retry_after = _Grouped[str]("fault_plan")
    random = _Grouped[Random]("fault_plan")

    log = _Grouped[collections.deque[RecordedRequest]]("stats")
    requests = _Grouped[int]("stats")
    in_flight = _Grouped[int]("stats")
    peak_in_flight = _Grouped[int]("stats")
    bad_signatures = _Grouped[int]("stats")
    faults_injected = _Grouped[int]("stats")
    registration_calls = _Grouped[int]("stats")
    page_requests = _Grouped[collections.Counter[str]]("stats")

    account = _Grouped[FakeAccount]("state")
    assessments = _Grouped[dict[int, dict[str, Any]]]("state")
    created_schedules = _Grouped[dict[str, dict[str, Any]]]("state")
    assessment_settings = _Grouped[dict[int, dict[str, Any]]]("state")
    registration_failures = _Grouped[dict[str, tuple[str, str]]]("state")
    logo = _Grouped[tuple[str, bytes] | None]("state")
    white_label = _Grouped[dict[str, Any] | None]("state")
    support_numbers = _Grouped[list[str] | None]("state")
    white_label_files = _Grouped[dict[str, tuple[str, bytes]]]("state")

    def __init__(
        self,
        *,
        keys: Mapping[str, str] | None = None,
        latency: float = 0.0,
        error_http_status: int = 200,
        clock: Callable[[], float] = time.time,
        record: int = 10_000,
        seed: int = 0,
        account: FakeAccount | None = None,
        total_records: bool = True,
        link_style: LinkStyle = "absolute-stale",
        arrival_every: int = 0,
        clamp_limit: int | None = None,
    ) -> None:
        self.config = FakeConfig(
            keys=dict(keys or {DEMO_PUBLIC_KEY: DEMO_PRIVATE_KEY}),
            latency=latency,
            error_http_status=error_http_status,
            clock=clock,
            total_records=total_records,
            link_style=link_style,
            arrival_every=arrival_every,
            clamp_limit=clamp_limit,
        )
        self.fault_plan = FaultPlan(Random(seed))
        self.stats = FakeStats(collections.deque(maxlen=record))
        self.state = FakeState(account if account is not None else FakeAccount(seed=seed))
        self._routes: list[tuple[str, str, Handler]] = []
        self._signing_keys: dict[tuple[str, str], SigningKey] = {}
        self._add_default_routes()

    # -- configuration -----------------------------------------------------------

    def add_fault(self, kind: FaultKind, **kwargs: Any) -> Fault:
        """Script a fault (see :class:`Fault`) and return it."""
        fault = Fault(kind, **kwargs)
        self.fault_plan.faults.append(fault)
        return fault

    def set_fault_rates(self, rates: Mapping[FaultKind, float] | None = None, **kw: float) -> None:
        """Inject faults at random with these probabilities per request (seeded)."""
        merged: dict[FaultKind, float] = dict(rates or {})
        merged.update(kw)  # type: ignore[arg-type]
        self.fault_plan.fault_rates = {kind: rate for kind, rate in merged.items() if rate > 0}

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve ``method`` on ``/{version}`` + ``pattern`` (aiohttp route syntax)."""
        self._routes.append((method, pattern, handler))

    # -- the application ---------------------------------------------------------

    def app(self) -> web.Application:
        """A fresh ``aiohttp.web.Application`` serving this fake."""
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024**2)
        for method, pattern, handler in self._routes:
            app.router.add_route(method, "/{version:v[123]}" + pattern, self._wrap(handler))
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.stats.requests += 1
        self.stats.in_flight += 1
        if self.stats.in_flight > self.stats.peak_in_flight:
            self.stats.peak_in_flight = self.stats.in_flight
        try:
            if not self.config.latency:
                return await handler(request)
            # Latency is the time until the answer leaves, the fake's own work
            # included, as a client sees a remote server's round trip.
            loop = asyncio.get_running_loop()
            started = loop.time()
            response = await handler(request)
            remaining = self.config.latency - (loop.time() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            return response
        finally:
            self.stats.in_flight -= 1

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            version = request.match_info["version"]
            raw_path, _, raw_query = request.raw_path.partition("?")
            api_path = raw_path[len(version) + 1 :]
            params: dict[str, str] = {}
            outcome = "SUCCESS"
            try:
                params = await self._read_params(request, raw_query)
                self._authenticate(request, version, raw_path, params)
                fault = self.fault_plan.pick(request.method, api_path, params)
                if fault is not None:
                    self.stats.faults_injected += 1
                    if fault.kind != "slow":
                        outcome = fault.kind
                    response = await self._inject(request, fault)
                    if response is not None:
                        return response
                payload = await handler(self, request, params, dict(request.match_info))
                if isinstance(payload, bytes):
                    return web.Response(body=payload, content_type="application/json")
                return self._json({"status": "SUCCESS", **payload})
            except Reply as reply:
                outcome = reply.code
                return self._json(
                    {"status": "ERROR", "error": {"code": reply.code, "message": reply.message}},
                    status=reply.http_status
                    if reply.http_status != 200
                    else self.config.error_http_status,
                )
            finally:
                if self.stats.log.maxlen:
                    self.stats.log.append(
                        RecordedRequest(
                            request.method, api_path, version, params, outcome, self.config.clock()
                        )
                    )

        return serve

    @staticmethod
    def _json(data: Any, *, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")

    async def _read_params(self, request: web.Request, raw_query: str) -> dict[str, str]:
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        content_type = request.headers.get("Content-Type", "")
        if request.can_read_body and content_type.startswith("application/x-www-form-urlencoded"):
            body = (await request.read()).decode("utf-8")
            pairs += parse_qsl(body, keep_blank_values=True)
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                raise Reply("E400", f"parameter {name!r} given twice")
            params[name] = value
        return params

    def _authenticate(
        self, request: web.Request, version: str, raw_path: str, params: Mapping[str, str]
    ) -> None:
        ak = params.get("ak")
        private_key = self.config.keys.get(ak or "")
        if private_key is None:
            raise Reply("E403")
        ts = params.get("ts", "")
        if not ts.isdigit() or not (-TS_FUTURE_SLACK <= self.config.clock() - int(ts) <= TS_WINDOW):
            raise Reply("E504")
        # Rebuild the URL exactly as called: scheme, Host header, raw (encoded) path.
        url = f"{request.scheme}://{request.host}{raw_path}"
        key = self._signing_keys.get((private_key, version))
        if key is None:
            key = SigningKey(private_key, algorithm=algorithm_for_version(version))
            self._signing_keys[(private_key, version)] = key
        expected = key.sign(string_to_sign(request.method, url, params))
        if params.get("asgn") != expected:
            self.stats.bad_signatures += 1
            raise Reply("E401")

    async def _inject(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        kind = fault.kind
        if kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if kind in ("E509", "E503"):
            raise Reply(kind)
        if kind == "http429":
            response = self._json(
                {"status": "ERROR", "error": {"code": "E509", "message": MESSAGES["E509"]}},
                status=429,
            )
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
            return response
        if kind == "http500":
            raise Reply("E000", http_status=500)
        if kind == "truncate":
            return web.Response(
                body=b'{"status":"SUCCESS","candidates":[{"email":"cut',
                content_type="application/json",
            )
        # "drop": promise a long body, send a little of it, then cut the connection.
        partial = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        partial.content_length = 4096
        await partial.prepare(request)
        await partial.write(b'{"status":"SUCCESS","data":[')
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError  # aiohttp treats this as the connection being gone

    # -- endpoints ---------------------------------------------------------------

    def _add_default_routes(self) -> None:
        self.route("GET", "/account", _get_account)  # 1
        self.route("POST", "/account/upload-logo", _upload_logo)  # 2
        self.route("POST", "/account/update-white-labeling", _update_white_label)  # 3
        self.route("GET", "/pbts", _list_pbts)  # 4
        self.route("POST", "/pbts", _add_pbts)  # 5
        self.route("POST", "/pbts/add", _add_pbts)  # 5, as v1 spells it
        self.route("GET", "/assessments", _list_assessments)  # 6
        self.route("GET", "/assessments/{assessment_id}", _get_assessment)  # 7
        self.route("POST", "/assessments", _create_assessment)  # 8
        self.route(  # 9
            "POST", "/assessments/{assessment_id}/settings/edit", _edit_assessment_settings
        )
        self.route("GET", "/assessments/{assessment_id}/schedules", _list_assessment_schedules)
        self.route("GET", "/schedules", _list_schedules)  # 11
        self.route("GET", "/schedules/{access_key}", _get_schedule)  # 12
        self.route("POST", "/assessments/{assessment_id}/schedules", _create_schedule)  # 13
        self.route("POST", "/schedules/{access_key}/edit", _edit_schedule)  # 14
        self.route("POST", "/schedules/{access_key}/candidates", _register_candidates)  # 15
        self.route("GET", "/schedules/{access_key}/candidates", _list_candidates)  # 16
        self.route("GET", "/schedules/{access_key}/candidates/{email}", _get_candidate)  # 17
        self.route("GET", "/candidates/{email}", _candidate_in_account)  # 18
        self.route("DELETE", "/schedules/{access_key}/candidates/{email}", _delete_candidate)

    # -- the account's state (see FakeState) ---------------------------------------

    def fail_registration(
        self, *emails: str, code: str = "E028", message: str | None = None
    ) -> None:
        """Make Register Candidates (article 15) refuse these emails, each in its own item.

        The call still answers SUCCESS; each of these candidates gets an item
        with ``"status": "ERROR"`` and ``message`` starting with ``code``.
        """
        self.state.fail_registration(*emails, code=code, message=message)

    def add_assessment(self, name: str, **fields: Any) -> int:
        """A new assessment of the account (as if created in Mettl's dashboard); its id."""
        return self.state.add_assessment(name, **fields)

    def assessment_json(self, assessment_id: int) -> dict[str, Any]:
        """An assessment as articles 6 and 7 return it (field names are our reading)."""
        return self.state.assessment_json(assessment_id)

    def new_assessment_id(self) -> int:
        return self.state.new_assessment_id()

    def schedule_or_404(self, access_key: str) -> FakeSchedule:
        return self.state.schedule_or_404(access_key)

    def schedule_json(self, schedule: FakeSchedule) -> dict[str, Any]:
        return self.state.schedule_json(schedule)

    def page_links(
        self,
        request: web.Request,
        params: Mapping[str, str],
        *,
        offset: int,
        limit: int,
        total: int,
    ) -> dict[str, Any]:
        """``paging`` for a listing page: next/previous reuse every optional parameter."""
        return page_links(self, request, params, offset=offset, limit=limit, total=total)


def page_links(
    fake: FakeParts,
    request: web.Request,
    params: Mapping[str, str],
    *,
    offset: int,
    limit: int,
    total: int,
) -> dict[str, Any]:
    """``paging`` for a listing page: next/previous reuse every optional parameter."""
    paging: dict[str, Any] = {
        "previous": _link(fake, request, params, max(0, offset - limit)) if offset > 0 else None,
        "next": _link(fake, request, params, offset + limit) if offset + limit < total else None,
    }
    if fake.config.total_records:
        paging["totalRecords"] = total
    return paging


def _link(fake: FakeParts, request: web.Request, params: Mapping[str, str], offset: int) -> str:
    stale = fake.config.link_style.endswith("-stale")
    kept = {
        name: value
        for name, value in params.items()
        if name != "offset" and (stale or name not in ("ak", "ts", "asgn"))
    }
    kept["offset"] = str(offset)
    path = request.raw_path.partition("?")[0]
    link = f"{path}?{encode_params(kept)}"
    if fake.config.link_style.startswith("absolute"):
        link = f"{request.scheme}://{request.host}{link}"
    return link


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Reply("E400", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise Reply("E400", f"{name} must be between {low} and {high}, got {value}")
    return value


def _listing_params(params: Mapping[str, str], sorts: tuple[str, ...]) -> tuple[int, int, str, str]:
    """``limit``, ``offset``, ``sort`` and ``sort_order`` of a listing, checked as Mettl does.

    ``sort`` defaults to the first of ``sorts``, ``sort_order`` to ``desc``
    (articles 6, 11, 16).
    """
    limit = _int_param(params, "limit", 20, 1, 100)
    offset = _int_param(params, "offset", 0, 0, 2**31)
    sort = params.get("sort", sorts[0])
    if sort not in sorts:
        raise Reply("E400", f"sort must be one of {', '.join(sorts)}")
    sort_order = params.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise Reply("E400", "sort_order must be asc or desc")
    return limit, offset, sort, sort_order


def _json_param(params: Mapping[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Reply("E400", f"{name!r} is not valid JSON") from None


async def _get_account(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    logo = fake.state.logo
    white_label = None
    if fake.state.white_label is not None:
        white_label = {**fake.state.white_label, "supportNumbers": fake.state.support_numbers}
    return {
        "accountInfo": {
            "email": "admin@example.com",
            "name": "Demo Account",
            "accountType": "Enterprise",
            "logo": f"https://cdn.mettl.com/logos/{logo[0]}" if logo else None,
            "whiteLabel": white_label,
            "candidateRegistrationFields": list(DEFAULT_REGISTRATION_FIELDS),
        },
        "echo": {name: value for name, value in params.items() if name not in ("ak", "ts", "asgn")},
    }


async def _create_assessment(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    assessment = _json_param(params, "assessments")
    if assessment is None:
        raise Reply("E400", "missing parameter 'assessments'")
    if not isinstance(assessment, dict) or not assessment.get("name"):
        raise Reply("E400", "the assessment needs a name")
    assessment_id = fake.state.new_assessment_id()
    fake.state.assessments[assessment_id] = assessment
    return {"assessmentId": assessment_id}


async def _create_schedule(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    assessment_id = _int_param(match, "assessment_id", 0, 0, 2**63)
    if assessment_id not in fake.state.assessments:
        raise Reply("E404", f"no assessment with id {assessment_id}")
    sc = _json_param(params, "sc")
    if not isinstance(sc, dict):
        raise Reply("E400", "missing or invalid parameter 'sc'")
    access = sc.get("access")
    if not sc.get("name") or not sc.get("sourceApp") or not sc.get("scheduleType"):
        raise Reply("E400", "sc needs name, sourceApp and scheduleType")
    if not isinstance(access, dict) or access.get("type") not in ("OpenForAll", "ByInvitation"):
        raise Reply("E400", "sc.access.type must be OpenForAll or ByInvitation")
    schedule = fake.state.account.add_schedule(
        0,
        name=sc["name"],
        assessment_id=assessment_id,
        assessment_name=str(fake.state.assessments[assessment_id].get("name", "")),
    )
    fake.state.created_schedules[schedule.access_key] = {
        key: value for key, value in sc.items() if key not in ("name",)
    }
    return {
        "createdSchedule": {
            "assessmentId": assessment_id,
            "id": 7_300_000 + schedule.index,
            "name": schedule.name,
            "accessKey": schedule.access_key,
            "accessUrl": f"https://tests.mettl.com/authenticateKey/{schedule.access_key}",
            "status": "ACTIVE",
        }
    }


_SCHEDULE_SORTS: Final = ("createdAt", "testTaken", "name")


def _schedule_matches(data: Mapping[str, Any], wanted: Any, path: str = "filter") -> bool:
    """Whether a schedule matches article 11's ``filter`` (every given property equal)."""
    if not isinstance(wanted, dict):
        raise Reply("E400", f"{path} must be a JSON object")
    for name, value in wanted.items():
        actual = data.get("access", {}).get("type") if name == "type" else data.get(name)
        if isinstance(value, dict):
            if not isinstance(actual, dict) or not _schedule_matches(
                actual, value, f"{path}.{name}"
            ):
                return False
        elif actual != value:
            return False
    return True


async def _list_schedules(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    limit, offset, sort, sort_order = _listing_params(params, _SCHEDULE_SORTS)
    wanted = _json_param(params, "filter")
    schedules = list(fake.state.account.schedules)  # newest first: createdAt desc
    if sort == "name":
        schedules.sort(key=lambda s: (s.name, s.index), reverse=sort_order == "desc")
    elif sort == "testTaken":
        schedules.sort(key=lambda s: (s.candidate_count, s.index), reverse=sort_order == "desc")
    elif sort_order == "asc":
        schedules.reverse()
    listed = [fake.state.schedule_json(s) for s in schedules]
    if wanted is not None:
        listed = [data for data in listed if _schedule_matches(data, wanted)]
    # Article 11 shows no paging block: a short page is the last one.
    return {"schedules": listed[offset : offset + limit]}


async def _get_schedule(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    return {"schedule": fake.state.schedule_json(fake.state.schedule_or_404(match["access_key"]))}


async def _list_candidates(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> bytes:
    schedule = fake.state.schedule_or_404(match["access_key"])
    limit, offset, sort, sort_order = _listing_params(params, ("testStartTime", "name"))
    ir = _json_param(params, "ir")
    recommendation = isinstance(ir, dict) and ir.get("recommendation") is True
    essays = params.get("qr", "false") == "true"
    fake.stats.page_requests[schedule.access_key] += 1
    if (
        fake.config.arrival_every
        and fake.stats.page_requests[schedule.access_key] % fake.config.arrival_every == 0
    ):
        fake.state.account.arrive(schedule.access_key)
    order = fake.state.account.candidate_order(schedule, sort, sort_order)
    account = fake.state.account
    if fake.config.clamp_limit is not None:
        limit = min(limit, fake.config.clamp_limit)
    records = b",".join(
        account.candidate_bytes(schedule, j, ir=recommendation, qr=essays)
        for j in order[offset : offset + limit]
    )
    paging: dict[str, Any] | None = None
    if fake.config.link_style != "none":
        paging = page_links(fake, request, params, offset=offset, limit=limit, total=len(order))
    tail = b"}" if paging is None else b',"paging":' + orjson.dumps(paging) + b"}"
    return b'{"status":"SUCCESS","candidates":[' + records + b"]" + tail


# -- articles 1 to 5: the account, logo, white label, PBTs ------------------------------

#: The PBT library the fake serves (article 4 names the contents, not the field names).
PBT_CATALOGUE: Final = (
    (1176, "Numerical Reasoning Test", "Aptitude", "USD 12"),
    (1255, "Java Developer Test", "IT", "USD 18"),
    (1336, "Customer Service Aptitude Test", "BPO", "USD 10"),
    (1401, "Business Communication Test", "Corporate", "USD 9"),
    (1542, "Sales Profiling Test", "Retail", "USD 15"),
)


def _pbt_json(pbt_id: int, name: str, industry: str, price: str) -> dict[str, Any]:
    return {
        "id": pbt_id,
        "name": name,
        "shortDescription": f"{name}: a ready-made test by Mettl.",
        "longDescription": f"<p>{name} measures what the role needs.</p>",
        "url": f"https://mettl.com/en/test/{pbt_id}/",
        "price": price,
        "sampleReportUrl": f"https://mettl.com/en/sample-report/{pbt_id}.pdf",
        "industries": [industry],
        "keywords": [word.lower() for word in name.split()[:2]],
    }


async def _read_uploads(
    request: web.Request, allowed: Mapping[str, tuple[tuple[str, ...], int | None]]
) -> dict[str, tuple[str, bytes]]:
    """The multipart files of an upload, each checked like Mettl (format, size); E400 else.

    ``allowed`` maps a field name to its formats and maximum size. Anything
    but a file of an allowed field is refused: parameters travel in the query
    string, where they are signed (articles 2, 3).
    """
    if not request.content_type.startswith("multipart/"):
        if (
            allowed
            and request.can_read_body
            and request.content_type != ("application/x-www-form-urlencoded")
        ):
            raise Reply("E400", "uploads are sent as multipart/form-data")
        return {}
    files: dict[str, tuple[str, bytes]] = {}
    form = await request.post()
    for name, value in form.items():
        if not isinstance(value, web.FileField):
            raise Reply("E400", f"form-data field {name!r} is not a file (parameters go signed)")
        if name not in allowed:
            raise Reply("E400", f"unexpected file field {name!r}")
        content = value.file.read()
        kinds, max_bytes = allowed[name]
        kind = sniff_image(content)
        if kind not in kinds:
            raise Reply("E400", f"{name}: the file must be {' or '.join(kinds)}")
        if max_bytes is not None and len(content) > max_bytes:
            raise Reply("E400", f"{name}: the file is larger than {max_bytes // 1024} KB")
        files[name] = (value.filename, content)
    return files


async def _upload_logo(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    if not request.content_type.startswith("multipart/"):
        raise Reply("E400", "the logo is sent as multipart/form-data, field 'logo'")
    files = await _read_uploads(request, {"logo": (("jpeg", "png", "gif"), LOGO_MAX_BYTES)})
    if "logo" not in files:
        raise Reply("E400", "missing the multipart file 'logo'")
    fake.state.logo = files["logo"]
    return {}


async def _update_white_label(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    if not fake.config.white_label_allowed:
        raise Reply("E403")
    wl = _json_param(params, "wl")
    if not isinstance(wl, dict):
        raise Reply("E400", "missing or invalid parameter 'wl'")
    for name in ("headerBackgroundColor", "headerFontColor", "buttonColor", "buttonFontColor"):
        value = wl.get(name)
        if value is not None and not (
            isinstance(value, str) and re.fullmatch(r"[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6}", value)
        ):
            raise Reply("E400", f"wl.{name} must be a hex colour without '#'")
    sn = _json_param(params, "sn")
    if sn is not None and (
        not isinstance(sn, list) or len(sn) > 2 or not all(isinstance(n, str) for n in sn)
    ):
        raise Reply("E400", "sn is a list of at most 2 support numbers")
    files = await _read_uploads(
        request,
        {"fav": (("png", "ico"), FAVICON_MAX_BYTES), "cov": (("jpeg", "png", "gif"), None)},
    )
    fake.state.white_label = dict(wl)
    if sn is not None:
        fake.state.support_numbers = list(sn)
    fake.state.white_label_files.update(files)
    return {}


async def _list_pbts(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    return {"pbts": [_pbt_json(*pbt) for pbt in PBT_CATALOGUE]}


async def _add_pbts(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    ids = _json_param(params, "pbts")
    if not isinstance(ids, list) or not ids or not all(type(i) is int for i in ids):
        raise Reply("E400", "pbts must be a JSON list of PBT ids")
    known = {pbt[0]: pbt for pbt in PBT_CATALOGUE}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise Reply("E404", f"no PBT with id {unknown[0]}")
    added = []
    for pbt_id in ids:
        assessment_id = fake.state.new_assessment_id()
        fake.state.assessments[assessment_id] = {"name": known[pbt_id][1], "duration": 40}
        added.append({"id": pbt_id, "name": known[pbt_id][1], "assessmentId": assessment_id})
    return {"pbts": added}


# -- articles 6, 7, 9, 10: assessments --------------------------------------------------


def _assessment_or_404(fake: FakeParts, match: Mapping[str, str]) -> int:
    assessment_id = _int_param(match, "assessment_id", 0, 0, 2**63)
    if assessment_id not in fake.state.assessments:
        raise Reply("E404", f"no assessment with id {assessment_id}")
    return assessment_id


async def _list_assessments(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    limit, offset, sort, sort_order = _listing_params(params, _SCHEDULE_SORTS)
    listed = [fake.state.assessment_json(assessment_id) for assessment_id in fake.state.assessments]
    key = {"createdAt": "id", "testTaken": "testTaken", "name": "name"}[sort]
    listed.sort(key=lambda a: (a[key], a["id"]), reverse=sort_order == "desc")
    if fake.config.clamp_limit is not None:
        limit = min(limit, fake.config.clamp_limit)
    page: dict[str, Any] = {"assessments": listed[offset : offset + limit]}
    if fake.config.link_style != "none":
        page["paging"] = page_links(
            fake, request, params, offset=offset, limit=limit, total=len(listed)
        )
    return page


async def _get_assessment(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    return {"assessment": fake.state.assessment_json(_assessment_or_404(fake, match))}


_ASSESSMENT_SETTINGS: Final = frozenset(
    {
        "instructions",
        "allowCopyPaste",
        "exitRedirectionURL",
        "showReportToCandidate",
        "onScreenCalculator",
    }
)


async def _edit_assessment_settings(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    assessment_id = _assessment_or_404(fake, match)
    settings = _json_param(params, "as")
    if not isinstance(settings, dict) or not settings:
        raise Reply("E400", "missing or invalid parameter 'as'")
    unknown = sorted(set(settings) - _ASSESSMENT_SETTINGS)
    if unknown:
        raise Reply("E400", f"unknown assessment setting {unknown[0]!r}")
    fake.state.assessment_settings.setdefault(assessment_id, {}).update(settings)
    return {}


async def _list_assessment_schedules(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    assessment_id = _assessment_or_404(fake, match)
    wanted = _json_param(params, "filter")
    listed = [
        fake.state.schedule_json(schedule)
        for schedule in fake.state.account.schedules
        if schedule.assessment_id == assessment_id
    ]
    if wanted is not None:
        listed = [data for data in listed if _schedule_matches(data, wanted)]
    return {"schedules": listed}


# -- article 14: edit schedule ----------------------------------------------------------


async def _edit_schedule(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    schedule = fake.state.schedule_or_404(match["access_key"])
    sc = _json_param(params, "sc")
    if not isinstance(sc, dict) or not sc:
        raise Reply("E400", "missing or invalid parameter 'sc'")
    access = sc.get("access")
    if access is not None and (
        not isinstance(access, dict) or access.get("type") not in ("OpenForAll", "ByInvitation")
    ):
        raise Reply("E400", "sc.access.type must be OpenForAll or ByInvitation")
    if "name" in sc:
        name = sc["name"]
        if not isinstance(name, str) or not name.strip():
            raise Reply("E400", "sc.name must not be empty")
        if any(
            other is not schedule
            and other.assessment_id == schedule.assessment_id
            and other.name == name
            for other in fake.state.account.schedules
        ):
            raise Reply("E400", f"a schedule of this assessment is already named {name!r}")
        schedule.name = name
    fake.state.created_schedules.setdefault(schedule.access_key, {}).update(
        {key: value for key, value in sc.items() if key != "name"}
    )
    return {"schedule": fake.state.schedule_json(schedule)}


# -- article 15: register candidates ----------------------------------------------------

#: Registration fields every registration needs (article 15: never skippable).
_ALWAYS_REQUIRED: Final = ("Email Address", "First Name")


def _bool_param(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name, "false")
    if value not in ("true", "false"):
        raise Reply("E400", f"{name} must be true or false, got {value!r}")
    return value == "true"


async def _register_candidates(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    schedule = fake.state.schedule_or_404(match["access_key"])
    rd = _json_param(params, "rd")
    details = rd.get("registrationDetails") if isinstance(rd, dict) else None
    if not isinstance(details, list) or not details:
        raise Reply("E400", "rd.registrationDetails must be a non-empty list")
    if len(details) > 20:
        raise Reply("E400", "at most 20 candidates per call")
    allow_missing = _bool_param(params, "allowMissingMandatoryRegistrationFields")
    _bool_param(params, "showCustomInstructions")
    if "timeLimitInSec" in params:
        _int_param(params, "timeLimitInSec", 0, 1, 2**31)
    fake.stats.registration_calls += 1
    # The first three fields are mandatory; with allowMissing... only the two never skipped.
    required = _ALWAYS_REQUIRED if allow_missing else schedule.registration_fields[:3]
    statuses = []
    for item in details:
        if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
            raise Reply("E400", "each registrationDetails item maps labels to strings")
        email = item.get("Email Address")
        failure = fake.state.registration_failures.get(email.casefold()) if email else None
        missing = [label for label in required if not item.get(label)]
        if failure is None and missing:
            failure = ("E028", f"mandatory registration field {missing[0]!r} is missing")
        if failure is not None:
            code, message = failure
            statuses.append(
                {"email": email, "status": "ERROR", "message": f"{code}: {message}", "url": None}
            )
            continue
        j = fake.state.account.register(schedule, item)
        statuses.append(
            {
                "email": email,
                "status": "SUCCESS",
                "message": "Candidate registered successfully",
                "url": fake.state.account.test_link(schedule, j),
            }
        )
    return {"registrationStatus": statuses}


# -- articles 17, 18, 19: one candidate -------------------------------------------------


def _candidate_or_404(fake: FakeParts, schedule: FakeSchedule, email: str) -> int:
    j = fake.state.account.index_of(schedule, email)
    if j is None:
        raise Reply("E404", f"no candidate {email!r} in schedule {schedule.access_key}")
    return j


async def _get_candidate(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    schedule = fake.state.schedule_or_404(match["access_key"])
    j = _candidate_or_404(fake, schedule, match["email"])
    ir = _json_param(params, "ir")
    recommendation = isinstance(ir, dict) and ir.get("recommendation") is True
    styles = _bool_param(params, "rs")
    essays = _bool_param(params, "qr")
    record = fake.state.account.candidate(schedule, j, ir=recommendation, qr=essays)
    status = record["testStatus"]
    if status["status"] == "Completed":
        status["pdfReport"] = f"https://reports.mettl.com/pdf/{schedule.access_key}/{j}.pdf"
        analysis = status["result"].get("analysis") or {}
        if styles:
            analysis["responseStyles"] = [
                {"title": "Genuine", "description": "Answers varied enough to be genuine."}
            ]
        else:
            analysis.pop("responseStyles", None)
        status["result"]["analysis"] = analysis or None
    return {"candidate": record}


async def _delete_candidate(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    schedule = fake.state.schedule_or_404(match["access_key"])
    j = _candidate_or_404(fake, schedule, match["email"])
    status = fake.state.account.candidate(schedule, j)["testStatus"]
    # Article 19: only a completed or expired test is deleted.
    if status["status"] != "Completed" and status["overallStatus"] not in (
        "Completed",
        "Not Started",
    ):
        raise Reply(
            "E400",
            f"only a completed or expired test can be deleted; this one is {status['status']}",
        )
    schedule.deleted.add(j)
    return {}


async def _candidate_in_account(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    email = match["email"]
    essays = _bool_param(params, "qr")
    paged = match["version"] == "v3"
    if not paged and ("limit" in params or "offset" in params):
        raise Reply("E400", "limit and offset are only available in v3")
    instances = []
    for schedule in fake.state.account.schedules:
        j = fake.state.account.index_of(schedule, email)
        if j is None:
            continue
        record = fake.state.account.candidate(schedule, j, qr=essays)
        record.update(
            {
                "accessKey": schedule.access_key,
                "scheduleName": schedule.name,
                "assessmentId": schedule.assessment_id,
                "assessmentName": schedule.assessment_name,
            }
        )
        instances.append(record)
    if not instances:
        raise Reply("E404", f"no candidate {email!r} in this account")
    if not paged:
        return {"testInstances": instances}
    limit = _int_param(params, "limit", 20, 1, 100)
    offset = _int_param(params, "offset", 0, 0, 2**31)
    return {
        "testInstances": instances[offset : offset + limit],
        "paging": page_links(
            fake, request, params, offset=offset, limit=limit, total=len(instances)
        ),
    }
