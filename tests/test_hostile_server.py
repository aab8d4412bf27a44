"""A hostile server: oversized, endless, deeply nested, not-UTF-8 and echoing answers.

Each gives a typed error (never a foreign exception), the size cap is never
retried, memory stays bounded (peak RSS measured in a child process), and the
signature never appears in what an error shows.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import re
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web

from mettl_async import (
    DecodeError,
    MettlClient,
    RequestError,
    ResponseTooLargeError,
    RetryPolicy,
)
from mettl_async._session import DEFAULT_MAX_RESPONSE_BYTES
from mettl_async.export import ExportOptions, export_results

MiB = 1024 * 1024
CHUNK = b"x" * (64 * 1024)
EMAIL = "ada@example.com"


def _page(records: list[bytes], total: int | None = None) -> bytes:
    paging = b',"paging":{"totalRecords":%d}' % total if total is not None else b""
    return b'{"status":"SUCCESS","candidates":[' + b",".join(records) + b"]" + paging + b"}"


def _schedule(key: str) -> bytes:
    return orjson.dumps(
        {"accessKey": key, "name": f"Schedule {key}", "assessmentDetails": {"id": 7}}
    )


class Hostile:
    """An aiohttp.web app answering each path with one kind of hostile body."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.app = web.Application()
        self.app.router.add_get("/v2/declared", self.declared)
        self.app.router.add_get("/v2/endless", self.endless)
        self.app.router.add_get("/v2/bomb", self.bomb)
        self.app.router.add_get("/v2/small", self.small)
        self.app.router.add_get("/v2/deep", self.deep)
        self.app.router.add_get("/v2/echo/{how}", self.echo)
        self.app.router.add_post("/v2/echo/{how}", self.echo)
        self.app.router.add_get("/v2/schedules", self.schedules)
        self.app.router.add_get("/v2/schedules/{key}", self.schedule)
        self.app.router.add_get("/v2/schedules/{key}/candidates", self.candidates)

    def hit(self, request: web.Request) -> None:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1

    async def declared(self, request: web.Request) -> web.StreamResponse:
        """A body that says it is 200 MB long (and would be, if read)."""
        self.hit(request)
        response = web.StreamResponse()
        response.content_length = 200 * MiB
        response.content_type = "application/json"
        await response.prepare(request)
        return await _pour(response, 200 * MiB)

    async def endless(self, request: web.Request) -> web.StreamResponse:
        """A chunked body that never ends (until the client hangs up; 2 GiB at most)."""
        self.hit(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        response.content_type = "application/json"
        await response.prepare(request)
        return await _pour(response, 2048 * MiB)

    async def bomb(self, request: web.Request) -> web.Response:
        """A small gzip body that inflates to 96 MiB (three times the default cap)."""
        self.hit(request)
        return web.Response(
            body=_bomb(), headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async def small(self, request: web.Request) -> web.Response:
        self.hit(request)
        return web.json_response({"status": "SUCCESS", "account": {"name": "x"}})

    async def deep(self, request: web.Request) -> web.Response:
        self.hit(request)
        depth = 100_000
        return web.Response(body=b"[" * depth + b"]" * depth, content_type="application/json")

    async def echo(self, request: web.Request) -> web.Response:
        """An error answer repeating the request's signature in the form ``how`` names."""
        self.hit(request)
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        asgn = params.get("asgn", "")
        how = request.match_info["how"]
        if how == "html":  # a proxy's error page, echoing the URL (not JSON)
            body = f"<html>bad gateway: {request.path_qs} sig {asgn}</html>".encode()
            return web.Response(status=200, body=body, content_type="text/html")
        message = {
            "json": orjson.dumps({"asgn": asgn, "ak": params.get("ak")}).decode(),
            "repr": repr({"asgn": asgn}),
            "bare": f"signature {asgn} does not match",
            "encoded": f"redirect=https%3A%2F%2Fh%2Fx%3Fts%3D1%26asgn%3D{quote(asgn, safe='')}",
            "escaped": orjson.dumps({"sig": asgn}).decode().replace("/", "\\/"),
        }[how]
        error = {"code": "E400", "message": message}
        return web.json_response({"status": "ERROR", "error": error})

    async def schedules(self, request: web.Request) -> web.Response:
        self.hit(request)
        keys = ["utf8", "number", "deep"]
        body = b'{"status":"SUCCESS","schedules":[' + b",".join(map(_schedule, keys)) + b"]}"
        return web.Response(body=body, content_type="application/json")

    async def schedule(self, request: web.Request) -> web.Response:
        body = b'{"status":"SUCCESS","schedule":' + _schedule(request.match_info["key"]) + b"}"
        return web.Response(body=body, content_type="application/json")

    async def candidates(self, request: web.Request) -> web.Response:
        """A listing page whose records are hostile in the way the access key names."""
        self.hit(request)
        key = request.match_info["key"]
        good = orjson.dumps({"email": EMAIL, "testStatus": {"status": "Completed"}})
        if key == "utf8":  # invalid UTF-8 inside a value the scan skips
            bad = b'{"email":"b@example.com","registration":{"Name":"Zo\xff"}}'
            body = _page([good, bad], 2)
        elif key == "utf8key":  # invalid UTF-8 in the key itself
            body = _page([b'{"email":"b\xfe@example.com"}'], 1)
        elif key == "number":  # a number beyond a double, outside the key
            body = _page([b'{"email":"c@example.com","testStatus":{"status":"X","n":1e400}}'], 1)
        elif key == "numberkey":
            body = _page([b'{"email":1e400}'], 1)
        elif key == "deep":
            depth = 100_000
            body = _page([b'{"email":"d@example.com","x":' + b"[" * depth + b"]" * depth + b"}"])
        else:
            body = _page([good], 1)
        return web.Response(body=body, content_type="application/json")


@functools.cache
def _bomb() -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    return b"".join(compressor.compress(CHUNK) for _ in range(1536)) + compressor.flush()


async def _pour(response: web.StreamResponse, limit: int) -> web.StreamResponse:
    sent = 0
    try:
        while sent < limit:
            await response.write(CHUNK)
            sent += len(CHUNK)
    except (ConnectionError, RuntimeError):
        pass  # the client hung up: what it should do past its cap
    return response


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[Hostile, str]]:
    server = Hostile()
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _client(base_url: str, **kwargs: Any) -> MettlClient:
    kwargs.setdefault("retry", RetryPolicy(attempts=3, instant=True, learn_rate=False))
    return MettlClient("public", "private", base_url=base_url, **kwargs)


# -- the size cap ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/declared", "/endless", "/bomb"])
async def test_an_answer_over_the_cap_is_a_typed_error_not_retried(
    hostile: tuple[Hostile, str], path: str
) -> None:
    server, url = hostile
    async with _client(url, max_response_bytes=4 * MiB) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.request("GET", path)
        assert client.stats.requests == 1
    error = caught.value
    assert error.limit == 4 * MiB
    assert "max_response_bytes (4,194,304 bytes" in str(error)
    assert error.path == f"/v2{path}"
    assert server.hits[f"/v2{path}"] == 1  # never retried: the same answer would come again
    assert not isinstance(error, DecodeError)


async def test_the_default_cap_is_tens_of_mebibytes_and_small_answers_pass(
    hostile: tuple[Hostile, str],
) -> None:
    assert 16 * MiB <= DEFAULT_MAX_RESPONSE_BYTES <= 64 * MiB
    _, url = hostile
    async with _client(url) as client:
        envelope = await client.request("GET", "/small")
        assert envelope["account"] == {"name": "x"}
        with pytest.raises(ResponseTooLargeError, match="declares 209,715,200 bytes"):
            await client.request("GET", "/declared")


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "10"])
def test_a_bad_cap_is_a_configuration_error(value: Any) -> None:
    from mettl_async import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        MettlClient("a", "b", max_response_bytes=value)


