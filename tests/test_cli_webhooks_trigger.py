"""``mettl-async webhooks trigger``: one realistic event POSTed as Mettl does, in a real process."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import orjson
import pytest
from aiohttp import web

from mettl_async import FinishTestEvent, GradedAssessmentEvent, webhooks
from mettl_async.cli.entry import main

from .listener import listening, stop
from .loopback import serving

USER, PASSWORD = "hook-user", "hook:pass"


async def trigger_process(*argv: str) -> tuple[int, str, str]:
    """``python -m mettl_async webhooks trigger ARGV`` as a process: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mettl_async",
        "webhooks",
        "trigger",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def trigger(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The same, in this process (its own event loop, in a thread, while this one serves)."""
    code = await asyncio.to_thread(main, ["webhooks", "trigger", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@attrs.define
class Recorder:
    """A tiny server that records each request's headers and body, and answers ``status``."""

    url: str = ""
    status: int = 200
    requests: list[tuple[dict[str, str], bytes]] = attrs.Factory(list)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    recorded = Recorder()

    async def record(request: web.Request) -> web.Response:
        recorded.requests.append((dict(request.headers), await request.read()))
        return web.json_response({"seen": True}, status=recorded.status)

    app = web.Application()
    app.router.add_post("/hook", record)
    async with serving(app) as url:
        recorded.url = url + "/hook"
        yield recorded


async def test_trigger_finish_sends_one_finish_test_with_both_auth_forms(
    recorder: Recorder,
) -> None:
    """The acceptance: one finishTest that parse_event accepts, with Authorization: Basic
    and the php-auth-user/php-auth-pw pair."""
    code, out, err = await trigger_process(
        "finish", "--to", recorder.url, "--username", USER, "--password", PASSWORD
    )
    assert code == 0, err
    assert out.splitlines() == ["HTTP 200", '{"seen": true}']
    (headers, body), *others = recorder.requests
    assert others == []
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert headers["Authorization"] == f"Basic {token}"
    assert headers["php-auth-user"] == USER
    assert headers["php-auth-pw"] == PASSWORD
    assert headers["Content-Type"] == "application/json"
    assert webhooks.verify_basic_auth(headers, USER, PASSWORD)
    event = webhooks.parse_event(body)
    assert isinstance(event, FinishTestEvent)
    assert event.finish_mode == "NormalSubmission"
    assert event.timestamp_gmt is not None  # stamped now
    assert PASSWORD not in out + err


async def test_trigger_names_the_schedule_and_candidate(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await trigger(
        capsys, "graded", "--to", recorder.url, "--access-key", "k3y", "--email", "ana@example.com"
    )
    assert code == 0, err
    (headers, body) = recorder.requests[0]
    assert "Authorization" not in headers  # no credentials given: none sent
    assert "php-auth-user" not in headers
    event = webhooks.parse_event(body)
    assert isinstance(event, GradedAssessmentEvent)
    assert (event.invitation_key, event.email) == ("k3y", "ana@example.com")
    assert event.registration_details == {
        "Email Address": "ana@example.com",
        "First Name": "Ada",
        "Last Name": "Lovelace",
    }


async def test_trigger_exits_1_on_an_answer_other_than_2xx(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder.status = 503
    code, out, _ = await trigger(capsys, "start", "--to", recorder.url)
    assert code == 1
    assert out.splitlines()[0] == "HTTP 503"
    assert len(recorder.requests) == 1  # sent once, not retried


async def test_trigger_exits_4_when_no_answer_comes(
    refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await trigger(capsys, "resumed", "--to", refused_url + "/")
    assert code == 4
    assert out == ""
    assert f"no answer from {refused_url}/" in err


async def test_trigger_takes_the_listeners_credentials_variable(
    recorder: Recorder, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METTL_WEBHOOK_BASIC_AUTH", f"{USER}:{PASSWORD}")
    code, _, err = await trigger(capsys, "start", "--to", recorder.url)
    assert code == 0, err
    headers = recorder.requests[0][0]
    assert (headers["php-auth-user"], headers["php-auth-pw"]) == (USER, PASSWORD)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--username", USER], "give --username and --password together"),
        (["--password", PASSWORD], "give --username and --password together"),
        (["--username", "a:b", "--password", "p"], "cannot contain ':'"),
    ],
    ids=["no-password", "no-username", "colon"],
)
def test_trigger_refuses_half_credentials(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["webhooks", "trigger", "finish", "--to", "http://127.0.0.1:9/", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err
    assert PASSWORD not in err


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/", "http://u:p@example.com/"])
def test_trigger_refuses_a_url_it_cannot_post_to(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["webhooks", "trigger", "start", "--to", url]) == 2
    assert "--to:" in capsys.readouterr().err


async def test_each_triggered_event_is_stored_by_webhooks_listen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """trigger -> listen: the four events, authenticated, each one line of the capture;
    wrong credentials are refused (exit 1) and stored nowhere."""
    output = tmp_path / "events.jsonl"
    async with listening(output, "--basic-auth", f"{USER}:{PASSWORD}") as (process, url, _):
        for kind in ("start", "finish", "graded", "resumed"):
            code, out, err = await trigger(
                capsys,
                kind,
                "--to",
                f"{url}{kind}",
                "--username",
                USER,
                "--password",
                PASSWORD,
                "--access-key",
                "tiwao88y00",
                "--email",
                f"{kind}@example.com",
            )
            assert code == 0, err
            assert out.splitlines() == ["HTTP 200", '{"status":"delivered"}']
        code, out, _ = await trigger(
            capsys, "finish", "--to", url, "--username", USER, "--password", "wrong"
        )
        assert code == 1
        assert out.startswith("HTTP 401")
        code, stderr = await stop(process, 15)
    assert code == 0, stderr
    lines = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert [line["event_type"] for line in lines] == [
        "startAssessment",
        "finishTest",
        "gradedAssessment",
        "candidateTestResumed",
    ]
    for line, kind in zip(lines, ("start", "finish", "graded", "resumed"), strict=True):
        assert line["payload"]["email"] == f"{kind}@example.com"
        assert line["payload"]["invitation_key"] == "tiwao88y00"
        webhooks.parse_event(line["payload"])
