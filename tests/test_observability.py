"""Tracing, hooks and a borrowed session: what a service sees of its Mettl calls.

Spans go to an explicit ``TracerProvider`` with an in-memory exporter (the
global provider can be set once per process: the tests that need it run in a
subprocess). Every test that looks at spans also looks for secrets in them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

from mettl_async import (
    AttemptInfo,
    NotFoundError,
    RetryPolicy,
    ServerError,
    redact_url,
)
from mettl_async._tracing import route_template
from mettl_async.export import ExportOptions, export_results
from mettl_async.sync import sync_results
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.errors import Reply


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def texts_of(span: ReadableSpan) -> list[str]:
    """Every text a span exports: its name, attribute values, events, status."""
    texts = [span.name, span.status.description or ""]
    texts += [str(value) for value in (span.attributes or {}).values()]
    for event in span.events:
        texts.append(event.name)
        texts += [str(value) for value in (event.attributes or {}).values()]
    return texts


def spellings(secret: str) -> set[str]:
    """A secret as it may stand in a text: as is, or URL-encoded."""
    return {secret, quote(secret, safe=""), quote(secret, safe="").lower()}


def assert_no_secret(spans: list[ReadableSpan], server: FakeMettlServer) -> None:
    """No span holds a signature the client sent, nor the private key, nor ``asgn=`` a value."""
    signatures = {request.params["asgn"] for request in server.fake.log}
    assert signatures, "the fake logged no request: nothing was checked"
    forbidden = set().union(*(spellings(s) for s in signatures | {server.private_key}))
    for span in spans:
        for text in texts_of(span):
            assert not re.search(r"asgn=(?!REDACTED)", text), (span.name, text)
            for secret in forbidden:
                assert secret not in text, (span.name, text)


def calls_of(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is SpanKind.CLIENT]


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next(s for s in spans if s.context.span_id == span.parent.span_id)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/account", "/account"),
        ("/account/upload-logo", "/account/upload-logo"),
        ("/account/update-white-labeling", "/account/update-white-labeling"),
        ("/pbts", "/pbts"),
        ("/pbts/add", "/pbts/add"),
        ("/assessments", "/assessments"),
        ("/assessments/17", "/assessments/{assessment-id}"),
        ("/assessments/17/settings/edit", "/assessments/{assessment-id}/settings/edit"),
        ("/assessments/17/schedules", "/assessments/{assessment-id}/schedules"),
        ("/schedules", "/schedules"),
        ("/schedules/ab12", "/schedules/{access-key}"),
        ("/schedules/edit", "/schedules/{access-key}"),  # an access key that is a word
        ("/schedules/ab12/edit", "/schedules/{access-key}/edit"),
        ("/schedules/ab12/candidates", "/schedules/{access-key}/candidates"),
        ("/schedules/v2/candidates", "/schedules/{access-key}/candidates"),
        (
            "/schedules/ab12/candidates/a%2Bb%40x.org",
            "/schedules/{access-key}/candidates/{email}",
        ),
        ("/candidates/v1", "/candidates/{email}"),
        ("/elsewhere/ab12", None),
        ("/schedules/ab12/candidates/x/y", None),
        ("/schedules//candidates", None),
    ],
)
def test_every_endpoint_has_its_route_template(path: str, route: str | None) -> None:
    for base in ("https://api.mettl.com/v2", "http://proxy.local/mettl/v1"):
        assert route_template(f"{base}{path}") == route
    assert route_template(f"https://api.mettl.com{path}") is None  # no version segment


# -- the acceptance: an account walk, traced ---------------------------------------------


async def test_calls_and_walks_are_spans_without_a_secret_or_a_key_in_a_name(
    server: FakeMettlServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with server.client(tracer_provider=provider) as mettl:
        await mettl.get_account()
        pairs = [pair async for pair in mettl.iter_all_results()]
        requests = mettl.stats.requests
    spans = list(exporter.get_finished_spans())
    calls = calls_of(spans)
    assert pairs
    assert requests >= 3
    assert len(calls) == requests  # one span per call; no call was retried here
    assert 2 * len(spans) >= requests
    assert {span.name for span in calls} == {
        "GET /account",
        "GET /schedules",
        "GET /schedules/{access-key}/candidates",
    }
    assert_no_secret(spans, server)
    keys = {schedule.access_key for schedule, _ in pairs}
    emails = {result.email for _, result in pairs}
    for span in spans:
        for value in keys | emails:
            assert value not in span.name

    [account] = [span for span in calls if span.name == "GET /account"]
    attributes = dict(account.attributes or {})
    url = URL(server.base_url)
    full = str(attributes.pop("url.full"))
    assert full.startswith(f"{server.base_url}/v2/account?ak={server.public_key}&ts=")
    assert full.endswith("&asgn=REDACTED")
    assert attributes == {
        "http.request.method": "GET",
        "server.address": url.host,
        "server.port": url.port,
        "url.template": "/account",
        "http.response.status_code": 200,
        "mettl.attempts": 1,
        "mettl.throttled": False,
    }
    assert account.status.status_code is StatusCode.UNSET

    # Each page's call is a child of its listing walk, each walk of the account walk.
    [everything] = [span for span in spans if span.name == "mettl.account_results"]
    walks = [span for span in spans if span.name.startswith("mettl.listing ")]
    assert {walk.name for walk in walks} == {
        "mettl.listing /schedules",
        "mettl.listing /schedules/{access-key}/candidates",
    }
    for walk in walks:
        assert parent_of(walk, spans) is everything
    for call in calls:
        if call is not account:
            parent = parent_of(call, spans)
            assert parent is not None
            assert parent.name == f"mettl.listing {call.name[4:]}"
    records = [
        (walk.attributes or {})["mettl.records"]
        for walk in walks
        if walk.name.endswith("candidates")
    ]
    assert sum(records) == len(pairs)  # type: ignore[arg-type]


async def test_a_retried_and_throttled_call_is_one_span_counting_its_attempts(
    server: FakeMettlServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    server.fake.add_fault("E509", path="/account")
    server.fake.add_fault("E503", path="/account")
    async with server.client(tracer_provider=provider) as mettl:
        await mettl.get_account()
    [span] = exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes["mettl.attempts"] == 3
    assert attributes["mettl.throttled"] is True
    assert attributes["http.response.status_code"] == 200
    assert "error.type" not in attributes
    assert span.status.status_code is StatusCode.UNSET
    failed = [dict(event.attributes or {}) for event in span.events]
    assert [(e["mettl.attempt"], e["mettl.error.code"], e["mettl.throttled"]) for e in failed] == [
        (1, "E509", True),
        (2, "E503", False),
    ]
    assert failed[0]["error.type"] == "mettl_async.RateLimitError"
    assert_no_secret(list(exporter.get_finished_spans()), server)


async def test_a_failed_call_records_its_error_and_mettls_code(
    server: FakeMettlServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with server.client(tracer_provider=provider) as mettl:
        with pytest.raises(NotFoundError) as caught:
            await mettl.get_schedule("no-such-schedule")
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /schedules/{access-key}"
    attributes = span.attributes or {}
    assert attributes["error.type"] == "mettl_async.NotFoundError"
    assert attributes["mettl.error.code"] == caught.value.code is not None
    assert span.status.status_code is StatusCode.ERROR
    [event] = [event for event in span.events if event.name == "exception"]
    assert (event.attributes or {})["exception.message"] == str(caught.value)
    assert_no_secret([span], server)


async def test_a_signature_echoed_by_the_server_reaches_no_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """An answer that repeats the request's signature, bare and as ``asgn=``: the span's
    status, events and attributes show neither."""
    fake = FakeMettl()

    async def echo(_: Any, request: aiohttp.web.Request, params: dict[str, str], __: Any) -> None:
        raise Reply("E400", f"signature {params['asgn']} refused for {request.url}")

    fake.route("GET", "/echo", echo)
    async with FakeMettlServer(fake) as server, server.client(tracer_provider=provider) as mettl:
        with pytest.raises(Exception, match="signature REDACTED refused"):
            await mettl.request("GET", "/echo")
    [span] = exporter.get_finished_spans()
    assert span.name == "GET"  # a path outside the 19 endpoints: the method alone
    assert span.status.status_code is StatusCode.ERROR
    assert "REDACTED" in (span.status.description or "")
    assert_no_secret([span], server)


async def test_a_failed_walk_fails_its_span(
    server: FakeMettlServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    server.fake.add_fault("E503", times=10, path="/schedules/")
    async with server.client(
        tracer_provider=provider, retry=RetryPolicy(attempts=2, instant=True)
    ) as mettl:
        key = (await mettl.iter_schedules().collect())[0].access_key
        with pytest.raises(ServerError):
            await mettl.iter_candidate_results(key).collect()
    spans = list(exporter.get_finished_spans())
    [walk] = [s for s in spans if s.name == "mettl.listing /schedules/{access-key}/candidates"]
    assert walk.status.status_code is StatusCode.ERROR
    assert (walk.attributes or {})["error.type"] == "mettl_async.ServerError"
    [call] = [s for s in spans if parent_of(s, spans) is walk]
    assert (call.attributes or {})["mettl.attempts"] == 2
    assert_no_secret(spans, server)


async def test_export_and_sync_runs_are_the_parents_of_their_calls(
    server: FakeMettlServer,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    async with server.client(tracer_provider=provider) as mettl:
        summary = await export_results(mettl, ExportOptions(output=tmp_path / "results.jsonl"))
        await sync_results(mettl, f"sqlite:///{tmp_path / 'mettl.db'}")
    spans = list(exporter.get_finished_spans())
    roots = {span.name: span for span in spans if span.parent is None}
    assert set(roots) == {"mettl.export", "mettl.sync"}
    export = roots["mettl.export"].attributes or {}
    assert export["mettl.records"] == summary.records
    assert export["mettl.requests"] == summary.requests
    for call in calls_of(spans):
        root = call
        while (parent := parent_of(root, spans)) is not None:
            root = parent
        assert root.name in ("mettl.export", "mettl.sync")
    assert_no_secret(spans, server)


# -- hooks --------------------------------------------------------------------------------


async def test_hooks_see_each_attempt_redacted(server: FakeMettlServer) -> None:
    server.fake.add_fault("E503", path="/account")
    seen: list[tuple[str, AttemptInfo]] = []
    async with server.client(
        on_request=lambda info: seen.append(("request", info)),
        on_response=lambda info: seen.append(("response", info)),
    ) as mettl:
        await mettl.get_account()
    assert [(kind, info.attempt, info.status) for kind, info in seen] == [
        ("request", 1, None),
        ("response", 1, 200),
        ("request", 2, None),
        ("response", 2, 200),
    ]
    first, second = seen[1][1], seen[3][1]
    assert isinstance(first.error, ServerError)
    assert first.error.code == "E503"
    assert second.error is None
    assert not second.throttled
    for _, info in seen:
        assert (info.method, info.route) == ("GET", "/account")
        assert info.url.startswith(server.base_url)
        assert info.url.endswith("&asgn=REDACTED")
    assert seen[0][1].elapsed is None
    assert first.elapsed is not None
    assert first.elapsed >= 0


async def test_a_failing_hook_never_fails_the_call(
    server: FakeMettlServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(info: AttemptInfo) -> None:
        raise RuntimeError("a metrics backend is down")

    async with server.client(on_response=broken) as mettl:
        account = await mettl.get_account()
    assert account.name
    [record] = [r for r in caplog.records if "hook" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "metrics backend" in str(record.exc_info[1])


# -- without OpenTelemetry, and with the global provider ------------------------------------


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_without_opentelemetry_nothing_of_it_is_imported_and_calls_work() -> None:
    out = run_python(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed: importing it fails
        import asyncio, json
        import mettl_async
        from mettl_async.testing import FakeMettlServer

        async def main():
            seen = []
            async with FakeMettlServer() as server:
                async with server.client(on_response=seen.append) as mettl:
                    await mettl.get_account()
                    results = [r async for r in mettl.iter_all_results()]
                try:
                    server.client(tracer_provider=object())
                    refused = ""
                except mettl_async.ConfigurationError as exc:
                    refused = str(exc)
            return {"results": len(results), "hooks": len(seen), "refused": refused}

        report = asyncio.run(main())
        loaded = [name for name, module in sys.modules.items() if module is not None]
        report["loaded"] = [name for name in loaded if name.startswith("opentelemetry")]
        print(json.dumps(report))
        """
    )
    report = json.loads(out)
    assert report["loaded"] == []
    assert report["results"] > 0
    assert report["hooks"] >= 2  # the account, then the walk's pages
    assert "opentelemetry-api" in report["refused"]


