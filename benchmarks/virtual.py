"""The client's real pacing on a virtual clock, against a model of a server's rate limit.

An asyncio event loop whose clock is virtual: when every task waits, the clock
jumps to the next timer instead of sleeping, so a minute of throttled export
takes milliseconds and comes out the same every time. On it run the library's
own :class:`~mettl_async._session.Transport` (retries, ``Retry-After``, the
:class:`~mettl_async._pacer.Pacer` and its :class:`~mettl_async._ratelimit.AdaptiveRate`)
and a model session in place of aiohttp's: each request is admitted or refused
by the fake Mettl's own :class:`~mettl_async.testing.state.FakeRateLimit` at
the virtual time it arrives, and answered ``latency`` seconds later (E509 in
an HTTP 200 body, or HTTP 429 with ``Retry-After``, as the fake does).

An export is modelled as its requests: the schedule listing alone, then the
pages, ``workers`` at a time (the export's page budget), all through the one
transport of each client; several clients share the server's one limit (processes
sharing a key). Used by ``tests/test_ratelimit.py`` and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import selectors
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, TypeVar, cast

import aiohttp
import attrs
import orjson

from mettl_async import MettlError, RetryPolicy
from mettl_async._config import ClientConfig
from mettl_async._pacer import Pacer
from mettl_async._protocol import Request
from mettl_async._ratelimit import AdaptiveRate, PeerRate
from mettl_async._session import DEFAULT_MAX_RESPONSE_BYTES, Transport
from mettl_async.testing.state import FakeRateLimit

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Every task waits for something no timer will bring."""


class _VirtualSelector(selectors.BaseSelector):
    """Registers what the loop asks (its self-pipe) and, asked to wait, moves the clock."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Deadlock("every task waits and no timer is set")
        self._loop.advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock, starting at ``start`` seconds."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run ``main`` to its end on a :class:`VirtualLoop`."""
    with asyncio.Runner(loop_factory=lambda: VirtualLoop(start)) as runner:
        return runner.run(main)


def now() -> float:
    """The running loop's clock (virtual on a :class:`VirtualLoop`)."""
    return asyncio.get_running_loop().time()


# -- the model server ------------------------------------------------------------------


@attrs.define
class Exchange:
    """One request as the server saw it."""

    client: int
    sent: float
    answered: float
    refused: bool


@attrs.define
class ModelServer:
    """A rate limit (the fake Mettl's own) shared by every client, and what it answered."""

    limit: FakeRateLimit
    latency: float = 0.05
    #: Each answer takes ``latency`` times 1 +- up to this share (seeded: the same every run).
    jitter: float = 0.1
    seed: int = 0
    exchanges: list[Exchange] = attrs.Factory(list)
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def delay(self) -> float:
        return self.latency * (1.0 + self.jitter * (2.0 * self._random.random() - 1.0))

    def session(self, client: int) -> aiohttp.ClientSession:
        """A stand-in for aiohttp's session, for :class:`Transport` (a duck, cast)."""
        return cast(aiohttp.ClientSession, _ModelSession(self, client))


@attrs.define
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_length(self) -> int:
        return len(self.body)

    async def read(self) -> bytes:
        return self.body

    def close(self) -> None:
        pass


_OK = orjson.dumps({"status": "SUCCESS", "data": []})
_E509 = orjson.dumps(
    {"status": "ERROR", "error": {"code": "E509", "message": "Rate limit exceeded"}}
)


@attrs.define
class _ModelSession:
    server: ModelServer
    client: int

    def request(self, method: str, url: object, **_: object) -> Any:
        return self._exchange()

    @contextlib.asynccontextmanager
    async def _exchange(self) -> AsyncIterator[_Answer]:
        server = self.server
        sent = now()
        admitted = server.limit.admit(sent)
        answer = _Answer(200, {}, _OK)
        if not admitted:
            if server.limit.refusal() == "http429":
                headers = {"Retry-After": server.limit.retry_after or ""}
                answer = _Answer(429, headers if server.limit.retry_after else {}, _E509)
            else:
                answer = _Answer(200, {}, _E509)
        await asyncio.sleep(server.delay())
        server.exchanges.append(Exchange(self.client, sent, now(), not admitted))
        yield answer

    async def close(self) -> None:
        pass


# -- clients sharing a key --------------------------------------------------------------


@attrs.define
class Board:
    """The clients of one key telling each other their rates, in memory (as the
    shared state file does between processes)."""

    #: Reports older than this are of clients gone.
    stale: float = 5.0
    reports: dict[int, tuple[float, PeerRate]] = attrs.Factory(dict)
    learned: float | None = None

    def member(self, client: int) -> _BoardMember:
        return _BoardMember(self, client)


