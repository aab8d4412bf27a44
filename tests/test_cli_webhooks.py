"""``mettl-async webhooks listen``: a real process capturing webhook calls to JSONL."""

from __future__ import annotations

import base64
import re
import signal
from pathlib import Path

import aiohttp
import orjson
import pytest

from mettl_async.cli.entry import main
from mettl_async.cli.webhooks import BASIC_AUTH_ENV

from .conftest import HERE
from .listener import listening, stop

SAMPLES = HERE / "samples"
USER, PASSWORD = "hook-user", "hook:pass"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_listen_writes_one_line_per_accepted_event_and_stops_cleanly(
    tmp_path: Path, sig: int
) -> None:
    """A POSTed webhook becomes one JSON line with its payload; a signal stops with exit 0."""
    output = tmp_path / "events.jsonl"
    graded = (SAMPLES / "article13_webhook_graded_assessment.json").read_bytes()
    async with (
        listening(output, "--basic-auth", f"{USER}:{PASSWORD}") as (process, url, banner),
        aiohttp.ClientSession() as http,
    ):
        assert url.startswith("http://127.0.0.1:")
        assert re.search(rf"testGradedNotificationUrl +{re.escape(url)}graded\n", banner)
        assert PASSWORD not in banner
        for headers, expected in ((AUTH, 200), ({}, 401), (AUTH, 200)):
            async with http.post(url + "graded", data=graded, headers=headers) as response:
                assert response.status == expected
        async with http.post(url, data=b"{broken", headers=AUTH) as response:
            assert response.status == 400
        code, stderr = await stop(process, sig)
    assert code == 0
    assert "1 event written" in stderr
    assert "1 duplicate, 2 refused" in stderr
    (line,) = output.read_bytes().splitlines()
    record = orjson.loads(line)
    assert record["event_type"] == "gradedAssessment"
    # the key names the event's timestamp too (a later event of the candidate is new)
    assert record["key"] == "gradedAssessment:99999999:0x0x0x0x0x:Fri, 29 Oct 2021 09%3A27%3A01 GMT"
    assert record["payload"] == orjson.loads(graded)
    assert record["received_at"].endswith("+00:00")


async def test_listen_appends_and_takes_credentials_from_the_environment(tmp_path: Path) -> None:
    """The output file is appended to, and METTL_WEBHOOK_BASIC_AUTH stands in for the flag."""
    output = tmp_path / "events.jsonl"
    output.write_bytes(b'{"earlier": true}\n')
    start = (SAMPLES / "article13_webhook_start_assessment.json").read_bytes()
    async with (
        listening(
            output,
            "--keep-duplicates",
            "--path",
            "/mettl",
            "--public-url",
            "https://abc.tunnel.example/",
            env={BASIC_AUTH_ENV: f"{USER}:{PASSWORD}"},
        ) as (process, url, banner),
        aiohttp.ClientSession() as http,
    ):
        assert url.endswith("/mettl")
        assert "https://abc.tunnel.example/mettl/start" in banner
        for _ in range(2):
            async with http.post(url, data=start, headers=AUTH) as response:
                assert response.status == 200
        async with http.post(url, data=start) as response:
            assert response.status == 401
        code, _ = await stop(process, signal.SIGTERM)
    assert code == 0
    lines = output.read_bytes().splitlines()
    assert len(lines) == 3
    assert lines[0] == b'{"earlier": true}'
    assert orjson.loads(lines[2])["event_type"] == "startAssessment"


@pytest.mark.parametrize(
    "argv",
    [
        ["--basic-auth", "no-colon"],
        ["--basic-auth", ":only-password"],
        ["--basic-auth", "user:"],
        ["--path", "no-slash"],
        ["--public-url", "ftp://x.example/"],
    ],
    ids=["no-colon", "no-user", "no-password", "path", "public-url"],
)
def test_listen_refuses_bad_options_with_exit_code_2(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Unusable credentials, path or public URL stop the command before it listens."""
    code = main(["webhooks", "listen", "--port", "0", "--output", str(tmp_path / "e"), *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("mettl-async: error:")
    assert "only-password" not in err


def test_listen_refuses_an_output_in_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output path whose directory does not exist is a usage error, found up front."""
    code = main(["webhooks", "listen", "--output", str(tmp_path / "missing" / "events.jsonl")])
    assert code == 2
    assert "no directory" in capsys.readouterr().err


def test_listen_needs_an_output(capsys: pytest.CaptureFixture[str]) -> None:
    """--output or --database is required: a capture going nowhere would be lost."""
    assert main(["webhooks", "listen"]) == 2
    err = capsys.readouterr().err
    assert "--output" in err
    assert "--database" in err
