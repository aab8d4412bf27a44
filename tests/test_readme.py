"""Every Python example of the README runs as written, so that none can rot.

The examples are complete programs run against ``mettl-async fake-server``,
started here in its own process, with the three variables it tells you to
export. A block preceded by ``<!-- readme-test: KIND -->`` is run another way:

- ``pytest``: saved as a test file in an empty directory and run with plain
  ``python -m pytest`` (the plugin's ``fake_mettl`` fixture, no conftest);
- ``receiver``: a server: run until it prints the URL Mettl is to call, then
  sent a webhook there as Mettl would, then stopped with Ctrl+C (SIGINT);
- ``service``: a web service on ``PORT`` (FastAPI or aiohttp) with a route
  ``GET /schedules/{access_key}/results`` that counts a schedule's results through
  its client, and Mettl's webhooks at ``/mettl/``: asked for a count, sent real
  deliveries (and refused ones) as Mettl sends them, then stopped with Ctrl+C;
- ``skip: REASON``: not run, and the reason is shown in the test report.

``mettl-async`` command lines in ``sh`` blocks are parsed (not run: CI runs
the quick-start ones) so that none names a flag that does not exist.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from mettl_async.cli.entry import build_parser
from mettl_async.testing import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, free_port

from .conftest import HERE

README = HERE.parent / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)


class Block(NamedTuple):
    heading: str
    line: int
    lang: str
    kind: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.heading} (README.md:{self.line})"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()]
        headings = re.findall(r"^## (.+)$", before, re.M)
        line = before.count("\n") + 1 + (1 if match.group("marker") else 0)
        kind = (match.group("marker") or "program").strip()
        blocks.append(
            Block(headings[-1] if headings else "top", line, match["lang"], kind, match["code"])
        )
    return blocks


PYTHON = [block for block in readme_blocks() if block.lang == "python"]


def test_the_readme_has_its_examples() -> None:
    """The extraction finds every kind of example (an empty list would test nothing)."""
    kinds = [block.kind for block in PYTHON]
    assert kinds.count("program") >= 5
    assert "pytest" in kinds
    assert "receiver" in kinds
    assert kinds.count("service") == 2  # the FastAPI program and its aiohttp twin
    for block in PYTHON:
        known = block.kind in ("program", "pytest", "receiver", "service")
        assert known or block.kind.startswith("skip: "), (
            f"{block.name}: unknown marker {block.kind!r}"
        )
        if block.kind.startswith("skip: "):
            assert block.kind[6:].strip(), f"{block.name}: a skip needs its reason"


def test_the_readme_documents_the_demo_keys() -> None:
    text = README.read_text(encoding="utf-8")
    assert DEMO_PUBLIC_KEY in text
    assert DEMO_PRIVATE_KEY in text


def test_command_lines_in_the_readme_parse() -> None:
    parser = build_parser()
    commands = []
    for block in readme_blocks():
        if block.lang != "sh":
            continue
        logical = block.code.replace("\\\n", " ")
        for line in logical.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and "=" in words[0]:  # VAR=value before the command
                    words.pop(0)
                if words and words[0].endswith("mettl-async"):
                    commands.append(words[1:])
    assert len(commands) >= 3
    for argv in commands:
        parser.parse_args(argv)  # exits (fails the test) on an unknown flag


# -- running the examples --------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server_env() -> Iterator[dict[str, str]]:
    """``mettl-async fake-server`` in its own process, and the variables it says to export."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mettl_async", "fake-server"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        exported: dict[str, str] = {}
        for line in process.stdout:
            found = re.match(r"\s*export (METTL_\w+)=(\S+)", line)
            if found:
                exported[found[1]] = found[2]
            if line.startswith("Press Ctrl+C"):
                break
        assert set(exported) == {"METTL_BASE_URL", "METTL_PUBLIC_KEY", "METTL_PRIVATE_KEY"}
        yield exported
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def example_env(extra: dict[str, str]) -> dict[str, str]:
    """The suite's environment without its METTL_* variables (the example sets its own),
    but for the test's own cache directory (no shared rate file in the user's cache)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("METTL_") or k == "METTL_ASYNC_CACHE_DIR"
    }
    return {**env, **extra}


def by_kind(kind: str) -> list[Block]:
    """The blocks of one kind; skipped blocks are listed with the programs, and skipped."""
    return [
        block
        for block in PYTHON
        if block.kind == kind or (kind == "program" and block.kind.startswith("skip: "))
    ]


@pytest.mark.slow
@pytest.mark.parametrize("block", by_kind("program"), ids=lambda block: block.name)
def test_a_program_runs(block: Block, fake_server_env: dict[str, str], tmp_path: Path) -> None:
    if block.kind.startswith("skip: "):
        pytest.skip(f"{block.name}: {block.kind[6:]}")
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=example_env(fake_server_env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{block.name}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("block", by_kind("pytest"), ids=lambda block: block.name)
def test_a_test_example_passes_under_plain_pytest(block: Block, tmp_path: Path) -> None:
    """In an empty directory: no conftest, no configuration, only the example."""
    (tmp_path / "test_mettl.py").write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mettl.py"],
        cwd=tmp_path,
        env=example_env({}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"\b[1-9]\d* passed\b", output), output
    assert " failed" not in output, output
    assert " error" not in output, output


WEBHOOK_PASSWORD = "a-test-password"


class Server(NamedTuple):
    process: subprocess.Popen[str]
    output: list[str]  # what it printed, once stopped


@contextmanager
def example_server(block: Block, env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    """The example run as a server (with the fake's variables, ``PORT`` and
    ``WEBHOOK_PASSWORD``), stopped with Ctrl+C (SIGINT) at the end: it must exit cleanly."""
    script = tmp_path / "server.py"
    script.write_text(block.code, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=example_env({**env, "WEBHOOK_PASSWORD": WEBHOOK_PASSWORD}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(process, [])
    try:
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    server.output.append(out)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize("block", by_kind("receiver"), ids=lambda block: block.name)
def test_the_webhook_receiver_accepts_mettls_post(
    block: Block, fake_server_env: dict[str, str], tmp_path: Path
) -> None:
    """Run it, POST a finishTest event as Mettl does to the URL it prints, stop it."""
    env = {**fake_server_env, "PORT": str(free_port())}
    with example_server(block, env, tmp_path) as server:
        process = server.process
        assert process.stdout is not None
        printed = process.stdout.readline()
        found = re.search(r"POST to (http\S+)", printed)
        assert found, printed + (process.stderr.read() if process.stderr else "")
        url = found[1]
        event = (HERE / "samples" / "article13_webhook_finish_test.json").read_bytes()
        token = base64.b64encode(f"mettl:{WEBHOOK_PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            url,
            data=event,
            method="POST",
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
            assert json.loads(answer.read()) == {"status": "delivered"}
        received = process.stdout.readline()
        assert received.startswith("FinishTestEvent: "), received


def _lowered(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One request to the service: its status, headers (lower-case names) and JSON answer
    (errors included)."""
    method = "GET" if body is None else "POST"
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, _lowered(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, _lowered(refused.headers), json.loads(refused.read())


def _first_schedule_and_its_results(env: dict[str, str]) -> tuple[str, int]:
    """What the fake holds, asked with a client of the test's own."""
    from mettl_async import MettlClient

    async def ask() -> tuple[str, int]:
        async with MettlClient(
            env["METTL_PUBLIC_KEY"], env["METTL_PRIVATE_KEY"], base_url=env["METTL_BASE_URL"]
        ) as mettl:
            schedule = (await mettl.iter_schedules().collect())[0]
            results = await mettl.iter_candidate_results(schedule.access_key).collect()
            return schedule.access_key, len(results)

    return asyncio.run(ask())


def _wait_until_serving(process: subprocess.Popen[str], url: str) -> None:
    """Until ``url`` answers (bounded): the service binds its port after starting."""
    for _ in range(600):
        assert process.poll() is None, "the service stopped before it answered"
        try:
            _request(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
        else:
            return
    raise AssertionError(f"the service never answered {url}")


@pytest.mark.slow
@pytest.mark.parametrize("block", by_kind("service"), ids=lambda block: block.name)
def test_the_web_service_calls_mettl_and_receives_its_webhooks(
    block: Block, fake_server_env: dict[str, str], tmp_path: Path
) -> None:
    """Run it against the fake; count a schedule's results through its route; POST real
    deliveries to its webhooks as Mettl does (both auth forms), a repeat, a refused one and
    a GET; stop it with Ctrl+C and find each event handed to the application once."""
    port = free_port()
    access_key, results = _first_schedule_and_its_results(fake_server_env)
    base = f"http://127.0.0.1:{port}"
    with example_server(block, {**fake_server_env, "PORT": str(port)}, tmp_path) as server:
        _wait_until_serving(server.process, f"{base}/schedules/{access_key}/results")
        counted = _request(f"{base}/schedules/{access_key}/results")
        assert counted[::2] == (200, {"access_key": access_key, "results": results})
        missing = _request(f"{base}/schedules/no-such-schedule/results")
        assert missing[::2] == (404, {"detail": "no schedule no-such-schedule"})
        samples = HERE / "samples"
        finish = (samples / "article13_webhook_finish_test.json").read_bytes()
        graded = (samples / "article13_webhook_graded_assessment.json").read_bytes()
        token = base64.b64encode(f"mettl:{WEBHOOK_PASSWORD}".encode()).decode()
        basic = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        php = {"php-auth-user": "mettl", "php-auth-pw": WEBHOOK_PASSWORD}
        hooks = f"{base}/mettl/"
        answers = [
            _request(hooks, finish, basic),
            _request(hooks, finish, basic),
            _request(f"{hooks}graded", graded, php),
            _request(hooks, finish, {"php-auth-user": "mettl", "php-auth-pw": "wrong"}),
            _request(hooks),
        ]
        assert [(status, answer["status"]) for status, _, answer in answers] == [
            (200, "delivered"),
            (200, "duplicate"),
            (200, "delivered"),
            (401, "unauthorized"),
            (405, "method_not_allowed"),
        ]
        assert answers[-1][1]["allow"] == "POST"
    (out,) = server.output
    received = [line.split(":")[0] for line in out.splitlines() if "Event: " in line]
    assert received == ["FinishTestEvent", "GradedAssessmentEvent"], out
