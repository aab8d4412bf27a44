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

import argparse
import asyncio
import collections
import contextlib
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl

import attrs
import orjson
from aiohttp import web

from ._client import MettlClient
from ._fakedata import FakeAccount, FakeSchedule
from ._protocol import encode_params
from ._retry import RetryPolicy
from ._signing import SigningKey, algorithm_for_version, string_to_sign

__all__ = [
    "DEMO_PRIVATE_KEY",
    "DEMO_PUBLIC_KEY",
    "FakeMettl",
    "FakeMettlServer",
    "Fault",
    "RecordedRequest",
]

DEMO_PUBLIC_KEY: Final = "demo-0000-public-key"
DEMO_PRIVATE_KEY: Final = "demo-0000-private-key-never-shown"
TS_WINDOW: Final = 24 * 3600
#: A ts this far in the future is refused too (Mettl allows "within past 24 hours").
TS_FUTURE_SLACK: Final = 300

LinkStyle = Literal["absolute-stale", "relative-stale", "absolute", "relative", "none"]

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

MESSAGES: Final = {
    "E000": "Some Error Occurred",
    "E400": "Request was not well-formed/Invalid parameters supplied.",
    "E401": "Authentication failed/Signature mismatch",
    "E403": "Access denied. The API key is not authorized for requested resource/action.",
    "E404": "Requested resource not found.",
    "E405": "HTTP Method not allowed for this API Request",
    "E408": "Request Timed out",
    "E422": "Signature expired.",
    "E503": "API Service is currently unavailable",
    "E504": "Invalid Timestamp",
    "E509": "Rate limit exceeded",
}


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


@attrs.frozen
class RecordedRequest:
    """What the fake server saw of one request (``asgn`` included, it is not secret)."""

    method: str
    path: str  # after the version, as sent (percent-encoded)
    version: str
    params: Mapping[str, str]
    outcome: str  # "SUCCESS" or the error code
    at: float


class _Reply(Exception):
    """Raised inside the fake to answer with an error envelope."""

    def __init__(self, code: str, message: str | None = None, *, http_status: int = 200) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "error")
        self.http_status = http_status
        super().__init__(code)