def test_importing_the_package_imports_no_opentelemetry() -> None:
    """Installed, it is imported when a client is made, not by ``import mettl_async``."""
    out = run_python(
        """
        import sys
        import mettl_async, mettl_async.export, mettl_async.sync, mettl_async.webhooks
        print(sorted(n for n in sys.modules if n.startswith("opentelemetry")))
        """
    )
    assert out.strip() == "[]"


def test_the_global_provider_is_followed_and_a_no_op_provider_turns_tracing_off() -> None:
    out = run_python(
        """
        import asyncio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from mettl_async.testing import FakeMettlServer

        async def main():
            exporter = InMemorySpanExporter()
            async with FakeMettlServer() as server:
                mettl = server.client()  # made before the provider is set: still follows it
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(provider)
                async with mettl:
                    await mettl.get_account()
                async with server.client(tracer_provider=trace.NoOpTracerProvider()) as off:
                    await off.get_account()
            print([span.name for span in exporter.get_finished_spans()])

        asyncio.run(main())
        """
    )
    assert out.strip() == "['GET /account']"


# -- redact_url, the url_filter of the aiohttp-client instrumentation ----------------------


def test_redact_url_takes_a_string_or_a_yarl_url() -> None:
    url = "https://api.mettl.com/v2/account?ak=pub&ts=1&asgn=c2ln%2Bbg%3D%3D"
    assert redact_url(url) == "https://api.mettl.com/v2/account?ak=pub&ts=1&asgn=REDACTED"
    assert redact_url(URL(url, encoded=True)) == redact_url(url)
    assert redact_url("https://api.mettl.com/v2/account") == "https://api.mettl.com/v2/account"