@attrs.define
class _BoardMember:
    board: Board
    client: int

    def exchange(self, now: float, mine: PeerRate) -> tuple[tuple[PeerRate, ...], float | None]:
        board = self.board
        board.reports[self.client] = (now, mine)
        fresh = {k: r for k, (t, r) in board.reports.items() if now - t <= board.stale}
        if mine.limit is not None:
            board.learned = mine.limit
        others = tuple(r for k, r in fresh.items() if k != self.client)
        return others, board.learned

    def leave(self) -> None:
        self.board.reports.pop(self.client, None)


# -- clients and exports ---------------------------------------------------------------


def transport(
    server: ModelServer,
    client: int = 0,
    *,
    max_in_flight: int = 16,
    requests_per_second: float | None = None,
    rate: Callable[[float], AdaptiveRate] | None = None,
    throttle_deadline: float | None = 600.0,
    board: Board | None = None,
) -> Transport:
    """The library's transport, talking to ``server``, pacing on the virtual clock.

    ``rate``: makes the :class:`AdaptiveRate` from the time now (default: as the
    client makes it, learning on).
    """
    config = ClientConfig.create(
        "sim-public",
        "sim-private",
        environ={},
        base_url=None,
        api_version="v2",
        timeout=30.0,
        max_in_flight=max_in_flight,
        requests_per_second=requests_per_second,
        retry=RetryPolicy(),
        clock=now,
        correct_clock_skew=True,
        max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES,
        throttle_deadline=throttle_deadline,
    )
    made = Transport(config, session=server.session(client))
    start = now()
    adaptive = (
        rate(start)
        if rate is not None
        else AdaptiveRate(now=start, ceiling=requests_per_second, max_in_flight=max_in_flight)
    )
    share = board.member(client) if board is not None else None
    made._pacer = Pacer(adaptive, clock=now, sleep=asyncio.sleep, share=share)
    made._share_decided = True  # the board, or nothing: never the user's cache
    made._sleep = asyncio.sleep
    return made


REQUEST = Request("GET", "https://sim.invalid/v2/schedules")


async def export(client: Transport, requests: int, *, workers: int = 32) -> int:
    """An export's requests through ``client``: one alone, the rest ``workers`` at once.

    Returns the requests that failed (0: the export completed).
    """
    failed = 0
    counter = itertools.count(1)

    async def one() -> None:
        nonlocal failed
        try:
            await client.call(REQUEST)
        except MettlError:
            failed += 1

    await one()

    async def worker() -> None:
        while next(counter) < requests:
            await one()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return failed


@attrs.frozen
class Run:
    """What one client of a simulated run did, seen from the server."""

    exchanges: list[Exchange]
    started: float
    finished: float
    failed: int

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def requests(self) -> int:
        return len(self.exchanges)

    @property
    def refused(self) -> int:
        return sum(e.refused for e in self.exchanges)

    @property
    def useful(self) -> int:
        return self.requests - self.refused

    @property
    def first_burst(self) -> int:
        """Refusals of requests sent before the first refusal came back (no client
        knows the limit before it meets it)."""
        met = self.met
        return sum(e.refused for e in self.exchanges if e.sent < met)

    @property
    def met(self) -> float:
        """When the client first heard of the limit (its first refusal's answer)."""
        return min((e.answered for e in self.exchanges if e.refused), default=self.finished)

    def after(self) -> tuple[int, int]:
        """(requests, refused) sent once the client had met the limit."""
        met = self.met
        later = [e for e in self.exchanges if e.sent >= met]
        return len(later), sum(e.refused for e in later)


def simulate(
    limit: Callable[[], FakeRateLimit],
    requests: int | list[int],
    *,
    latency: float = 0.05,
    starts: list[float] | None = None,
    phase: float = 0.0,
    seed: int = 0,
    shared: bool = False,
    **client: Any,
) -> list[Run]:
    """Exports of ``requests`` each (one per client) against one ``limit``.

    ``starts``: seconds after the beginning at which each client starts;
    ``phase``: where the virtual clock starts (a fixed window's boundaries are
    on multiples of its length). ``client``: settings of :func:`transport`.
    """
    sizes = [requests] if isinstance(requests, int) else requests
    offsets = starts or [0.0] * len(sizes)
    server = ModelServer(limit(), latency, seed=seed)
    board = Board() if shared else None

    async def one(index: int, size: int, offset: float) -> Run:
        await asyncio.sleep(offset)
        made = transport(server, index, board=board, **client)
        begun = now()
        failed = await export(made, size)
        made._pacer.leave()
        mine = [e for e in server.exchanges if e.client == index]
        return Run(mine, begun, now(), failed)

    async def main() -> list[Run]:
        return list(
            await asyncio.gather(
                *(one(i, s, o) for i, (s, o) in enumerate(zip(sizes, offsets, strict=True)))
            )
        )

    return run_virtual(main(), start=1000.0 + phase)
