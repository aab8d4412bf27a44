"""Fault injection for the export: kills, full disks, a second run, forged checkpoints and
planted links. Each case ends by comparing the file with an uninterrupted export of the
same fake account: the same set of records, every line valid, none twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import errno
import io
import os
import random
import resource
import signal
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from mettl_async import IncompleteListingError, RetryPolicy
from mettl_async.export import ExportError, ExportOptions, Format, export_results
from mettl_async.export import engine as export_engine
from mettl_async.export.base import get_format
from mettl_async.testing import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

SIZES = [0, 40, 100, 150, 250, 61, 7]
SEED = 14
NEVER = float("inf")  # no checkpoint in the run (SIGKILL leaves it no last one)


@pytest.fixture
async def served() -> AsyncIterator[FakeMettlServer]:
    async with FakeMettlServer(FakeMettl(account=FakeAccount(SIZES, seed=SEED))) as server:
        yield server


async def reference(server: FakeMettlServer, path: Path, fmt: Format = "jsonl") -> Path:
    """An uninterrupted export of the server's account."""
    async with server.client() as client:
        await export_results(client, ExportOptions(output=path, format=fmt))
    return path


def records_of(path: Path, fmt: Format) -> tuple[list[str], list[Any]]:
    """The export's header (CSV) and records, each checked to be well formed."""
    data = path.read_bytes()
    text = data.decode("utf-8")  # every byte is UTF-8
    if fmt == "jsonl":
        assert data.endswith(b"\n") or not data
        records = []
        for line in data.splitlines():
            record = orjson.loads(line)  # every line is one JSON object
            assert isinstance(record, dict)
            records.append(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
        return [], records
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    header, body = rows[0], rows[1:]
    assert all(len(row) == len(header) for row in body)
    return header, [tuple(row) for row in body]


def assert_same_export(got: Path, want: Path, fmt: Format = "jsonl") -> None:
    got_header, got_records = records_of(got, fmt)
    want_header, want_records = records_of(want, fmt)
    assert got_header == want_header
    assert len(got_records) == len(set(got_records)), "a record is there twice"
    assert set(got_records) == set(want_records)
    assert len(got_records) == sum(SIZES)
    for side in (".partial", ".checkpoint", ".lock", ".csv-partial"):
        assert not got.with_name(got.name + side).exists(), side


async def until(ready: Callable[[], bool], timeout: float = 30) -> None:
    """Poll ``ready`` (a file appearing, growing) until it holds."""
    async with asyncio.timeout(timeout):
        for _ in iter(int, 1):
            if ready():
                return
            await asyncio.sleep(0.01)


# -- SIGKILL mid-export (a page held, the rename held), then --resume ---------------------------


def _env(base_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY,
        "METTL_BASE_URL": base_url,
    }


async def _export_process(
    base_url: str,
    output: Path,
    fmt: Format,
    *flags: str,
    checkpoint_every: float | None = None,
    hold_finish: bool = False,
) -> asyncio.subprocess.Process:
    """``mettl-async export`` in a child process. ``checkpoint_every`` sets its seconds between
    checkpoints; with ``hold_finish`` it says ``finishing`` on its standard output and stops
    just before renaming the CSV it wrote whole beside ``PATH`` to ``PATH`` (until killed)."""
    env = _env(base_url)
    command = ("-m", "mettl_async")
    if checkpoint_every is not None or hold_finish:
        command = ("-c", _CHILD)
        env["TEST_CHECKPOINT_EVERY"] = "" if checkpoint_every is None else str(checkpoint_every)
        env["TEST_HOLD_FINISH"] = "1" if hold_finish else ""
    return await asyncio.create_subprocess_exec(
        sys.executable, *command, "export", "--all", "--format", fmt,
        "--output", str(output), "--quiet", "--concurrency", "2", *flags,
        env=env, stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE if hold_finish else None,
    )  # fmt: skip


# The command line, with the checkpoint interval the test chose, and held before the rename.
_CHILD = """
import os, signal, sys
from mettl_async.export import engine
if os.environ["TEST_CHECKPOINT_EVERY"]:
    engine.CHECKPOINT_EVERY = float(os.environ["TEST_CHECKPOINT_EVERY"])
replace = os.replace
def holding(src, dst, *args, **kwargs):
    if os.environ["TEST_HOLD_FINISH"] and str(src).endswith(".csv-partial"):
        sys.stdout.write("finishing\\n")
        sys.stdout.flush()
        signal.pause()
    return replace(src, dst, *args, **kwargs)
os.replace = holding
sys.argv[0] = "mettl-async"
from mettl_async.cli import main_entry
main_entry()
"""


class PageGate:
    """Holds the fake's result pages once ``budget`` of them were answered: an export that
    still needs a held page cannot finish, so a kill then lands mid-export."""

    def __init__(self) -> None:
        self.budget: int | None = None  # None: every page is answered
        self.pages: collections.Counter[str] = collections.Counter()  # pages asked, by schedule
        self.answered: set[tuple[str, str]] = set()  # (access key, email) answered since arm()
        self.held: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def arm(self, budget: int) -> None:
        self.budget = budget
        self.answered.clear()
        self.held = asyncio.get_running_loop().create_future()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        parts = request.path.split("/")  # /v1/schedules/{access-key}/candidates
        if request.method != "GET" or parts[2:3] != ["schedules"] or parts[4:] != ["candidates"]:
            return await handler(request)
        key = parts[3]
        if self.budget is None:
            self.pages[key] += 1
        elif self.budget == 0:
            if not self.held.done():
                self.held.set_result(None)
            await asyncio.Event().wait()  # never answered: the client is killed, then hangs up
        else:
            self.budget -= 1
        response = await handler(request)
        assert isinstance(response, web.Response)
        assert isinstance(response.body, bytes)
        for record in orjson.loads(response.body)["candidates"]:
            self.answered.add((key, record["email"]))
        return response


class GatedFake(FakeMettl):
    def __init__(self, gate: PageGate, **options: Any) -> None:
        super().__init__(**options)
        self.gate = gate

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self.gate.middleware)
        return app


