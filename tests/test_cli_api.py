"""The command line's read and register commands, against the fake Mettl over loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from mettl_async.cli import api as _cli_api
from mettl_async.cli import entry as _cli
from mettl_async.cli.entry import main
from mettl_async.testing import FakeMettl, FakeMettlServer


@pytest.fixture
def env(server: FakeMettlServer, monkeypatch: pytest.MonkeyPatch) -> FakeMettl:
    """The fake server's keys and URL in the environment, as a user would export them."""
    monkeypatch.setenv("METTL_PUBLIC_KEY", server.public_key)
    monkeypatch.setenv("METTL_PRIVATE_KEY", server.private_key)
    monkeypatch.setenv("METTL_BASE_URL", server.base_url)
    return server.fake


async def run(*argv: str) -> int:
    """``mettl-async ARGV`` in a thread (it runs its own event loop), the server on ours."""
    return await asyncio.to_thread(main, list(argv))


def csv_file(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "candidates.csv"
    path.write_text(text, encoding=encoding)
    return path


def completed(fake: FakeMettl) -> tuple[str, str]:
    for schedule in fake.account.schedules:
        for record in fake.account.candidates(schedule):
            if record["testStatus"]["status"] == "Completed":
                return schedule.access_key, record["email"]
    raise AssertionError("no completed candidate")


def test_the_exit_codes_match_the_command_line() -> None:
    """The commands return the exit codes main() documents."""
    assert (_cli_api.EXIT_OK, _cli_api.EXIT_API) == (_cli.EXIT_OK, _cli.EXIT_API)


async def test_account_show(env: FakeMettl, capsys: pytest.CaptureFixture[str]) -> None:
    """account show prints the account's name and type; --json prints Mettl's JSON."""
    assert await run("account", "show") == 0
    out = capsys.readouterr().out
    assert "Demo Account" in out
    assert "Enterprise" in out
    assert await run("account", "show", "--json") == 0
    assert orjson.loads(capsys.readouterr().out)["name"] == "Demo Account"


async def test_assessments_list_as_a_table(
    env: FakeMettl, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table has a header and one row per assessment, newest first; the count on stderr."""
    for i in range(3):
        env.add_assessment(f"Hiring drive {i}")
    assert await run("assessments", "list") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "DURATION", "TAKEN", "NAME"]
    assert len(lines) == 1 + len(env.assessments)
    assert lines[1].endswith("Hiring drive 2")
    assert [int(line.split()[0]) for line in lines[1:]] == sorted(env.assessments, reverse=True)
    assert captured.err.strip() == f"{len(env.assessments)} assessments"


async def test_assessments_list_as_json_lines(
    env: FakeMettl, capsys: pytest.CaptureFixture[str]
) -> None:
    """--format jsonl prints each assessment exactly as Mettl sent it, one per line."""
    assert await run("assessments", "list", "--format", "jsonl", "--sort", "name") == 0
    lines = capsys.readouterr().out.splitlines()
    records = [orjson.loads(line) for line in lines]
    assert [r["id"] for r in records] == sorted(
        env.assessments, key=lambda i: env.assessment_json(i)["name"], reverse=True
    )
    assert records[0] == env.assessment_json(records[0]["id"])
    assert env.log[-1].params["sort"] == "name"


async def test_schedules_list_of_the_account_and_of_one_assessment(
    env: FakeMettl, capsys: pytest.CaptureFixture[str]
) -> None:
    """schedules list shows every schedule; --assessment-id only that assessment's."""
    assert await run("schedules", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["ACCESS", "KEY"]
    assert [line.split()[0] for line in lines[1:]] == [s.access_key for s in env.account.schedules]
    first = env.account.schedules[0]
    assert await run("schedules", "list", "--assessment-id", str(first.assessment_id)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [
        s.access_key for s in env.account.schedules if s.assessment_id == first.assessment_id
    ]
    assert env.log[-1].path == f"/assessments/{first.assessment_id}/schedules"


async def test_schedules_list_as_json_lines(
    env: FakeMettl, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each JSON line is one schedule as the fake serves it."""
    assert await run("schedules", "list", "--format", "jsonl") == 0
    records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records == [env.schedule_json(s) for s in env.account.schedules]


async def test_schedules_of_an_unknown_assessment_fail_with_one_line(
    env: FakeMettl, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown assessment is an API error: exit 1 and one line naming E404 on stderr."""
    assert await run("schedules", "list", "--assessment-id", "424242") == 1
    err = capsys.readouterr().err
    assert err.startswith("mettl-async: error: E404")


async def test_result_show(env: FakeMettl, capsys: pytest.CaptureFixture[str]) -> None:
    """result show prints the status, the score and both report links."""
    key, email = completed(env)
    assert await run("result", "show", "--access-key", key, "--email", email) == 0
    out = capsys.readouterr().out
    shown = {
        label: value.strip()
        for label, _, value in (line.partition(":") for line in out.splitlines())
        if not label.startswith(" ")
    }
    assert shown["Email"] == email
    assert shown["Status"].startswith("Completed")
    assert shown["Score"].count("/") == 1
    assert shown["PDF report"].startswith("https://reports.mettl.com/pdf/")
    assert shown["HTML report"].startswith("https://mettl.com/analytics/share-report?key=")


async def test_result_show_json(env: FakeMettl, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the candidate object as Mettl sent it; the options are sent."""
    key, email = completed(env)
    argv = ["result", "show", "--access-key", key, "--email", email, "--json"]
    assert await run(*argv, "--include-recommendation") == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["email"] == email
    assert data["testStatus"]["result"]["analysis"]["recommendation"]
    assert env.log[-1].params["ir"] == '{"recommendation":true}'


async def test_result_show_of_an_unknown_candidate(
    env: FakeMettl, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown email exits 1 with one line on stderr and nothing on stdout."""
    key = env.account.schedules[0].access_key
    code = await run("result", "show", "--access-key", key, "--email", "nobody@example.com")
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "E404" in captured.err


async def test_register_from_csv_prints_each_link_or_error(
    env: FakeMettl, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """45 rows: one line per candidate in file order, 2 errors, exit 1, a summary on stderr."""
    key = env.account.schedules[0].access_key
    rows = [f"p{i}@example.com,First {i},Last {i}" for i in range(45)]
    path = csv_file(tmp_path, "Email Address,First Name,Last Name\n" + "\n".join(rows) + "\n")
    env.fail_registration("p3@example.com", "p40@example.com")
    assert await run("candidates", "register", "--access-key", key, "--csv", str(path)) == 1
    captured = capsys.readouterr()
    lines = [line.split("\t") for line in captured.out.splitlines()]
    assert [email for email, _ in lines] == [f"p{i}@example.com" for i in range(45)]
    errors = [(email, text) for email, text in lines if text.startswith("error:")]
    assert [email for email, _ in errors] == ["p3@example.com", "p40@example.com"]
    assert all("E028" in text for _, text in errors)
    links = [text for _, text in lines if not text.startswith("error:")]
    assert len(links) == 43
    assert all(link.startswith("https://tests.mettl.com/") for link in links)
    assert captured.err.strip() == "registered 43 of 45 candidates; 2 failed"
    assert env.registration_calls == 3


async def test_register_from_an_excel_csv_with_options(
    env: FakeMettl, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A UTF-8 file with a BOM and blank cells registers; the options become parameters."""
    key = env.account.schedules[0].access_key
    path = csv_file(
        tmp_path,
        "Email Address,First Name,Last Name\r\nzoë@example.com,Zoë,\r\n\r\n",
        encoding="utf-8-sig",
    )
    argv = ["candidates", "register", "--access-key", key, "--csv", str(path)]
    assert await run(*argv, "--allow-missing-fields", "--time-limit", "600") == 0
    out = capsys.readouterr().out
    assert out.startswith("zoë@example.com\thttps://tests.mettl.com/")
    sent = env.log[-1].params
    assert orjson.loads(sent["rd"]) == {
        "registrationDetails": [{"Email Address": "zoë@example.com", "First Name": "Zoë"}]
    }
    assert sent["allowMissingMandatoryRegistrationFields"] == "true"
    assert sent["timeLimitInSec"] == "600"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Email,First Name\na@example.com,A\n", "no 'Email Address' column"),
        ("", "is empty"),
        ("Email Address,First Name\n", "no candidates"),
        ("Email Address,First Name\na@example.com,A,extra\n", "line 2: more cells"),
        ("Email Address,First Name,First Name\na@example.com,A,B\n", "'First Name' more than once"),
        (
            "Email Address,First Name\na@example.com,A\nnot-an-email,B\nc@example.com,\n",
            "line 3 (Email Address): must be a valid email address",
        ),
    ],
)
async def test_a_bad_csv_file_is_a_usage_error_and_nothing_is_sent(
    env: FakeMettl,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    message: str,
) -> None:
    """A CSV the command cannot use exits 2, says where, and sends no request."""
    path = csv_file(tmp_path, text)
    assert await run("candidates", "register", "--access-key", "k", "--csv", str(path)) == 2
    assert message in capsys.readouterr().err
    assert env.requests == 0


def test_trailing_empty_cells_are_accepted(tmp_path: Path) -> None:
    """Spreadsheets save rows with trailing empty cells; they are not extra values."""
    from mettl_async.cli.api import read_candidates_csv

    path = csv_file(tmp_path, "Email Address,First Name\na@example.com,A,,\n")
    candidates, lines = read_candidates_csv(path)
    assert candidates == [{"Email Address": "a@example.com", "First Name": "A"}]
    assert lines == [2]


async def test_a_missing_csv_file_is_a_usage_error(
    env: FakeMettl, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file that cannot be read exits 2 with its name."""
    missing = tmp_path / "nope.csv"
    assert await run("candidates", "register", "--access-key", "k", "--csv", str(missing)) == 2
    assert "nope.csv" in capsys.readouterr().err


async def test_register_into_an_unknown_schedule(
    env: FakeMettl, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """When every request fails (unknown access key) the error is reported once, exit 1."""
    path = csv_file(tmp_path, "Email Address,First Name,Last Name\na@example.com,A,B\n")
    assert await run("candidates", "register", "--access-key", "nope", "--csv", str(path)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "E404" in captured.err


async def test_wrong_keys_exit_3(
    server: FakeMettlServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A private key Mettl cannot verify is an authentication error: exit 3 with a hint."""
    monkeypatch.setenv("METTL_PUBLIC_KEY", server.public_key)
    monkeypatch.setenv("METTL_PRIVATE_KEY", "wrong")
    monkeypatch.setenv("METTL_BASE_URL", server.base_url)
    assert await run("assessments", "list") == 3
    assert "METTL_PRIVATE_KEY" in capsys.readouterr().err
