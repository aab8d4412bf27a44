"""The conventions a Python user expects: keys from the environment, a helpful command line."""

from __future__ import annotations

import argparse
import asyncio
import logging

import pytest

from mettl_async import ConfigurationError, MettlClient
from mettl_async.cli.entry import build_parser, main
from mettl_async.testing import FakeMettlServer

# -- MettlClient() reads the environment --------------------------------------------------


def use_server(monkeypatch: pytest.MonkeyPatch, server: FakeMettlServer) -> None:
    monkeypatch.setenv("METTL_PUBLIC_KEY", server.public_key)
    monkeypatch.setenv("METTL_PRIVATE_KEY", server.private_key)
    monkeypatch.setenv("METTL_BASE_URL", server.base_url)


async def test_a_client_without_arguments_reads_the_environment(
    server: FakeMettlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, server)
    async with MettlClient() as mettl:
        assert mettl.base_url == server.base_url
        account = await mettl.get_account()
    assert account is not None
    assert server.fake.bad_signatures == 0


@pytest.mark.parametrize(
    ("present", "named"),
    [
        ({"METTL_PUBLIC_KEY": "pub"}, "METTL_PRIVATE_KEY is not set"),
        ({"METTL_PRIVATE_KEY": "secret"}, "METTL_PUBLIC_KEY is not set"),
        (
            {"METTL_PUBLIC_KEY": "", "METTL_PRIVATE_KEY": ""},
            "METTL_PUBLIC_KEY and METTL_PRIVATE_KEY",
        ),
        ({}, "METTL_PUBLIC_KEY and METTL_PRIVATE_KEY are not set"),
    ],
)
def test_a_missing_variable_is_named(
    present: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in present.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=named) as caught:
        MettlClient()
    assert "secret" not in str(caught.value)


def test_given_keys_win_and_the_environment_fills_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METTL_PRIVATE_KEY", "from-the-environment")
    monkeypatch.setenv("METTL_BASE_URL", "https://api.mercermettl.eu")
    client = MettlClient("public-key")
    assert client.base_url == "https://api.mercermettl.eu"
    assert MettlClient("a", "b", base_url="https://api.mettl.com").base_url == (
        "https://api.mettl.com"
    )
    with pytest.raises(ConfigurationError, match="private key is empty"):
        MettlClient("a", "")  # given, even empty, is not looked up
    monkeypatch.delenv("METTL_BASE_URL")
    assert MettlClient("a", "b").base_url == "https://api.mettl.com"


@pytest.mark.parametrize(
    ("base_url", "instead"),
    [
        ("https://api.mettl.com/v2", "'https://api.mettl.com'"),
        ("https://api.mettl.com/v1/", "'https://api.mettl.com'"),
        ("https://proxy.example.com/mettl/V3", "'https://proxy.example.com/mettl'"),
    ],
)
def test_a_base_url_ending_with_the_version_is_refused_with_the_fix(
    base_url: str, instead: str
) -> None:
    with pytest.raises(ConfigurationError, match="must not end with the API version") as caught:
        MettlClient("a", "b", base_url=base_url)
    assert f"use {instead}" in str(caught.value)


def test_a_base_url_with_another_path_is_a_proxy_prefix() -> None:
    client = MettlClient("a", "b", base_url="https://proxy.example.com/mettl/")
    assert client.url("/account") == "https://proxy.example.com/mettl/v2/account"


# -- the command line ---------------------------------------------------------------------


def every_parser() -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        found.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(f"{name} {sub_name}", sub)

    walk("mettl-async", build_parser())
    return found


def test_every_option_has_help_and_shows_its_default() -> None:
    for name, parser in every_parser():
        text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            default = action.default
            if not (default is None or default is False or default in (argparse.SUPPRESS, [])):
                assert "default" in (parser._get_formatter()._get_help_string(action) or ""), (
                    f"{name} {action.option_strings[0]}"
                )
        assert "130" in text, name  # the exit codes, Ctrl+C included
    export = build_parser().parse_args(["export", "--all", "-o", "x"])
    assert export.format is None  # taken from the extension of --output
    help_text = dict(every_parser())["mettl-async export"].format_help()
    assert "default: by the extension of PATH" in " ".join(help_text.split())
    assert "(default: 16)" in help_text
    assert "recommendation" in help_text.split("--include-recommendation\n", 1)[1][:200]


@pytest.mark.parametrize(
    "argv",
    [
        ["--debug", "export", "--all", "-o", "x"],
        ["export", "--all", "-o", "x", "--debug"],
        ["export", "--debug", "--all", "-o", "x"],
        ["webhooks", "listen", "-o", "x", "--debug"],
        ["account", "show", "--debug"],
    ],
)
def test_debug_is_accepted_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).debug is True


def test_debug_is_off_unless_asked() -> None:
    assert build_parser().parse_args(["account", "show"]).debug is False


async def test_a_base_url_with_a_path_gets_a_hint(
    server: FakeMettlServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_server(monkeypatch, server)
    argv = ["account", "show", "--base-url", f"{server.base_url}/prefix"]
    code = await asyncio.to_thread(main, argv)
    err = capsys.readouterr().err
    assert code == 1
    assert "hint: the base URL has a path (/prefix)" in err
    assert "https://api.mettl.com" in err


async def test_a_base_url_ending_with_v2_exits_2_saying_what_to_use(
    server: FakeMettlServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_server(monkeypatch, server)
    monkeypatch.setenv("METTL_BASE_URL", f"{server.base_url}/v2")
    code = await asyncio.to_thread(main, ["--debug", "account", "show"])
    assert code == 2
    assert f"use '{server.base_url}'" in capsys.readouterr().err
    logging.getLogger().handlers.clear()  # --debug configured the root logger


#: The loggers the README documents; every module logs on one of them.
DOCUMENTED_LOGGERS = {
    "mettl_async.http",
    "mettl_async.models",
    "mettl_async.webhooks",
    "mettl_async.sync",
    "mettl_async.testing",
}


def test_every_logger_is_one_the_readme_documents() -> None:
    import re
    from pathlib import Path

    import mettl_async

    package = Path(mettl_async.__file__).parent
    readme = (package.parent / "README.md").read_text(encoding="utf-8")
    for path in package.rglob("*.py"):
        for name in re.findall(r"getLogger\((.*?)\)", path.read_text(encoding="utf-8")):
            assert name.strip("\"'") in DOCUMENTED_LOGGERS, f"{path}: getLogger({name})"
    for name in DOCUMENTED_LOGGERS - {"mettl_async.testing"}:
        assert f"`{name}`" in readme, name