async def _until_held(gate: PageGate, process: asyncio.subprocess.Process) -> None:
    """Wait until the fake holds a page the export needs; fail if the export ends first."""
    ended = asyncio.ensure_future(process.wait())
    try:
        async with asyncio.timeout(60):
            await asyncio.wait({gate.held, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended.cancel()
    if not gate.held.done():
        await _ended(process)


async def _ended(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    stderr = await process.stderr.read()
    pytest.fail(f"the export ended (exit {await process.wait()}) before the kill: {stderr!r}")


def _done(checkpoint: Path) -> set[str]:
    """The schedules a checkpoint names complete (none if there is none)."""
    done: set[str] = set()
    if checkpoint.exists():
        for line in checkpoint.read_bytes().splitlines()[1:]:
            with contextlib.suppress(orjson.JSONDecodeError):  # a line torn by the kill
                done.update(orjson.loads(line)["done"])
    return done


def _records_in(partial: Path, fmt: Format) -> set[tuple[str | None, str | None]]:
    """(access key, email) of each whole record in the data file."""
    identify = get_format(fmt).identify
    lines = partial.read_bytes().splitlines(keepends=True) if partial.exists() else []
    return {identity for line in lines if (identity := identify(line)) is not None}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "points"),
    [
        ("jsonl", [(0.0, 0.0), (0.1, 0.0), (0.3, NEVER), (0.45, 0.0), (0.6, NEVER), (0.8, 0.0)]),
        ("csv", [(0.2, NEVER), (0.55, 0.0), (0.9, NEVER), ("finish", NEVER)]),
    ],
)
async def test_sigkill_mid_export_then_resume_equals_an_uninterrupted_export(
    tmp_path: Path, fmt: Format, points: list[tuple[Any, float]]
) -> None:
    """Each run is killed while the fake holds a page it needs, once every page answered
    before it is in the data file (vouched for by a checkpoint after each page, or by none
    of this run's), or while it renames the finished CSV into place; the last --resume
    makes the same export as an uninterrupted run."""
    gate = PageGate()
    fake = GatedFake(gate, account=FakeAccount(SIZES, seed=SEED), latency=0.02)
    async with FakeMettlServer(fake) as server:
        want = await reference(server, tmp_path / f"reference.{fmt}", fmt)
        pages = dict(gate.pages)
        output = tmp_path / f"out.{fmt}"
        partial = output.with_name(output.name + ".partial")
        checkpoint = output.with_name(output.name + ".checkpoint")
        rng = random.Random(SEED)
        for number, (point, every) in enumerate(points):
            flags = ("--resume",) if number else ()
            if point == "finish":
                gate.budget = None
                process = await _export_process(
                    server.base_url, output, fmt, *flags, checkpoint_every=every, hold_finish=True
                )
                assert process.stdout is not None
                async with asyncio.timeout(60):
                    said = await process.stdout.readline()
                if said != b"finishing\n":
                    await _ended(process)
                assert output.with_name(output.name + ".csv-partial").exists()
            else:
                # the pages this run must fetch (those of the schedules not done), a share
                # of them answered, then the next one held: the run cannot finish
                remaining = sum(n for key, n in pages.items() if key not in _done(checkpoint))
                gate.arm(min(int(remaining * point) + rng.randrange(2), remaining - 1))
                process = await _export_process(
                    server.base_url, output, fmt, *flags, checkpoint_every=every
                )
                await _until_held(gate, process)
                await until(lambda: gate.answered <= _records_in(partial, fmt))
            process.kill()
            await process.wait()
            assert process.returncode == -signal.SIGKILL
            assert not output.exists()
        gate.budget = None
        process = await _export_process(server.base_url, output, fmt, "--resume")
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr
    assert_same_export(output, want, fmt)


# -- a full disk at random writes, then --resume -------------------------------------------------

_WRITE = os.write


class DiskFull:
    """``os.write`` on the export's side files fails with ENOSPC from write number ``at`` on
    (that write first writes part of its bytes, as a disk filling up does); ``at=None``
    counts writes."""

    def __init__(self, at: int | None = None, keep: float = 0.0) -> None:
        self.at = at
        self.keep = keep
        self.writes = 0
        self.full = False

    def write(self, fd: int, data: Any) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return _WRITE(fd, data)
        if not target.endswith((".partial", ".checkpoint")):
            return _WRITE(fd, data)
        self.writes += 1
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if self.at is not None and self.writes >= self.at:
            self.full = True
            part = bytes(data)[: int(len(data) * self.keep)]
            if part:
                return _WRITE(fd, part)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _WRITE(fd, data)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_full_disk_at_random_writes_then_resume_equals_an_uninterrupted_export(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: Format
) -> None:
    monkeypatch.setattr(export_engine, "CHECKPOINT_EVERY", 0.0)  # a checkpoint every page
    want = await reference(served, tmp_path / f"reference.{fmt}", fmt)
    counter = DiskFull()
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", counter.write)
        await reference(served, tmp_path / f"counted.{fmt}", fmt)
    assert counter.writes > 10
    rng = random.Random(SEED)
    points = sorted(rng.sample(range(1, counter.writes + 1), 6 if fmt == "jsonl" else 3))
    for at in points:
        output = tmp_path / f"out-{at}.{fmt}"
        disk = DiskFull(at, keep=rng.random())
        async with served.client() as client:
            with monkeypatch.context() as patch:
                patch.setattr(os, "write", disk.write)
                with pytest.raises(ExportError, match="No space left on device"):
                    await export_results(client, ExportOptions(output=output, format=fmt))
            assert not output.exists()
            # space is freed: the same export, resumed
            await export_results(client, ExportOptions(output=output, format=fmt, mode="resume"))
        assert_same_export(output, want, fmt)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_file_size_limit_in_a_real_process_then_resume(
    served: FakeMettlServer, tmp_path: Path, fmt: Format
) -> None:
    """The kernel refuses the write (EFBIG under ``ulimit -f``): exit 2, then --resume."""
    want = await reference(served, tmp_path / f"reference.{fmt}", fmt)
    limit = want.stat().st_size // 2
    output = tmp_path / f"out.{fmt}"

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mettl_async", "export", "--all", "--format", fmt,
        "--output", str(output), "--quiet",
        env=_env(served.base_url), stderr=asyncio.subprocess.PIPE, preexec_fn=limited,
    )  # fmt: skip
    _, stderr = await process.communicate()
    assert process.returncode == 2, stderr
    assert b"File too large" in stderr
    assert b"--resume" in stderr  # how to continue
    assert not output.exists()
    process = await _export_process(served.base_url, output, fmt, "--resume")
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr
    assert_same_export(output, want, fmt)


