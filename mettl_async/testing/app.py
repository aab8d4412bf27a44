"""The fake Mettl as an ``aiohttp.web`` application: :class:`FakeMettl`.

Every request passes the same steps before its handler (one of
:data:`~mettl_async.testing.routes.ROUTES`, or one added with
:meth:`FakeMettl.route`) runs: its parameters are read from the query string
and a form body, ``ak``, ``ts`` and ``asgn`` are verified as Mettl verifies
them, its rate limit (:meth:`FakeMettl.set_rate_limit`), if any, may refuse
it, and a scripted or random :class:`Fault` (see :class:`FaultPlan`) may
answer instead. A middleware counts the requests in flight and holds each
answer until ``latency`` has passed.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Mapping
from random import Random
from typing import Any, Final, Generic, Literal, Self, TypeVar, overload
from urllib.parse import parse_qsl

import attrs
import orjson
from aiohttp import web

from mettl_async._signing import SigningKey, algorithm_for_version, string_to_sign
from mettl_async.testing import routes
from mettl_async.testing.callbacks import Delivery, FakeCallbacks
from mettl_async.testing.churn import LATE_DELAY, check_churn
from mettl_async.testing.data import FakeAccount, FakeSchedule
from mettl_async.testing.errors import MESSAGES, Reply
from mettl_async.testing.state import (
    AccountMutations,
    FakeConfig,
    FakeRateLimit,
    FakeState,
    FakeStats,
    LinkStyle,
    RecordedRequest,
)

__all__ = [
    "DEMO_PRIVATE_KEY",
    "DEMO_PUBLIC_KEY",
    "FAULT_KINDS",
    "TS_FUTURE_SLACK",
    "TS_WINDOW",
    "FakeMettl",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "Handler",
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
    appear to), or ``"none"`` for no paging block at all. ``clamp_limit``
    silently serves at most that many records per page, whatever ``limit`` says.

    A busy account, on every paged listing (articles 6, 11 and 16; see
    :mod:`~mettl_async.testing.churn`): ``arrival_every=N`` adds a record at the
    front of the listing asked for (a candidate starts the test; a schedule, an
    assessment is created) before every N-th listing request (all listings
    counted together), ``deletion_every=M`` deletes one of it chosen at random
    before every M-th, and ``late_share`` of the
    listing requests are answered ``late_delay`` seconds late, each page read
    from the account after the wait (pages out of order, each showing what
    changed meanwhile). :meth:`set_churn` changes these while the fake runs.

    Every endpoint of articles 1 to 19 is served (see :data:`~.routes.ROUTES`),
    with E404 for an unknown assessment id, access key or email. Uploads are
    checked like Mettl (``logo``: JPEG/PNG/GIF up to 100 KB; ``fav``: PNG/ICO
    up to 10 KB) and kept in :attr:`logo` and :attr:`white_label_files`;
    ``white_label_allowed = False`` makes Update White Label answer E403.
    :meth:`set_rate_limit` makes it refuse requests beyond a rate (a token
    bucket, a fixed window, or both), as E509 and HTTP 429 answers.
    :meth:`fail_registration` makes Register Candidates refuse chosen emails
    in their own items while the call succeeds; registered candidates join
    their schedule ("Yet to Start") and ``account.complete()`` finishes their
    test. Article 19 deletes only completed or expired tests. :attr:`mutate`
    changes the account while it runs (regrades, gradings, deletions, arrivals,
    starts, finishes, resumes), and a schedule with webhook URLs is called as
    Mettl calls it at each step (:attr:`callbacks`, :attr:`deliveries`,
    :meth:`deliveries_settled`). Article 18 pages on v3 only. Field names the
    reference does not give (articles 1, 4, 6, 7, 18) are the fake's own choice,
    the ones the client's models read.

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
    deletion_every = _Grouped[int]("config")
    late_share = _Grouped[float]("config")
    late_delay = _Grouped[float]("config")
    clamp_limit = _Grouped[int | None]("config")
    white_label_allowed = _Grouped[bool]("config")
    rate_limit = _Grouped[FakeRateLimit]("config")

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
    throttled = _Grouped[int]("stats")
    registration_calls = _Grouped[int]("stats")
    page_requests = _Grouped[collections.Counter[str]]("stats")
    listing_requests = _Grouped[collections.Counter[str]]("stats")
    arrivals = _Grouped[int]("stats")
    deletions = _Grouped[int]("stats")
    late_pages = _Grouped[int]("stats")

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
        deletion_every: int = 0,
        late_share: float = 0.0,
        late_delay: float = 0.0,
    ) -> None:
        check_churn(arrival_every, deletion_every, late_share, late_delay)
        self.config = FakeConfig(
            keys=dict(keys or {DEMO_PUBLIC_KEY: DEMO_PRIVATE_KEY}),
            latency=latency,
            error_http_status=error_http_status,
            clock=clock,
            total_records=total_records,
            link_style=link_style,
            arrival_every=arrival_every,
            clamp_limit=clamp_limit,
            deletion_every=deletion_every,
            late_share=late_share,
            late_delay=late_delay,
        )
        self.fault_plan = FaultPlan(Random(seed))
        self.stats = FakeStats(collections.deque(maxlen=record))
        self.state = FakeState(
            account if account is not None else FakeAccount(seed=seed),
            churn_random=Random(seed),
        )
        self._routes: list[tuple[str, str, Handler]] = list(routes.ROUTES)
        self._signing_keys: dict[tuple[str, str], SigningKey] = {}
        #: The webhook calls of schedules with notification URLs (``testing/callbacks.py``).
        self.callbacks = FakeCallbacks(self.state, lambda: self.config.clock())

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

    def set_rate_limit(
        self,
        rate: float | None = None,
        burst: float | None = None,
        *,
        window_limit: int | None = None,
        window: float = 1.0,
        http429_share: float = 0.5,
        retry_after: str | None = "1",
    ) -> FakeRateLimit:
        """Refuse requests beyond a rate, as Mettl does (see :class:`FakeRateLimit`).

        ``rate``/``burst``: a token bucket; ``window_limit`` per ``window``
        seconds: a fixed window. Refusals are counted in :attr:`throttled`.
        Called with no limit, it lifts the limit.
        """
        limit = FakeRateLimit(
            rate,
            burst,
            window_limit=window_limit,
            window=window,
            http429_share=http429_share,
            retry_after=retry_after,
        )
        self.config.rate_limit = limit
        return limit

    def set_churn(
        self,
        *,
        arrival_every: int | None = None,
        deletion_every: int | None = None,
        late_share: float | None = None,
        late_delay: float | None = None,
    ) -> None:
        """Change how busy the account is (see the class): the settings given, others kept.

        ``arrival_every=3``: a new record at the front of the listing asked for
        before every third listing request; ``deletion_every=4``: one deleted at
        random before every fourth; ``late_share=0.2, late_delay=0.25``: a fifth of the listing
        pages answered 250 ms late, read after the wait. 0 turns each off.
        """
        config = self.config
        settings = {
            "arrival_every": config.arrival_every if arrival_every is None else arrival_every,
            "deletion_every": config.deletion_every if deletion_every is None else deletion_every,
            "late_share": config.late_share if late_share is None else late_share,
            "late_delay": config.late_delay if late_delay is None else late_delay,
        }
        check_churn(**settings)
        for name, value in settings.items():
            setattr(config, name, value)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve ``method`` on ``/{version}`` + ``pattern`` (aiohttp route syntax)."""
        self._routes.append((method, pattern, handler))

    # -- the application ---------------------------------------------------------

    def app(self) -> web.Application:
        """A fresh ``aiohttp.web.Application`` serving this fake."""
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024**2)
        for method, pattern, handler in self._routes:
            app.router.add_route(method, "/{version:v[123]}" + pattern, self._wrap(handler))
        self.callbacks.attach(app)
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
            # A page answered late (see churn) is late by its delay on top of the latency.
            late = request.get(LATE_DELAY, 0.0)
            remaining = self.config.latency - (loop.time() - started - late)
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
                limit = self.config.rate_limit
                if limit.active and not limit.admit(time.monotonic()):
                    self.stats.throttled += 1
                    refusal = Fault(limit.refusal(), retry_after=limit.retry_after)
                    outcome = refusal.kind
                    response = await self._inject(request, refusal)
                    assert response is not None  # E509 is raised, http429 answered
                    return response
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

    # -- webhook calls (see FakeCallbacks) ---------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook call made so far, oldest first (see :class:`Delivery`)."""
        return self.callbacks.deliveries

    async def deliveries_settled(self) -> list[Delivery]:
        """Wait until every webhook call so far is delivered or given up; all of them."""
        return await self.callbacks.settled()

    async def wait_for_deliveries(self, count: int) -> list[Delivery]:
        """Wait until ``count`` webhook calls are settled (delivered or given up); those."""
        return await self.callbacks.wait_for(count)

    # -- the account's state (see FakeState) -------------------------------------

    @property
    def mutate(self) -> AccountMutations:
        """Change the account while the fake runs: regrade, grade, delete, add candidates."""
        return AccountMutations(self.state)

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
        return routes.page_links(self, request, params, offset=offset, limit=limit, total=total)
