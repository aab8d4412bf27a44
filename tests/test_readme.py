"""Every Python example of the README runs as written, so that none can rot.

The examples are complete programs run against ``mettl-async fake-server``,
started here in its own process, with the three variables it tells you to
export. A block preceded by ``<!-- readme-test: KIND -->`` is run another way:

- ``pytest``: saved as a test file in an empty directory and run with plain
  ``python -m pytest`` (the plugin's ``fake_mettl`` fixture, no conftest);
- ``receiver``: a server: run until it prints the URL Mettl is to call, then
  sent a webhook there as Mettl would, then stopped with Ctrl+C (SIGINT);
- ``skip: REASON``: not run, and the reason is shown in the test report.

``mettl-async`` command lines in ``sh`` blocks are parsed (not run: CI runs
the quick-start ones) so that none names a flag that does not exist.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

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
    for block in PYTHON:
        assert block.kind in ("program", "pytest", "receiver") or block.kind.startswith("skip: "), (
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


@pytest.mark.slow
@pytest.mark.parametrize("block", by_kind("receiver"), ids=lambda block: block.name)
def test_the_webhook_receiver_accepts_mettls_post(
    block: Block, fake_server_env: dict[str, str], tmp_path: Path
) -> None:
    """Run it, POST a finishTest event as Mettl does to the URL it prints, stop it."""
    script = tmp_path / "receiver.py"
    script.write_text(block.code, encoding="utf-8")
    password = "a-test-password"
    env = example_env({**fake_server_env, "PORT": str(free_port()), "WEBHOOK_PASSWORD": password})
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = process.stdout.readline()
        found = re.search(r"POST to (http\S+)", printed)
        assert found, printed + (process.stderr.read() if process.stderr else "")
        url = found[1]
        event = (HERE / "samples" / "article13_webhook_finish_test.json").read_bytes()
        token = base64.b64encode(f"mettl:{password}".encode()).decode()
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
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