# -- a second run on the same path ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["new", "overwrite", "resume"])
async def test_a_second_run_on_the_same_path_is_refused_at_once(tmp_path: Path, mode: Any) -> None:
    fake = FakeMettl(account=FakeAccount(SIZES, seed=SEED), latency=0.05)
    async with FakeMettlServer(fake) as server:
        want = await reference(server, tmp_path / "reference.jsonl")
        output = tmp_path / "out.jsonl"
        partial = output.with_name(output.name + ".partial")
        async with server.client(max_in_flight=2) as first:
            running = asyncio.create_task(export_results(first, ExportOptions(output=output)))
            await until(lambda: partial.exists() and partial.stat().st_size > 0)
            inode = partial.stat().st_ino
            async with server.client() as second:
                with pytest.raises(ExportError, match=r"another export to .*out\.jsonl is running"):
                    await export_results(second, ExportOptions(output=output, mode=mode))
                assert second.stats.requests == 0
            assert partial.stat().st_ino == inode  # its files untouched
            summary = await running
    assert summary.records == sum(SIZES)
    assert_same_export(output, want)


async def test_the_refusal_names_the_running_export(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    from mettl_async.export.files import ExportLock

    output = tmp_path / "out.jsonl"
    with ExportLock.acquire(output):
        text = output.with_name("out.jsonl.lock").read_text()
        assert text.splitlines()[0] == str(os.getpid())
        async with served.client() as client:
            with pytest.raises(ExportError, match=rf"pid {os.getpid()}"):
                await export_results(client, ExportOptions(output=output))
    assert not output.with_name("out.jsonl.lock").exists()  # released and removed
    async with served.client() as client:
        await export_results(client, ExportOptions(output=output))  # free again


async def test_a_lock_left_by_a_killed_run_is_taken_over(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    output = tmp_path / "out.jsonl"
    output.with_name("out.jsonl.lock").write_text("999999\nmettl-async export (killed)\n")
    want = await reference(served, tmp_path / "reference.jsonl")
    async with served.client() as client:
        await export_results(client, ExportOptions(output=output))
    assert_same_export(output, want)


# -- forged and damaged checkpoints ----------------------------------------------------------


def _entry(data: bytes, **overrides: Any) -> bytes:
    entry: dict[str, Any] = {
        "size": len(data),
        "lines": data.count(b"\n"),
        "crc32": zlib.crc32(data),
        "done": [],
    }
    entry.update(overrides)
    return orjson.dumps(entry) + b"\n"


def _forge_complete(partial: bytes, checkpoint: bytes) -> tuple[bytes, bytes]:
    # the forgery of the report: "complete", with the data's size but no valid checksum
    entry = _entry(partial, crc32=0, complete=True)
    return partial, checkpoint + entry


def _header_only(checkpoint: bytes) -> bytes:
    return checkpoint[: checkpoint.index(b"\n") + 1]


def _forge_mid_line(partial: bytes, checkpoint: bytes) -> tuple[bytes, bytes]:
    cut = partial[: len(partial) - 7]  # a valid checksum, of a prefix that ends mid-record
    return partial, _header_only(checkpoint) + _entry(cut)


def _forge_beyond(partial: bytes, checkpoint: bytes) -> tuple[bytes, bytes]:
    return partial, checkpoint + _entry(partial + b"x" * 99 + b"\n")


def _forge_edited_data(partial: bytes, checkpoint: bytes) -> tuple[bytes, bytes]:
    middle = len(partial) // 3
    flipped = partial[:middle] + bytes([partial[middle] ^ 1]) + partial[middle + 1 :]
    return flipped, checkpoint


def _forge_lines(partial: bytes, checkpoint: bytes) -> tuple[bytes, bytes]:
    return partial, _header_only(checkpoint) + _entry(partial, lines=partial.count(b"\n") + 1)


def _forge_backwards(partial: bytes, checkpoint: bytes) -> tuple[bytes, bytes]:
    first_line = partial[: partial.index(b"\n") + 1]
    return partial, checkpoint + _entry(partial) + _entry(first_line)


def _forge_version(partial: bytes, checkpoint: bytes) -> tuple[bytes, bytes]:
    head, _, rest = checkpoint.partition(b"\n")
    header = orjson.loads(head)
    header["mettl-async-export"] = 1
    return partial, orjson.dumps(header) + b"\n" + rest


def _forge_type(field: str, value: Any) -> Callable[[bytes, bytes], tuple[bytes, bytes]]:
    def forge(partial: bytes, checkpoint: bytes) -> tuple[bytes, bytes]:
        return partial, checkpoint + _entry(partial, **{field: value})

    return forge


FORGERIES = {
    "complete-without-checksum": (_forge_complete, "checksum|describe the same"),
    "size-mid-record": (_forge_mid_line, "not the end of a record"),
    "size-beyond-the-data": (_forge_beyond, "shorter"),
    "data-edited": (_forge_edited_data, "checksum"),
    "lines-miscounted": (_forge_lines, "records with checksum"),
    "size-going-back": (_forge_backwards, "went back"),
    "older-version": (_forge_version, "another version"),
    "size-as-text": (_forge_type("size", "100"), "whole numbers"),
    "negative-lines": (_forge_type("lines", -1), "whole numbers"),
    "crc-too-wide": (_forge_type("crc32", 2**40), "32-bit"),
    "done-not-a-list": (_forge_type("done", "tiwao88y00"), "list of access keys"),
    "complete-false": (_forge_type("complete", False), "complete must be true"),
    "unknown-field": (_forge_type("extra", 1), "unknown fields"),
}


async def _interrupted(server: FakeMettlServer, output: Path) -> None:
    """A real interrupted export: one page fails for good, the rest is journalled."""
    big = next(s for s in server.fake.account.schedules if s.base_candidates == 250)
    fault = server.fake.add_fault(
        "E503", times=1000, path=f"/schedules/{big.access_key}/candidates", params={"offset": "200"}
    )
    async with server.client(
        retry=RetryPolicy(attempts=2, instant=True, learn_rate=False)
    ) as client:
        with pytest.raises(IncompleteListingError):
            await export_results(client, ExportOptions(output=output))
    server.fake.faults.remove(fault)


async def test_forged_or_damaged_checkpoints_refuse_to_resume(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_engine, "CHECKPOINT_EVERY", 0.0)
    want = await reference(served, tmp_path / "reference.jsonl")
    work = tmp_path / "work"
    work.mkdir()
    output = work / "out.jsonl"
    partial, checkpoint = work / "out.jsonl.partial", work / "out.jsonl.checkpoint"
    await _interrupted(served, output)
    good = partial.read_bytes(), checkpoint.read_bytes()
    assert good[0].count(b"\n") > 100
    async with served.client() as client:
        for name, (forge, message) in FORGERIES.items():
            data, journal = forge(*good)
            partial.write_bytes(data)
            checkpoint.write_bytes(journal)
            requests = served.fake.requests
            with pytest.raises(ExportError, match=message) as caught:
                await export_results(client, ExportOptions(output=output, mode="resume"))
            assert "--overwrite" in str(caught.value), name
            assert served.fake.requests == requests, name  # refused before any request
            assert (partial.read_bytes(), checkpoint.read_bytes()) == (data, journal), name
            assert not output.exists()
        # the files as the interruption left them resume to the full export
        partial.write_bytes(good[0])
        checkpoint.write_bytes(good[1])
        await export_results(client, ExportOptions(output=output, mode="resume"))
    assert_same_export(output, want)


async def test_a_damaged_checkpoint_is_replaced_by_overwrite(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    want = await reference(served, tmp_path / "reference.jsonl")
    output = tmp_path / "out.jsonl"
    await _interrupted(served, output)
    checkpoint = tmp_path / "out.jsonl.checkpoint"
    checkpoint.write_bytes(checkpoint.read_bytes() + b'{"size":"x"}\n')
    async with served.client() as client:
        with pytest.raises(ExportError, match=r"--resume|--overwrite"):
            await export_results(client, ExportOptions(output=output))
        await export_results(client, ExportOptions(output=output, mode="overwrite"))
    assert_same_export(output, want)


# -- planted symbolic links ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "fmt"),
    [(".csv-partial", "csv"), (".partial", "jsonl"), (".checkpoint", "jsonl"), (".lock", "jsonl")],
)
@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
async def test_a_link_planted_at_a_side_file_is_never_written_through(
    served: FakeMettlServer, tmp_path: Path, side: str, fmt: Format, dangling: bool
) -> None:
    want = await reference(served, tmp_path / f"reference.{fmt}", fmt)
    work = tmp_path / "work"
    work.mkdir()
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious")
    output = work / f"out.{fmt}"
    link = work / f"out.{fmt}{side}"
    link.symlink_to(victim)
    async with served.client() as client:
        if side == ".csv-partial":  # the export's own scratch name: the link is replaced
            await export_results(client, ExportOptions(output=output, format=fmt))
        else:
            requests = served.fake.requests
            with pytest.raises(ExportError, match="symbolic link"):
                await export_results(client, ExportOptions(output=output, format=fmt))
            assert served.fake.requests == requests  # refused before any request
            with pytest.raises(ExportError, match="symbolic link"):
                await export_results(
                    client, ExportOptions(output=output, format=fmt, mode="resume")
                )
            if side != ".lock":  # --overwrite removes a planted side file (the link itself)
                await export_results(
                    client, ExportOptions(output=output, format=fmt, mode="overwrite")
                )
            else:
                link.unlink()
                await export_results(client, ExportOptions(output=output, format=fmt))
    if dangling:
        assert not victim.exists()  # never created through the link
    else:
        assert victim.read_text() == "precious"  # never written through the link
    assert_same_export(output, want, fmt)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
async def test_a_link_at_the_output_is_replaced_only_with_overwrite(
    served: FakeMettlServer, tmp_path: Path, dangling: bool
) -> None:
    want = await reference(served, tmp_path / "reference.jsonl")
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious")
    output = tmp_path / "out.jsonl"
    output.symlink_to(victim)
    async with served.client() as client:
        with pytest.raises(ExportError, match="exists"):
            await export_results(client, ExportOptions(output=output))
        await export_results(client, ExportOptions(output=output, mode="overwrite"))
    assert not output.is_symlink()
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_text() == "precious"
    assert_same_export(output, want)


async def test_a_partial_link_is_not_truncated_by_resume(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    """The report's case: --resume with a planted .partial link truncated its target."""
    output = tmp_path / "out.jsonl"
    await _interrupted(served, output)
    partial = tmp_path / "out.jsonl.partial"
    victim = tmp_path / "victim.txt"
    victim.write_bytes(partial.read_bytes() + b"more precious bytes\n")
    before = victim.read_bytes()
    partial.unlink()
    partial.symlink_to(victim)
    async with served.client() as client:
        with pytest.raises(ExportError, match="symbolic link"):
            await export_results(client, ExportOptions(output=output, mode="resume"))
    assert victim.read_bytes() == before