async def test_redact_url_is_the_url_filter_of_the_aiohttp_instrumentation(
    server: FakeMettlServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The standard instrumentation, on a session the client borrows: its span is a child
    of the client's, and with ``url_filter=redact_url`` carries no signature."""
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    config = create_trace_config(url_filter=redact_url, tracer_provider=provider)
    async with (
        aiohttp.ClientSession(trace_configs=[config]) as session,
        server.client(session=session, tracer_provider=provider) as mettl,
    ):
        await mettl.get_account()
    spans = list(exporter.get_finished_spans())
    [ours] = calls_of([s for s in spans if s.name == "GET /account"])
    [theirs] = [span for span in spans if span is not ours]
    assert parent_of(theirs, spans) is ours
    urls = [str(v) for v in (theirs.attributes or {}).values() if "/v2/account" in str(v)]
    assert urls
    assert all(url.endswith("asgn=REDACTED") for url in urls)
    assert_no_secret(spans, server)


# -- a borrowed session keeps the client's bound --------------------------------------------


async def test_a_borrowed_session_keeps_the_bound_on_requests_in_flight(
    server: FakeMettlServer,
) -> None:
    """A session with room for 100 connections: the client still sends at most
    ``max_in_flight`` requests at once (counted by the fake as they arrive)."""
    server.fake.latency = 0.05
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with server.client(session=session, max_in_flight=3) as mettl:
            await asyncio.gather(*(mettl.get_account() for _ in range(20)))
            results = [result async for _, result in mettl.iter_all_results()]
        assert not session.closed
    assert results
    assert server.fake.requests == mettl.stats.requests
    assert 1 <= server.fake.peak_in_flight <= 3