def test_the_cap_error_pickles_with_its_limit() -> None:
    import pickle

    error = ResponseTooLargeError("too big", limit=5, method="GET", path="/v2/x", status=200)
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.limit, again.path, str(again)) == (
        ResponseTooLargeError,
        5,
        "/v2/x",
        str(error),
    )


# -- bodies that cannot be decoded ----------------------------------------------------


async def test_a_deeply_nested_answer_is_a_decode_error(hostile: tuple[Hostile, str]) -> None:
    _, url = hostile
    async with _client(url) as client:
        with pytest.raises(DecodeError, match="depth"):
            await client.request("GET", "/deep")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("utf8", "record 1 is not UTF-8"),
        ("utf8key", "not UTF-8"),
        ("numberkey", "cannot be read"),
        ("deep", "depth"),
    ],
)
async def test_a_hostile_listing_page_is_a_decode_error(
    hostile: tuple[Hostile, str], key: str, reason: str
) -> None:
    """Raw and typed walks alike: never RecursionError, msgspec's or orjson's own errors."""
    _, url = hostile
    async with _client(url) as client:
        for listing in (
            client.iter_candidate_results(key).raw(),
            client.iter_candidate_results(key),
        ):
            with pytest.raises(DecodeError, match=reason) as caught:
                async for _ in listing:
                    pass
            assert caught.value.attempts == 3  # an unreadable answer is retried, then reported
            assert isinstance(caught.value, RequestError)


