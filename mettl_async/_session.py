"""The aiohttp adapter: sign -> send -> decode, with retries, pacing and a size cap.

This is the only client-side module that imports aiohttp. Everything it does
to a request before sending (signing, encoding) and to an answer after reading
it (envelope, error mapping) lives in the pure ``_protocol`` and ``_retry``
modules, and the rate math in the pure ``_ratelimit``. This module owns the
session, the clock and its skew correction, the sleeps, the pacing of requests
(:class:`_Pacer`: a slot among those in flight, then a turn at the rate), the
reading of an answer up to ``max_response_bytes``, the client's stats, and the
translation of aiohttp's and asyncio's exceptions into mettl-async's own.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import aiohttp
import attrs
from yarl import URL

from ._errors import (
    APIError,
    ClientClosedError,
    MettlConnectionError,
    MettlError,
    MettlTimeoutError,
    RateLimitError,
    RequestError,
    ResponseTooLargeError,
    ThrottledError,
    TimestampError,
    TransportError,
)
from ._keyshare import rate_share
from ._pacer import Pacer as _Pacer
from ._pacer import PastDeadline as _PastDeadline
from ._protocol import (
    PreparedRequest,
    Request,
    decode_response,
    parse_retry_after,
    prepare,
    redact_error,
    redact_secret,
    server_clock_skew,
)
from ._ratelimit import AdaptiveRate, RateChangeLog
from ._retry import RetryPolicy
from ._tracing import AttemptHook, CallTrace, observer
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from ._config import ClientConfig

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "ClientStats", "Decoder", "Transport", "user_agent"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Decoder(Protocol[T_co]):
    """Reads an answer (status and body) into data, or raises the typed error."""

    def __call__(
        self,
        status: int,
        body: bytes,
        *,
        method: str,
        url: str,
        attempts: int = ...,
        retry_after: float | None = ...,
    ) -> T_co: ...


logger = logging.getLogger("mettl_async.http")

#: A clock correction is applied only past this many seconds of disagreement.
CLOCK_SKEW_THRESHOLD: Final = 60.0
#: The largest answer read by default: 32 MiB (a page of 100 large results is under 2 MiB).
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024


def user_agent() -> str:
    return (
        f"mettl-async/{__version__} aiohttp/{aiohttp.__version__} "
        f"Python/{platform.python_version()}"
    )


@attrs.define
class ClientStats:
    """Counters of one client, for progress displays and tests."""

    requests: int = 0  #: attempts sent (every retry counts)
    retries: int = 0  #: attempts that were repeats of a failed one
    failures: int = 0  #: calls that ended in an error after their last attempt
    in_flight: int = 0  #: requests sent and not yet answered
    peak_in_flight: int = 0  #: the most requests ever in flight at once
    throttled: int = 0  #: answers that refused a request for its rate (E509, HTTP 429)
    #: requests per second the client allows itself now (``None``: no limit)
    allowed_rate: float | None = None


class Transport:
    """Sends signed requests to Mettl through one aiohttp session."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: aiohttp.ClientSession | None,
        tracer_provider: TracerProvider | None = None,
        on_request: AttemptHook | None = None,
        on_response: AttemptHook | None = None,
    ) -> None:
        self._public_key = config.public_key
        self._max_response_bytes = config.max_response_bytes
        self._key = config.key
        self._session = session
        self._owns_session = session is None
        self._timeout = config.timeout
        self._max_in_flight = config.max_in_flight
        self._throttle_deadline = config.throttle_deadline
        retry = config.retry
        # One rate for everything this client sends. RetryPolicy(learn_rate=False), for
        # tests, keeps the ceiling but never slows down to a learned rate.
        self._pacer = _Pacer(
            AdaptiveRate(
                now=time.monotonic(),
                ceiling=config.requests_per_second or None,
                max_in_flight=config.max_in_flight,
                learn=retry.learn_rate,
            )
        )
        self._rate_log = RateChangeLog()
        self._retry = retry
        self._clock = config.clock
        self._clock_offset = 0.0
        self._correct_skew = config.correct_clock_skew
        self._headers = {"Accept": "application/json", "User-Agent": user_agent()}
        self._closed = False
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # replaced in tests
        self.stats = ClientStats(allowed_rate=config.requests_per_second or None)
        self._share_decided = False  # whether the key's shared rate file was looked for
        # Spans and hooks (``_tracing``); None: neither, and no cost per call.
        self._observer = observer(tracer_provider, on_request, on_response)

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

    @property
    def clock_offset(self) -> float:
        """Seconds added to the local clock when signing (set from Mettl's ``Date``)."""
        return self._clock_offset

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this MettlClient is closed: create a new one")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_in_flight, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        self._closed = True
        self._pacer.leave()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def prepare(self, request: Request) -> PreparedRequest:
        ts = int(self._clock() + self._clock_offset)
        return prepare(
            request, public_key=self._public_key, key=self._key, ts=ts, headers=self._headers
        )

    async def call(self, request: Request) -> dict[str, Any]:
        """Send ``request`` until it succeeds or may not be retried; return its envelope."""
        return await self.call_with(request, decode_response)

    async def call_with(self, request: Request, decode: Decoder[T]) -> T:
        """Like :meth:`call`, reading the answer with ``decode`` (see ``_protocol``).

        ``decode`` runs inside each attempt, so an answer it cannot read is
        retried like any other unreadable answer.
        """
        if self._observer is None:
            return await self._call(request, decode, None)
        trace = self._observer.call(request)
        try:
            result = await self._call(request, decode, trace)
        except BaseException as error:
            trace.finish(error)
            raise
        trace.finish(None)
        return result

    async def _call(self, request: Request, decode: Decoder[T], trace: CallTrace | None) -> T:
        session = self._get_session()
        if not self._share_decided:
            self._share_rate(request)
        timeout = aiohttp.ClientTimeout(total=request.timeout or self._timeout)
        retry = self._retry
        idempotent = request.idempotent
        skew_corrected = False
        started = self._pacer.clock()
        deadline = self._throttle_deadline
        not_after: float | None = None  # set once throttled: no turn after the deadline
        throttled: RateLimitError | None = None  # the last refusal for the rate
        sent = 0  # attempts sent
        failed = 0  # attempts that failed for a reason other than the rate
        while True:
            if sent:
                self.stats.retries += 1
            try:
                return await self._attempt(
                    session, request, timeout, sent + 1, decode, not_after=not_after, trace=trace
                )
            except _PastDeadline:
                self.stats.retries -= 1  # this one never went
                self.stats.failures += 1
                assert throttled is not None
                raise self._past_deadline(throttled, sent) from throttled
            except RequestError as error:
                sent += 1
                error.attempts = sent
                if isinstance(error, RateLimitError):
                    # Throttling is not failure: Mettl did not act (so a POST may be
                    # sent again) and the rate is slowing down; only the deadline ends it.
                    throttled = error
                    elapsed = self._pacer.clock() - started
                    wait = retry.throttle_delay(
                        elapsed=elapsed, deadline=deadline, retry_after=error.retry_after
                    )
                    if wait is None:
                        self.stats.failures += 1
                        raise self._past_deadline(error, sent) from error
                    if deadline is not None:
                        not_after = started + deadline
                    # No line per throttled attempt (the DEBUG line of each attempt
                    # shows it): the rate's INFO lines tell the story without a flood.
                    if wait > 0:
                        await self._sleep(wait)
                    continue
                failed += 1
                if (
                    isinstance(error, TimestampError)
                    and self._correct_skew
                    and not skew_corrected
                    and self._learn_skew(error)
                ):
                    skew_corrected = True
                    failed -= 1  # the corrected retry does not use up the policy
                    continue
                if not retry.should_retry(error, attempt=failed, idempotent=idempotent):
                    self.stats.failures += 1
                    raise
                wait = retry.delay(
                    failed,
                    retry_after=error.retry_after if isinstance(error, APIError) else None,
                )
                if logger.isEnabledFor(logging.INFO):
                    logger.info(
                        "retrying %s %s in %.2f s after %s (attempt %d of %d)",
                        request.method,
                        error.path,
                        wait,
                        type(error).__name__,
                        failed,
                        retry.attempts,
                    )
                if wait > 0:
                    await self._sleep(wait)

    def _share_rate(self, request: Request) -> None:
        """Share the learned rate with the other clients of this key and host (other
        processes) through a small file, unless the rate does not learn (see ``_keyshare``)."""
        self._share_decided = True
        if self._pacer.rate.learn and not self._pacer.sharing:
            origin = str(URL(request.url, encoded=True).origin())
            self._pacer.share_with(rate_share(origin, self._public_key))

    def _past_deadline(self, last: RateLimitError, attempts: int) -> ThrottledError:
        deadline = self._throttle_deadline
        error = ThrottledError(
            f"Mettl kept refusing this call for its rate, and its {deadline:g} s "
            f"throttle_deadline leaves no time for another attempt "
            f"({attempts} attempts; last: {last.message})",
            deadline=deadline,
            method=last.method,
            url=last.url,
            path=last.path,
            status=last.status,
            code=last.code,
            attempts=attempts,
            hint="raise throttle_deadline (None: no deadline), or lower requests_per_second",
        )
        error.retry_after = last.retry_after
        return error

    def _answered(self, sent_at: float, received_at: float, *, throttled: bool) -> None:
        """Tell the rate how a request went; once it is learned, show it."""
        self._pacer.answered(sent_at, received_at, throttled=throttled)
        if self._pacer.rate.learned:
            self._rate_learned()

    def _rate_learned(self) -> None:
        """Show the learned rate in the stats, and log it when it moved."""
        rate = self._pacer.rate
        allowed = rate.rate
        self.stats.allowed_rate = allowed
        if self._rate_log.should_log(self._pacer.clock(), allowed) and allowed is not None:
            logger.info(
                "Mettl limits the request rate: now allowing %.1f requests/s, %d in flight "
                "(%d answers throttled so far)",
                allowed,
                rate.concurrency,
                self.stats.throttled,
            )

    def _learn_skew(self, error: TimestampError) -> bool:
        skew = error.server_skew
        if skew is None or abs(skew - self._clock_offset) < CLOCK_SKEW_THRESHOLD:
            return False
        logger.warning(
            "Mettl rejected the timestamp and its clock differs from ours by %.0f s: "
            "signing with the corrected time from now on",
            skew,
        )
        self._clock_offset = float(round(skew))
        return True

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        timeout: aiohttp.ClientTimeout,
        attempt: int,
        decode: Decoder[T],
        *,
        not_after: float | None = None,
        trace: CallTrace | None = None,
    ) -> T:
        stats = self.stats
        debug = logger.isEnabledFor(logging.DEBUG)
        status: int | None = None
        pacer = self._pacer
        sent_at = await pacer.start(not_after=not_after)  # a slot, then the rate's turn
        try:
            # Signed once it may go: ts is fresh however long it waited for a slot.
            prepared = self.prepare(request)
            if trace is not None:
                trace.sending(prepared.url, attempt)
            started = time.perf_counter()
            stats.requests += 1
            stats.in_flight += 1
            if stats.in_flight > stats.peak_in_flight:
                stats.peak_in_flight = stats.in_flight
            try:
                status, retry_after, date, body = await self._send(session, prepared, timeout)
            except MettlError as error:
                if isinstance(error, RequestError):
                    redact_error(error, prepared.signature)
                if trace is not None:
                    trace.answered(getattr(error, "status", None), error)
                if debug:
                    self._log(prepared, attempt, started, None, type(error).__name__)
                raise
            finally:
                stats.in_flight -= 1
        finally:
            pacer.release()
        received_at = pacer.clock()
        # Let the request that was waiting for this slot go out before parsing this
        # answer (milliseconds of CPU for a page): network time then overlaps CPU time.
        await asyncio.sleep(0)
        try:
            data = decode(
                status,
                body,
                method=prepared.method,
                url=prepared.url,
                attempts=attempt,
                retry_after=parse_retry_after(retry_after, now=self._clock())
                if retry_after
                else None,
            )
        except RequestError as error:
            # A server may echo the signature anywhere in its answer: never show it.
            redact_error(error, prepared.signature)
            refused = isinstance(error, RateLimitError)
            if refused:
                stats.throttled += 1
            self._answered(sent_at, received_at, throttled=refused)
            if isinstance(error, TimestampError):
                error.server_skew = server_clock_skew(date, now=self._clock())
            if trace is not None:
                trace.answered(status, error)
            if debug:
                self._log(prepared, attempt, started, status, error.code or type(error).__name__)
            raise
        self._answered(sent_at, received_at, throttled=False)
        if trace is not None:
            trace.answered(status, None)
        if debug:
            self._log(prepared, attempt, started, status, "SUCCESS")
        return data

    def _log(
        self,
        prepared: PreparedRequest,
        attempt: int,
        started: float,
        status: int | None,
        outcome: str | None,
    ) -> None:
        logger.debug(
            "%s %s -> %s %s (attempt %d, %.1f ms)",
            prepared.method,
            URL(prepared.url, encoded=True).path,
            f"HTTP {status}" if status is not None else "no answer",
            outcome,
            attempt,
            (time.perf_counter() - started) * 1000.0,
        )

    async def _send(
        self,
        session: aiohttp.ClientSession,
        prepared: PreparedRequest,
        timeout: aiohttp.ClientTimeout,
    ) -> tuple[int, str | None, str | None, bytes]:
        data: Any = prepared.body
        if prepared.files:
            form = aiohttp.FormData()
            for name, value in prepared.form_fields.items():
                form.add_field(name, value)
            for part in prepared.files:
                form.add_field(
                    part.name, part.content, filename=part.filename, content_type=part.content_type
                )
            data = form
        try:
            async with session.request(
                prepared.method,
                URL(prepared.url, encoded=True),
                data=data,
                headers=prepared.headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                body = await self._read_body(response, prepared)
                headers = response.headers
                return response.status, headers.get("Retry-After"), headers.get("Date"), body
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # The one place where foreign exceptions become ours. ``from None``:
            # some aiohttp messages embed the request URL, asgn included.
            raise self._translate(exc, prepared, timeout) from None

    async def _read_body(
        self, response: aiohttp.ClientResponse, prepared: PreparedRequest
    ) -> bytes:
        """The whole body, read in chunks up to ``max_response_bytes`` (then refused)."""
        limit = self._max_response_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            response.close()
            raise self._too_large(prepared, response.status, f"it declares {declared:,} bytes")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if declared is not None and encoding == "identity":
            # aiohttp reads no more than the declared length: one read, the fast path.
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        # No declared length (chunked), or compressed: chunks as they arrive, decompressed;
        # an endless or inflating answer stops at the cap instead of filling memory.
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                response.close()
                raise self._too_large(prepared, response.status, f"over {limit:,} bytes came")
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, prepared: PreparedRequest, status: int, what: str) -> MettlError:
        limit = self._max_response_bytes
        return ResponseTooLargeError(
            f"the answer is larger than max_response_bytes ({limit:,} bytes: {what}); "
            "it was not read further",
            limit=limit,
            status=status,
            hint="if the answer is genuine, raise MettlClient(max_response_bytes=...)",
            **_error_context(prepared),
        )

    @staticmethod
    def _translate(
        exc: BaseException, prepared: PreparedRequest, timeout: aiohttp.ClientTimeout
    ) -> MettlError:
        context = _error_context(prepared)
        detail = redact_secret(f"{type(exc).__name__}: {exc}", prepared.signature)
        if isinstance(exc, aiohttp.ClientSSLError):
            return TransportError(f"TLS failure talking to Mettl ({detail})", **context)
        if isinstance(exc, aiohttp.ClientConnectorError):
            error = MettlConnectionError(f"could not connect to Mettl ({detail})", **context)
            error.request_sent = False
            return error
        if isinstance(exc, TimeoutError):
            return MettlTimeoutError(
                f"no complete answer within {timeout.total:g} s ({detail})", **context
            )
        if isinstance(
            exc,
            aiohttp.ServerDisconnectedError
            | aiohttp.ClientPayloadError
            | aiohttp.ClientOSError
            | aiohttp.ServerConnectionError,
        ):
            return MettlConnectionError(f"connection to Mettl failed ({detail})", **context)
        return TransportError(f"request to Mettl failed ({detail})", **context)


def _error_context(prepared: PreparedRequest) -> dict[str, Any]:
    """What an error raised before any answer was decoded says of its request
    (the URL with its signature hidden)."""
    return {
        "method": prepared.method,
        "url": redact_secret(prepared.url, prepared.signature),
        "path": URL(prepared.url, encoded=True).path,
    }