Handler = Callable[["FakeMettl", web.Request, dict[str, str], dict[str, str]], Awaitable[Any]]


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
    """

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
        self.keys: dict[str, str] = dict(keys or {DEMO_PUBLIC_KEY: DEMO_PRIVATE_KEY})
        self.latency = latency
        self.error_http_status = error_http_status
        self.clock = clock
        self.log: collections.deque[RecordedRequest] = collections.deque(maxlen=record)
        self.faults: list[Fault] = []
        self.fault_rates: dict[FaultKind, float] = {}
        self.retry_after = "0"
        self.random = random.Random(seed)
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.bad_signatures = 0
        self.faults_injected = 0
        self.account = account if account is not None else FakeAccount(seed=seed)
        self.total_records = total_records
        self.link_style: LinkStyle = link_style
        self.arrival_every = arrival_every
        self.clamp_limit = clamp_limit
        self.page_requests: collections.Counter[str] = collections.Counter()
        self.assessments: dict[int, dict[str, Any]] = {
            s.assessment_id: {"name": s.assessment_name} for s in self.account.schedules
        }
        self.created_schedules: dict[str, dict[str, Any]] = {}
        self._next_assessment_id = 1_000_001
        self._routes: list[tuple[str, str, Handler]] = []
        self._signing_keys: dict[tuple[str, str], SigningKey] = {}
        self._add_default_routes()

    # -- configuration -----------------------------------------------------------

    def add_fault(self, kind: FaultKind, **kwargs: Any) -> Fault:
        """Script a fault (see :class:`Fault`) and return it."""
        fault = Fault(kind, **kwargs)
        self.faults.append(fault)
        return fault

    def set_fault_rates(self, rates: Mapping[FaultKind, float] | None = None, **kw: float) -> None:
        """Inject faults at random with these probabilities per request (seeded)."""
        merged: dict[FaultKind, float] = dict(rates or {})
        merged.update(kw)  # type: ignore[arg-type]
        self.fault_rates = {kind: rate for kind, rate in merged.items() if rate > 0}

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
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        try:
            if not self.latency:
                return await handler(request)
            # Latency is the time until the answer leaves, the fake's own work
            # included, as a client sees a remote server's round trip.
            loop = asyncio.get_running_loop()
            started = loop.time()
            response = await handler(request)
            remaining = self.latency - (loop.time() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            return response
        finally:
            self.in_flight -= 1

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
                fault = self._pick_fault(request.method, api_path, params)
                if fault is not None:
                    self.faults_injected += 1
                    if fault.kind != "slow":
                        outcome = fault.kind
                    response = await self._inject(request, fault)
                    if response is not None:
                        return response
                payload = await handler(self, request, params, dict(request.match_info))
                if isinstance(payload, bytes):
                    return web.Response(body=payload, content_type="application/json")
                return self._json({"status": "SUCCESS", **payload})
            except _Reply as reply:
                outcome = reply.code
                return self._json(
                    {"status": "ERROR", "error": {"code": reply.code, "message": reply.message}},
                    status=reply.http_status
                    if reply.http_status != 200
                    else self.error_http_status,
                )
            finally:
                if self.log.maxlen:
                    self.log.append(
                        RecordedRequest(
                            request.method, api_path, version, params, outcome, self.clock()
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
                raise _Reply("E400", f"parameter {name!r} given twice")
            params[name] = value
        return params

    def _authenticate(
        self, request: web.Request, version: str, raw_path: str, params: Mapping[str, str]
    ) -> None:
        ak = params.get("ak")
        private_key = self.keys.get(ak or "")
        if private_key is None:
            raise _Reply("E403")
        ts = params.get("ts", "")
        if not ts.isdigit() or not (-TS_FUTURE_SLACK <= self.clock() - int(ts) <= TS_WINDOW):
            raise _Reply("E504")
        # Rebuild the URL exactly as called: scheme, Host header, raw (encoded) path.
        url = f"{request.scheme}://{request.host}{raw_path}"
        key = self._signing_keys.get((private_key, version))
        if key is None:
            key = SigningKey(private_key, algorithm=algorithm_for_version(version))
            self._signing_keys[(private_key, version)] = key
        expected = key.sign(string_to_sign(request.method, url, params))
        if params.get("asgn") != expected:
            self.bad_signatures += 1
            raise _Reply("E401")

    def _pick_fault(self, method: str, path: str, params: Mapping[str, str]) -> Fault | None:
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

    async def _inject(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        kind = fault.kind
        if kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if kind in ("E509", "E503"):
            raise _Reply(kind)
        if kind == "http429":
            response = self._json(
                {"status": "ERROR", "error": {"code": "E509", "message": MESSAGES["E509"]}},
                status=429,
            )
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
            return response
        if kind == "http500":
            raise _Reply("E000", http_status=500)
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
        self.route("GET", "/account", _get_account)
        self.route("POST", "/assessments", _create_assessment)
        self.route("POST", "/assessments/{assessment_id}/schedules", _create_schedule)
        self.route("GET", "/schedules", _list_schedules)
        self.route("GET", "/schedules/{access_key}", _get_schedule)
        self.route("GET", "/schedules/{access_key}/candidates", _list_candidates)

    def new_assessment_id(self) -> int:
        self._next_assessment_id += 1
        return self._next_assessment_id

    def schedule_or_404(self, access_key: str) -> FakeSchedule:
        schedule = self.account.schedule(access_key)
        if schedule is None:
            raise _Reply("E404", f"no schedule with access key {access_key!r}")
        return schedule

    def schedule_json(self, schedule: FakeSchedule) -> dict[str, Any]:
        created = self.created_schedules.get(schedule.access_key)
        data = self.account.schedule_json(schedule)
        if created is not None:
            data.update(created)
        return data

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
        paging: dict[str, Any] = {
            "previous": self._link(request, params, max(0, offset - limit)) if offset > 0 else None,
            "next": self._link(request, params, offset + limit) if offset + limit < total else None,
        }
        if self.total_records:
            paging["totalRecords"] = total
        return paging

    def _link(self, request: web.Request, params: Mapping[str, str], offset: int) -> str:
        stale = self.link_style.endswith("-stale")
        kept = {
            name: value
            for name, value in params.items()
            if name != "offset" and (stale or name not in ("ak", "ts", "asgn"))
        }
        kept["offset"] = str(offset)
        path = request.raw_path.partition("?")[0]
        link = f"{path}?{encode_params(kept)}"
        if self.link_style.startswith("absolute"):
            link = f"{request.scheme}://{request.host}{link}"
        return link


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Reply("E400", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise _Reply("E400", f"{name} must be between {low} and {high}, got {value}")
    return value


def _json_param(params: Mapping[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Reply("E400", f"{name!r} is not valid JSON") from None


async def _get_account(
    fake: FakeMettl, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    return {
        "accountInfo": {
            "email": "admin@example.com",
            "name": "Demo Account",
            "accountType": "Enterprise",
            "candidateRegistrationFields": ["Email Address", "First Name", "Last Name"],
        },
        "echo": {name: value for name, value in params.items() if name not in ("ak", "ts", "asgn")},
    }


async def _create_assessment(
    fake: FakeMettl, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    assessment = _json_param(params, "assessments")
    if assessment is None:
        raise _Reply("E400", "missing parameter 'assessments'")
    if not isinstance(assessment, dict) or not assessment.get("name"):
        raise _Reply("E400", "the assessment needs a name")
    assessment_id = fake.new_assessment_id()
    fake.assessments[assessment_id] = assessment
    return {"assessmentId": assessment_id}


async def _create_schedule(
    fake: FakeMettl, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    assessment_id = _int_param(match, "assessment_id", 0, 0, 2**63)
    if assessment_id not in fake.assessments:
        raise _Reply("E404", f"no assessment with id {assessment_id}")
    sc = _json_param(params, "sc")
    if not isinstance(sc, dict):
        raise _Reply("E400", "missing or invalid parameter 'sc'")
    access = sc.get("access")
    if not sc.get("name") or not sc.get("sourceApp") or not sc.get("scheduleType"):
        raise _Reply("E400", "sc needs name, sourceApp and scheduleType")
    if not isinstance(access, dict) or access.get("type") not in ("OpenForAll", "ByInvitation"):
        raise _Reply("E400", "sc.access.type must be OpenForAll or ByInvitation")
    schedule = fake.account.add_schedule(
        0,
        name=sc["name"],
        assessment_id=assessment_id,
        assessment_name=str(fake.assessments[assessment_id].get("name", "")),
    )
    fake.created_schedules[schedule.access_key] = {
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
        raise _Reply("E400", f"{path} must be a JSON object")
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
    fake: FakeMettl, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    limit = _int_param(params, "limit", 20, 1, 100)
    offset = _int_param(params, "offset", 0, 0, 2**31)
    sort = params.get("sort", "createdAt")
    if sort not in _SCHEDULE_SORTS:
        raise _Reply("E400", f"sort must be one of {', '.join(_SCHEDULE_SORTS)}")
    sort_order = params.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise _Reply("E400", "sort_order must be asc or desc")
    wanted = _json_param(params, "filter")
    schedules = list(fake.account.schedules)  # newest first: createdAt desc
    if sort == "name":
        schedules.sort(key=lambda s: (s.name, s.index), reverse=sort_order == "desc")
    elif sort == "testTaken":
        schedules.sort(key=lambda s: (s.candidate_count, s.index), reverse=sort_order == "desc")
    elif sort_order == "asc":
        schedules.reverse()
    listed = [fake.schedule_json(s) for s in schedules]
    if wanted is not None:
        listed = [data for data in listed if _schedule_matches(data, wanted)]
    # Article 11 shows no paging block: a short page is the last one.
    return {"schedules": listed[offset : offset + limit]}


async def _get_schedule(
    fake: FakeMettl, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    return {"schedule": fake.schedule_json(fake.schedule_or_404(match["access_key"]))}


async def _list_candidates(
    fake: FakeMettl, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> bytes:
    schedule = fake.schedule_or_404(match["access_key"])
    limit = _int_param(params, "limit", 20, 1, 100)
    offset = _int_param(params, "offset", 0, 0, 2**31)
    sort = params.get("sort")
    if sort not in (None, "testStartTime", "name"):
        raise _Reply("E400", "sort must be testStartTime or name")
    sort_order = params.get("sort_order")
    if sort_order not in (None, "asc", "desc"):
        raise _Reply("E400", "sort_order must be asc or desc")
    ir = _json_param(params, "ir")
    recommendation = isinstance(ir, dict) and ir.get("recommendation") is True
    essays = params.get("qr", "false") == "true"
    fake.page_requests[schedule.access_key] += 1
    if fake.arrival_every and fake.page_requests[schedule.access_key] % fake.arrival_every == 0:
        fake.account.arrive(schedule.access_key)
    order = fake.account.candidate_order(schedule, sort, sort_order)
    account = fake.account
    if fake.clamp_limit is not None:
        limit = min(limit, fake.clamp_limit)
    records = b",".join(
        account.candidate_bytes(schedule, j, ir=recommendation, qr=essays)
        for j in order[offset : offset + limit]
    )
    paging: dict[str, Any] | None = None
    if fake.link_style != "none":
        paging = fake.page_links(request, params, offset=offset, limit=limit, total=len(order))
    tail = b"}" if paging is None else b',"paging":' + orjson.dumps(paging) + b"}"
    return b'{"status":"SUCCESS","candidates":[' + records + b"]" + tail


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeMettlServer:
    """Runs a :class:`FakeMettl` on 127.0.0.1 (a free port unless given) while in use."""

    def __init__(
        self,
        fake: FakeMettl | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 1.0,
        **fake_options: Any,
    ) -> None:
        self.fake = fake if fake is not None else FakeMettl(**fake_options)
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def public_key(self) -> str:
        return next(iter(self.fake.keys))

    @property
    def private_key(self) -> str:
        return self.fake.keys[self.public_key]

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        runner = web.AppRunner(
            self.fake.app(),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,  # a client that hung up cancels its handler
            shutdown_timeout=self.shutdown_timeout,
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def client(self, **options: Any) -> MettlClient:
        """A :class:`MettlClient` for this server, with instant retries unless told otherwise."""
        options.setdefault("base_url", self.base_url)
        options.setdefault("retry", RetryPolicy(instant=True))
        return MettlClient(self.public_key, self.private_key, **options)


# -- running the fake standalone (``python -m mettl_async.testing``) -------------------


def add_fake_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a standalone fake Mettl (shared with ``mettl-async fake-server``)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--schedules", type=int, default=20, help="schedules in the account")
    parser.add_argument("--candidates", type=int, default=300, help="candidates per schedule")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument("--no-total-records", action="store_true", help="omit paging.totalRecords")
    parser.add_argument(
        "--link-style",
        default="absolute-stale",
        choices=["absolute-stale", "relative-stale", "absolute", "relative", "none"],
        help="shape of paging.next/previous links",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="inject a fault at random, e.g. E509=0.02 (kinds: E509, http429, E503, "
        "http500, drop, truncate); repeatable",
    )
    parser.add_argument("--warm", action="store_true", help="generate every record before serving")


def fake_from_arguments(args: argparse.Namespace) -> FakeMettl:
    """A :class:`FakeMettl` configured from :func:`add_fake_server_arguments` options."""
    account = FakeAccount(args.schedules, args.candidates, seed=args.seed)
    fake = FakeMettl(
        account=account,
        latency=args.latency_ms / 1000.0,
        total_records=not args.no_total_records,
        link_style=args.link_style,
        seed=args.seed,
        record=0,
    )
    rates: dict[str, float] = {}
    for item in args.fault:
        kind, _, rate = item.partition("=")
        if kind not in FAULT_KINDS or not rate:
            raise ValueError(f"--fault expects KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}")
        rates[kind] = float(rate)
    fake.set_fault_rates(rates)  # type: ignore[arg-type]
    if args.warm:
        for schedule in account.schedules:
            for j in schedule.order():
                account.candidate_bytes(schedule, j, ir=False, qr=False)
    return fake


async def serve_until_stopped(server: FakeMettlServer, *, announce: Callable[[str], None]) -> None:
    """Run ``server`` until SIGINT or SIGTERM, after announcing where it listens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        announce(server.base_url)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mettl_async.testing", description="Run a fake Mettl server."
    )
    add_fake_server_arguments(parser)
    args = parser.parse_args(argv)
    fake = fake_from_arguments(args)
    server = FakeMettlServer(fake, host=args.host, port=args.port)

    def announce(base_url: str) -> None:
        print(f"READY {base_url} {server.public_key} {server.private_key}", flush=True)

    asyncio.run(serve_until_stopped(server, announce=announce))


if __name__ == "__main__":
    main()
