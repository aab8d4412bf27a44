"""The mettl-async command line: exports, exit codes, kill-and-resume, the demo."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from mettl_async import AuthenticationError, IncompleteListingError, MettlConnectionError
from mettl_async.cli.entry import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_NETWORK,
    EXIT_USAGE,
    exit_code_for,
    main,
)
from mettl_async.testing import (
    DEMO_PRIVATE_KEY,
    DEMO_PUBLIC_KEY,
    FakeMettlServer,
    add_fake_server_arguments,
    fake_from_arguments,
)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METTL_PUBLIC_KEY", DEMO_PUBLIC_KEY)
    monkeypatch.setenv("METTL_PRIVATE_KEY", DEMO_PRIVATE_KEY)
    monkeypatch.delenv("METTL_BASE_URL", raising=False)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mettl_async", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def fake_server_process() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`mettl-async fake-server` in its own process: slow enough to be interrupted.

    At 100 ms a page, the export killed below takes seconds whatever the machine's
    load, leaving the test ample time to see its first checkpoint and kill it.
    """
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mettl_async", "fake-server",
            "--schedules", "24", "--candidates", "300", "--latency-ms", "100", "--seed", "9",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line
        yield match.group(1), process
    finally:
        process.terminate()
        process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()


def keyed_env(base_url: str, private_key: str = DEMO_PRIVATE_KEY) -> dict[str, str]:
    return {
        "METTL_PUBLIC_KEY": DEMO_PUBLIC_KEY,
        "METTL_PRIVATE_KEY": private_key,
        "METTL_BASE_URL": base_url,
    }


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.mark.slow
def test_a_killed_export_resumes_to_the_same_lines(
    fake_server_process: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """SIGKILL mid-export leaves no file at PATH; --resume then gives a full run's lines."""
    base_url, _ = fake_server_process
    env = keyed_env(base_url)
    reference = tmp_path / "reference.jsonl"
    assert (
        run_cli("export", "--all", "--output", str(reference), "--quiet", env=env).returncode == 0
    )

    output = tmp_path / "results.jsonl"
    partial = tmp_path / "results.jsonl.partial"
    checkpoint = tmp_path / "results.jsonl.checkpoint"
    process = subprocess.Popen(
        [sys.executable, "-m", "mettl_async", "export", "--all", "--output", str(output),
         "--quiet", "--concurrency", "2"],
        env={**os.environ, **env},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (
            checkpoint.exists()
            and b'"done":["' in checkpoint.read_bytes()
            and partial.stat().st_size
        ):
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the export never wrote a checkpoint")
    assert process.poll() is None, "the export finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not output.exists()
    assert partial.exists()

    resumed = run_cli("export", "--all", "--output", str(output), "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "kept from before" in resumed.stderr
    got, want = lines_of(output), lines_of(reference)
    assert len(got) == len(set(got)) == len(want) == 24 * 300
    assert set(got) == set(want)
    assert not partial.exists()
    assert not checkpoint.exists()


async def test_jsonl_and_csv_exports_from_the_command_line(keys: None, tmp_path: Path) -> None:
    async with FakeMettlServer() as server:
        env_url = server.base_url
        jsonl, table = tmp_path / "r.jsonl", tmp_path / "r.csv"
        code = await _main_async(["export", "--all", "--base-url", env_url, "-o", str(jsonl), "-q"])
        assert code == 0
        code = await _main_async(
            ["export", "--access-key", server.fake.account.schedules[0].access_key,
             "--format", "csv", "--base-url", env_url, "-o", str(table), "-q"]
        )  # fmt: skip
        assert code == 0
    assert len(lines_of(jsonl)) == server.fake.account.total_candidates
    assert table.read_text(encoding="utf-8-sig").count("\n") == 1 + 10


async def _main_async(argv: list[str]) -> int:
    """main() in a worker thread: it runs its own event loop while the fake serves on ours."""
    import asyncio

    return await asyncio.to_thread(main, argv)


def test_bad_flags_exit_2() -> None:
    result = run_cli("export", "--all", "--format", "xml", "-o", "x")
    assert result.returncode == EXIT_USAGE
    assert "invalid choice" in result.stderr
    assert run_cli("export", "-o", "x").returncode == EXIT_USAGE  # --all or --access-key


def test_the_bare_command_lists_every_command_with_an_example() -> None:
    """``mettl-async`` alone: each command with its one line, examples, exit 2."""
    result = run_cli()
    assert result.returncode == EXIT_USAGE
    for command in ("export", "sync", "webhooks", "demo", "fake-server", "account"):
        assert re.search(rf"^ +{command}\b", result.stderr, re.MULTILINE), command
    assert "mettl-async export --all --output results.jsonl" in result.stderr
    assert "the following arguments are required" not in result.stderr


def test_a_command_group_alone_lists_its_commands() -> None:
    result = run_cli("webhooks")
    assert result.returncode == EXIT_USAGE
    assert re.search(r"^ +listen\b", result.stderr, re.MULTILINE)
    assert "example: mettl-async webhooks listen" in result.stderr


def test_export_alone_names_everything_it_needs_with_an_example() -> None:
    """argparse alone named only --output; --all / --access-key are needed as much."""
    result = run_cli("export")
    assert result.returncode == EXIT_USAGE
    assert "needs --all or --access-key KEY, and --output PATH" in result.stderr
    assert "example: mettl-async export --all --output results.jsonl" in result.stderr


def test_the_help_lists_every_exit_code() -> None:
    out = run_cli("--help").stdout
    for code in ("0", "1", "2", "3", "4", "130", "143"):
        assert re.search(rf"^  {code} +\S", out, re.MULTILINE), code


def test_missing_keys_exit_2_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METTL_")}
    result = subprocess.run(
        [sys.executable, "-m", "mettl_async", "export", "--all", "-o", str(tmp_path / "x")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE
    assert "METTL_PUBLIC_KEY and METTL_PRIVATE_KEY are not set" in result.stderr
    assert "Traceback" not in result.stderr


async def test_existing_output_exits_2(keys: None, tmp_path: Path) -> None:
    output = tmp_path / "r.jsonl"
    output.write_text("x")
    async with FakeMettlServer() as server:
        code = await _main_async(
            ["export", "--all", "--base-url", server.base_url, "-o", str(output)]
        )
    assert code == EXIT_USAGE
    assert output.read_text() == "x"


def test_wrong_private_key_exits_3_with_a_hint(
    fake_server_process: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    base_url, _ = fake_server_process
    result = run_cli(
        "export", "--all", "-o", str(tmp_path / "r"), env=keyed_env(base_url, "wrong-key")
    )
    assert result.returncode == EXIT_AUTH
    assert "E401" in result.stderr
    assert "METTL_PRIVATE_KEY" in result.stderr
    assert "wrong-key" not in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_unreachable_base_url_exits_4(tmp_path: Path, refused_url: str) -> None:
    result = run_cli(
        "export",
        "--all",
        "-o",
        str(tmp_path / "r"),
        env=keyed_env(refused_url),
    )
    assert result.returncode == EXIT_NETWORK
    assert "could not connect" in result.stderr
    assert not (tmp_path / "r").exists()


def test_debug_shows_the_traceback(tmp_path: Path, refused_url: str) -> None:
    result = run_cli(
        "--debug", "export", "--all", "-o", str(tmp_path / "r"),
        env=keyed_env(refused_url),
    )  # fmt: skip
    assert result.returncode == EXIT_NETWORK
    assert "Traceback" in result.stderr


def test_exit_codes_follow_the_cause_of_an_incomplete_listing() -> None:
    incomplete = IncompleteListingError("short")
    incomplete.__cause__ = MettlConnectionError("dropped")
    assert exit_code_for(incomplete) == EXIT_NETWORK
    assert exit_code_for(AuthenticationError("E401")) == EXIT_AUTH
    assert exit_code_for(IncompleteListingError("short")) == EXIT_API


def test_demo_exports_a_fake_account(tmp_path: Path) -> None:
    output = tmp_path / "demo.jsonl"
    result = run_cli(
        "demo", "--schedules", "4", "--candidates", "60", "--latency-ms", "2", "-o", str(output)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(output.resolve())
    assert "exported 240 records from 4 schedules" in result.stderr
    rows = [orjson.loads(line) for line in lines_of(output)]
    assert len({(r["accessKey"], r["email"]) for r in rows}) == 240


def test_version_and_module_entry_point() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("mettl-async ")


def test_an_invalid_base_url_exits_2(tmp_path: Path) -> None:
    result = run_cli("export", "--all", "-o", str(tmp_path / "r"), env=keyed_env("http://host:abc"))
    assert result.returncode == EXIT_USAGE
    assert "not a valid URL" in result.stderr


def test_an_empty_access_key_exits_2_and_leaves_no_files(tmp_path: Path) -> None:
    output = tmp_path / "r.jsonl"
    result = run_cli(
        "export", "--access-key", "", "-o", str(output), env=keyed_env("http://127.0.0.1:9")
    )
    assert result.returncode == EXIT_USAGE
    assert "access key" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--latency-ms", "nan"], "--latency-ms"),
        (["--latency-ms", "inf"], "--latency-ms"),
        (["--latency-ms", "-1"], "--latency-ms"),
        (["--rate", "inf"], "--rate"),
        (["--rate", "5", "--burst", "inf"], "--burst"),
        (["--window-limit", "3", "--window", "inf"], "--window"),
        (["--fault", "E509=nan"], "--fault"),
        (["--fault", "E509=1.5"], "--fault"),
        (["--fault", "E509=often"], "--fault"),
    ],
)
def test_fake_server_refuses_numbers_that_are_not_finite(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fake-server", "--port", "0", *argv]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert f"error: {flag} expects" in captured.err
    assert "listening" not in captured.out


def test_the_standalone_fake_refuses_the_same_numbers() -> None:
    """``python -m mettl_async.testing`` reads its options through the same function."""
    parser = argparse.ArgumentParser()
    add_fake_server_arguments(parser)
    for argv, flag in (
        (["--latency-ms", "nan"], "--latency-ms"),
        (["--fault", "drop=-1"], "--fault"),
    ):
        with pytest.raises(ValueError, match=f"^{flag} expects"):
            fake_from_arguments(parser.parse_args(argv))


@pytest.mark.parametrize(
    ("env", "argv", "names"),
    [
        ({}, ["account", "show"], ["METTL_PUBLIC_KEY", "METTL_PRIVATE_KEY"]),
        (
            {"METTL_PUBLIC_KEY": "p", "METTL_PRIVATE_KEY": "k"},
            ["account", "show", "--base-url", "https://api.mettl.com/v2"],
            ["--base-url", "METTL_BASE_URL", "https://api.mettl.com"],
        ),
        (
            {"METTL_PUBLIC_KEY": "p", "METTL_PRIVATE_KEY": "k", "METTL_BASE_URL": "ftp://x"},
            ["schedules", "list"],
            ["--base-url", "METTL_BASE_URL"],
        ),
    ],
    ids=["no keys", "a base URL ending in /v2", "not http"],
)
def test_configuration_errors_name_flags_and_variables_not_python_keywords(
    env: dict[str, str], argv: list[str], names: list[str]
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METTL_")}
    result = subprocess.run(
        [sys.executable, "-m", "mettl_async", *argv],
        capture_output=True, text=True, env={**clean, **env}, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE, result.stderr
    for name in names:
        assert name in result.stderr
    assert not re.search(r"\b[a-z_]+=(?!\S)|base_url|api_version|public_key", result.stderr), (
        result.stderr
    )