async def test_a_number_beyond_a_double_is_kept_raw_and_a_decode_error_when_parsed(
    hostile: tuple[Hostile, str], tmp_path: Path
) -> None:
    """The scan keeps the record's bytes (valid JSON); parsing it raises DecodeError."""
    _, url = hostile
    async with _client(url) as client:
        (record,) = [r async for r in client.iter_candidate_results("number").raw()]
        assert b"1e400" in record.json
        with pytest.raises(DecodeError, match="cannot be read"):
            record.to_dict()
        with pytest.raises(DecodeError):
            _ = [r async for r in client.iter_candidate_results("number")]
        # the JSONL export writes it as sent; the CSV export, which reads it, says why not
        output = tmp_path / "n.jsonl"
        await export_results(client, ExportOptions(output=output, access_keys=("number",)))
        assert b"1e400" in output.read_bytes()
        with pytest.raises(DecodeError):
            await export_results(
                client,
                ExportOptions(output=tmp_path / "n.csv", format="csv", access_keys=("number",)),
            )


async def test_a_jsonl_export_never_writes_invalid_utf8(
    hostile: tuple[Hostile, str], tmp_path: Path
) -> None:
    _, url = hostile
    output = tmp_path / "r.jsonl"
    async with _client(url) as client:
        with pytest.raises(DecodeError, match="not UTF-8"):
            await export_results(client, ExportOptions(output=output, access_keys=("utf8",)))
    assert not output.exists()
    partial = tmp_path / "r.jsonl.partial"
    if partial.exists():
        partial.read_bytes().decode("utf-8")  # whatever was written is UTF-8


# -- the signature never shows ----------------------------------------------------------


@pytest.mark.parametrize("how", ["json", "repr", "bare", "encoded", "escaped", "html"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_echoed_signature_is_redacted_in_every_form(
    hostile: tuple[Hostile, str], how: str, method: str
) -> None:
    _, url = hostile
    seen: list[str] = []
    original = MettlClient.request

    async with _client(url, retry=RetryPolicy.never()) as client:
        transport = client._transport
        prepare = transport.prepare

        def remember(request: Any) -> Any:
            prepared = prepare(request)
            seen.append(prepared.signature)
            return prepared

        transport.prepare = remember  # type: ignore[method-assign]
        with pytest.raises(RequestError) as caught:
            await original(client, method, f"/echo/{how}", {"x": "1"})
    (signature,) = seen
    error = caught.value
    shown = " ".join(
        [str(error), repr(error), error.url, error.message, getattr(error, "excerpt", "")]
    )
    for spelling in (signature, quote(signature, safe=""), signature.replace("/", "\\/")):
        assert spelling not in shown
    assert signature[:12] not in shown
    assert "REDACTED" in shown


# -- memory stays bounded (peak RSS of a child process) ---------------------------------

_CHILD = """
import asyncio, sys
from mettl_async import MettlClient, ResponseTooLargeError, RetryPolicy

async def main(url, path):
    async with MettlClient("p", "q", base_url=url, retry=RetryPolicy.never()) as client:
        try:
            await client.request("GET", path)
        except ResponseTooLargeError:
            pass

asyncio.run(main(sys.argv[1], sys.argv[2]))
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) // 1024)
"""


async def _peak_mib(url: str, path: str) -> int:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, url, path, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(child.communicate(), timeout=120)
    assert child.returncode == 0
    match = re.search(rb"(\d+)\s*$", out)
    assert match, out
    return int(match.group(1))


@pytest.mark.slow
async def test_hostile_bodies_keep_memory_bounded(hostile: tuple[Hostile, str]) -> None:
    """200 MB declared, endless chunked, a gzip bomb: the peak stays near the cap."""
    _, url = hostile
    baseline = await _peak_mib(url, "/small")
    cap = DEFAULT_MAX_RESPONSE_BYTES // MiB
    for path in ("/declared", "/endless", "/bomb"):
        peak = await _peak_mib(url, path)
        # The answer is held up to the cap, once: not the 200 MB, the GiBs, or the 96 MiB.
        assert peak - baseline < cap + 24, (path, baseline, peak)


def test_gzip_bomb_really_inflates() -> None:
    """The bomb is what it says: the check above is not vacuous."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = b"".join(compressor.compress(CHUNK) for _ in range(64)) + compressor.flush()
    assert len(body) < 64 * 1024
    assert len(gzip.decompress(body)) == 64 * len(CHUNK)
