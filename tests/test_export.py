"""Bulk export: files equal the server's truth, appear only when complete, and resume exactly."""

from __future__ import annotations

import csv
import zlib
from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import pytest

from mettl_async import MettlClient
from mettl_async._paging import RawRecord
from mettl_async._timefmt import parse_timestamp
from mettl_async.export import (
    CSV_FIXED_COLUMNS,
    ExportError,
    ExportOptions,
    csv_columns,
    export_results,
    jsonl_line,
    neutralize,
)
from mettl_async.export.journal import CHECKPOINT_VERSION
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

SIZES = [0, 1, 99, 100, 101, 37, 250]


@pytest.fixture
async def account_server() -> Any:
    async with FakeMettlServer(FakeMettl(account=FakeAccount(SIZES, seed=5))) as server:
        yield server


def expected_lines(fake: FakeMettl, *, keys: set[str] | None = None) -> set[bytes]:
    """The JSONL lines an export must hold: the server's records with their schedule's identity."""
    lines = set()
    for schedule in fake.account.schedules:
        if keys is not None and schedule.access_key not in keys:
            continue
        data = fake.schedule_json(schedule)
        for record in fake.account.candidates(schedule):
            row = {
                "accessKey": schedule.access_key,
                "scheduleName": data["name"],
                "assessmentId": data["assessmentDetails"]["id"],
                **record,
            }
            lines.add(orjson.dumps(row))
    return lines


def read_lines(path: Path) -> list[bytes]:
    """Each line re-serialized, so that byte-level key order of the check is canonical."""
    return [orjson.dumps(orjson.loads(line)) for line in path.read_bytes().splitlines()]


async def test_jsonl_export_equals_the_servers_truth(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    """Every candidate of every schedule, once, with accessKey, scheduleName and assessmentId."""
    output = tmp_path / "results.jsonl"
    async with account_server.client() as client:
        summary = await export_results(client, ExportOptions(output=output))
    lines = read_lines(output)
    assert len(lines) == sum(SIZES) == summary.records
    assert set(lines) == expected_lines(account_server.fake)
    first = orjson.loads(output.read_bytes().splitlines()[0])
    assert list(first)[:3] == ["accessKey", "scheduleName", "assessmentId"]
    assert summary.schedules == len(SIZES)
    assert not (tmp_path / "results.jsonl.partial").exists()
    assert not (tmp_path / "results.jsonl.checkpoint").exists()


async def test_jsonl_lines_keep_the_records_bytes(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    """Nothing the API sent is dropped or rewritten: the record follows the schedule fields."""
    output = tmp_path / "one.jsonl"
    schedule = account_server.fake.account.schedules[2]
    async with account_server.client() as client:
        await export_results(
            client, ExportOptions(output=output, access_keys=(schedule.access_key,))
        )
    order = account_server.fake.account.candidate_order(schedule)
    sent = {
        account_server.fake.account.candidate_bytes(schedule, j, ir=False, qr=False)[1:]
        for j in order
    }
    written = {line.split(b',"email"', 1)[1] for line in output.read_bytes().splitlines()}
    assert {b'"email"' + rest for rest in written} == sent


async def test_selected_schedules_only(account_server: FakeMettlServer, tmp_path: Path) -> None:
    keys = {s.access_key for s in account_server.fake.account.schedules[3:5]}
    output = tmp_path / "some.jsonl"
    async with account_server.client() as client:
        await export_results(client, ExportOptions(output=output, access_keys=tuple(sorted(keys))))
    assert set(read_lines(output)) == expected_lines(account_server.fake, keys=keys)


async def test_csv_export_reads_back_with_every_value(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    """UTF-8 CSV with documented columns; registration fields that differ per schedule all kept."""
    output = tmp_path / "results.csv"
    async with account_server.client() as client:
        await export_results(client, ExportOptions(output=output, format="csv"))
    assert output.read_bytes().startswith(b"\xef\xbb\xbf")  # spreadsheets read the BOM as UTF-8
    with output.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    assert len(rows) == sum(SIZES)
    # (assessmentId joined the fixed columns, as in JSONL; issue 14)
    assert columns[:4] == ["accessKey", "scheduleName", "assessmentId", "email"]
    assert columns[4:7] == ["Email Address", "First Name", "Last Name"]
    by_key = {(row["accessKey"], row["email"]): row for row in rows}
    for schedule in account_server.fake.account.schedules:
        assessment_id = account_server.fake.schedule_json(schedule)["assessmentDetails"]["id"]
        for record in account_server.fake.account.candidates(schedule):
            row = by_key[(schedule.access_key, record["email"])]
            assert row["assessmentId"] == str(assessment_id)
            for label, value in record["registration"].items():
                assert row[label] == neutralize(value)
            status = record["testStatus"]
            assert row["status"] == status["status"]
            for name in ("startTime", "endTime"):
                assert row[name] == (status.get(name) or "")
                when = parse_timestamp(status.get(name))
                assert row[f"{name}Utc"] == (
                    when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else ""
                )
            result = status.get("result")
            if result:
                assert float(row["totalMarks"]) == result["totalMarks"]
                for section in result["sectionMarks"]:
                    assert float(row[f"{section['sectionName']} (marks)"]) == section["totalMarks"]
            else:
                assert row["totalMarks"] == ""


def test_csv_columns_are_stable_and_documented() -> None:
    columns = csv_columns({"SAP ID", "First Name", "Email Address", "Zeta", "status"}, {"B", "A"})
    fixed_after_email = list(CSV_FIXED_COLUMNS[4:])
    assert columns == [
        "accessKey", "scheduleName", "assessmentId", "email",
        "Email Address", "First Name", "SAP ID", "Zeta", "registration: status",
        *fixed_after_email,
        "A (marks)", "A (max marks)", "B (marks)", "B (max marks)",
    ]  # fmt: skip


def test_jsonl_line_handles_odd_records() -> None:
    schedule = {"accessKey": "k", "name": "N", "assessmentDetails": {"id": 7}}
    assert (
        jsonl_line(schedule, RawRecord(b"{}"))
        == b'{"accessKey":"k","scheduleName":"N","assessmentId":7}\n'
    )
    assert orjson.loads(jsonl_line(schedule, RawRecord(b'"x"'))) == {
        "accessKey": "k", "scheduleName": "N", "assessmentId": 7, "record": "x"
    }  # fmt: skip
    line = jsonl_line({"accessKey": "k"}, RawRecord(b'{"email":"a"}'))
    assert orjson.loads(line) == {
        "accessKey": "k",
        "scheduleName": None,
        "assessmentId": None,
        "email": "a",
    }


async def test_an_existing_output_is_refused_unless_overwritten(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    output = tmp_path / "r.jsonl"
    output.write_text("keep me")
    async with account_server.client() as client:
        with pytest.raises(ExportError, match="--overwrite"):
            await export_results(client, ExportOptions(output=output))
        assert output.read_text() == "keep me"
        assert account_server.fake.requests == 0
        await export_results(client, ExportOptions(output=output, mode="overwrite"))
    assert len(read_lines(output)) == sum(SIZES)


async def test_a_failed_export_leaves_no_file_at_the_output(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    """A run that dies midway leaves PATH absent, and the partial file for --resume."""
    from mettl_async import IncompleteListingError, RetryPolicy

    big = next(s for s in account_server.fake.account.schedules if s.base_candidates == 250)
    account_server.fake.add_fault(
        "E503", times=1000, path=f"/schedules/{big.access_key}/candidates", params={"offset": "200"}
    )
    output = tmp_path / "r.jsonl"
    async with account_server.client(
        retry=RetryPolicy(attempts=2, instant=True, learn_rate=False)
    ) as client:
        with pytest.raises(IncompleteListingError):
            await export_results(client, ExportOptions(output=output))
    assert not output.exists()
    assert (tmp_path / "r.jsonl.partial").exists()
    with pytest.raises(ExportError, match="--resume"):
        await export_results(MettlClient("a", "b"), ExportOptions(output=output))
    account_server.fake.faults.clear()
    async with account_server.client() as client:
        summary = await export_results(client, ExportOptions(output=output, mode="resume"))
    lines = read_lines(output)
    assert len(lines) == len(set(lines)) == sum(SIZES)
    assert set(lines) == expected_lines(account_server.fake)
    assert summary.resumed_records > 0


async def test_resume_of_a_torn_tail_drops_it_and_keeps_the_rest(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    """Bytes written after the last checkpoint (a torn line) are cut before continuing."""
    output = tmp_path / "r.jsonl"
    async with account_server.client() as client:
        await export_results(client, ExportOptions(output=output))
    complete = set(read_lines(output))
    # Forge an interruption: half the lines, a torn one, and a checkpoint vouching for the half.
    data = output.read_bytes().splitlines(keepends=True)
    half = b"".join(data[: len(data) // 2])
    output.unlink()
    partial = tmp_path / "r.jsonl.partial"
    partial.write_bytes(half + b'{"accessKey":"torn')
    options = ExportOptions(output=output, mode="resume")
    (tmp_path / "r.jsonl.checkpoint").write_bytes(_header(options) + _entry(half) + b'{"size":')
    async with account_server.client() as client:
        await export_results(client, options)
    lines = read_lines(output)
    assert len(lines) == len(set(lines))
    assert set(lines) == complete


async def test_resume_refuses_a_checkpoint_of_other_options(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    output = tmp_path / "r.jsonl"
    (tmp_path / "r.jsonl.partial").write_bytes(b"")
    (tmp_path / "r.jsonl.checkpoint").write_bytes(
        _header(ExportOptions(output=output, format="csv"))
    )
    async with account_server.client() as client:
        with pytest.raises(ExportError, match="format"):
            await export_results(client, ExportOptions(output=output, mode="resume"))


async def test_resume_of_a_complete_export_is_refused(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    output = tmp_path / "r.jsonl"
    output.write_text("done\n")
    async with account_server.client() as client:
        with pytest.raises(ExportError, match="nothing to resume"):
            await export_results(client, ExportOptions(output=output, mode="resume"))


def _header(options: ExportOptions) -> bytes:
    return orjson.dumps({"mettl-async-export": CHECKPOINT_VERSION, **options.identity()}) + b"\n"


def _entry(data: bytes, done: tuple[str, ...] = (), *, complete: bool = False) -> bytes:
    """A checkpoint line vouching for ``data``, the start of the data file."""
    entry: dict[str, Any] = {
        "size": len(data),
        "lines": data.count(b"\n"),
        "crc32": zlib.crc32(data),
        "done": list(done),
    }
    if complete:  # as the export writes it: every schedule in the data finished
        counts = Counter(orjson.loads(line)["accessKey"] for line in data.splitlines())
        entry.update(done=sorted(counts), complete=True, schedules=dict(counts), other=0)
    return orjson.dumps(entry) + b"\n"


async def test_resume_after_the_final_rename_finishes_cleanly(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    """Killed after the file was put in place but before the checkpoint went: nothing to redo."""
    output = tmp_path / "r.jsonl"
    async with account_server.client() as client:
        await export_results(client, ExportOptions(output=output))
    lines = read_lines(output)
    options = ExportOptions(output=output, mode="resume")
    checkpoint = tmp_path / "r.jsonl.checkpoint"
    checkpoint.write_bytes(_header(options) + _entry(output.read_bytes(), complete=True))
    requests = account_server.fake.requests
    async with account_server.client() as client:
        summary = await export_results(client, options)
    assert read_lines(output) == lines
    assert summary.records == len(lines)
    assert not checkpoint.exists()
    assert account_server.fake.requests == requests  # nothing fetched again


async def test_resume_right_after_the_checkpoint_was_created_starts_over(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    output = tmp_path / "r.jsonl"
    options = ExportOptions(output=output, mode="resume")
    (tmp_path / "r.jsonl.checkpoint").write_bytes(_header(options))
    async with account_server.client() as client:
        await export_results(client, options)
    assert set(read_lines(output)) == expected_lines(account_server.fake)


async def test_a_schedule_found_short_is_not_recorded_as_done(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    """A page failing for good fails the export; --resume walks that schedule again in full."""
    from mettl_async import IncompleteListingError

    fake = account_server.fake
    big = next(s for s in fake.account.schedules if s.base_candidates == 250)
    fake.add_fault(
        "E503", times=100, path=f"/schedules/{big.access_key}/candidates", params={"offset": "200"}
    )
    output = tmp_path / "r.jsonl"
    async with account_server.client() as client:
        with pytest.raises(IncompleteListingError):
            await export_results(
                client, ExportOptions(output=output, access_keys=(big.access_key,))
            )
    assert (
        big.access_key.encode()
        not in (tmp_path / "r.jsonl.checkpoint").read_bytes().split(b"\n", 1)[1]
    )
    fake.faults.clear()
    big.deleted.add(fake.account.candidate_order(big)[0])  # one goes between the two runs
    async with account_server.client() as client:
        await export_results(
            client, ExportOptions(output=output, access_keys=(big.access_key,), mode="resume")
        )
    lines = read_lines(output)
    assert len(lines) == len(set(lines))
    # Every candidate the server still has is there (the one deleted between the runs
    # was written by the first, and lines already written are kept).
    assert expected_lines(fake, keys={big.access_key}) <= set(lines)
    assert len(lines) == 250


def test_a_pretty_printed_record_is_written_on_one_line() -> None:
    """JSONL stays one record per line whatever whitespace Mettl sends."""
    record = RawRecord(b'{\n  "email": "a@x.com",\n  "n": [1,\r\n 2]\n}')
    line = jsonl_line({"accessKey": "k", "name": "N"}, record)
    assert line.count(b"\n") == 1
    assert line.endswith(b"\n")
    assert orjson.loads(line) == {
        "accessKey": "k", "scheduleName": "N", "assessmentId": None, "email": "a@x.com", "n": [1, 2]
    }  # fmt: skip


async def test_records_without_email_are_not_written_twice_on_resume(tmp_path: Path) -> None:
    """Records Mettl sends without an email are recognised by their line when resuming."""
    fake = FakeMettl(account=FakeAccount([120], seed=2))
    schedule = fake.account.schedules[0]
    original = fake.account.candidate_bytes

    def without_email(s: Any, j: int, *, ir: bool, qr: bool) -> bytes:
        data = orjson.loads(original(s, j, ir=ir, qr=qr))
        data.pop("email")
        return orjson.dumps(data)

    fake.account.candidate_bytes = without_email  # type: ignore[method-assign]
    output = tmp_path / "r.jsonl"
    async with FakeMettlServer(fake) as server, server.client() as client:
        await export_results(client, ExportOptions(output=output))
        complete = read_lines(output)
        # Forge an interruption after 70 of the 120 lines, the schedule not yet done.
        data = output.read_bytes().splitlines(keepends=True)
        output.unlink()
        kept = b"".join(data[:70])
        (tmp_path / "r.jsonl.partial").write_bytes(kept)
        options = ExportOptions(output=output, mode="resume")
        (tmp_path / "r.jsonl.checkpoint").write_bytes(_header(options) + _entry(kept))
        await export_results(client, options)
    lines = read_lines(output)
    assert len(lines) == 120
    assert sorted(lines) == sorted(complete)
    assert schedule.access_key


async def test_a_torn_checkpoint_line_does_not_hide_later_ones(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    from mettl_async.export import _read_journal

    options = ExportOptions(output=tmp_path / "r.jsonl")
    path = tmp_path / "c"
    path.write_bytes(
        _header(options)
        + _entry(b"x" * 9 + b"\n", ("a",))
        + b'{"size":2'
        + b"\n"
        + _entry(b"x" * 29 + b"\n", ("b",))
    )
    state = _read_journal(path, options.identity())
    assert state.size == 30
    assert state.done == {"a", "b"}


async def test_an_unwritable_output_is_a_clear_error(
    account_server: FakeMettlServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    async with account_server.client() as client:
        with pytest.raises(ExportError, match="cannot write the export"):
            await export_results(client, ExportOptions(output=blocker / "r.jsonl"))


def test_csv_keeps_sections_of_one_name_and_labels_that_look_like_section_columns() -> None:
    """Two sections named alike, or a registration label equal to a section column, lose nothing."""
    from mettl_async.export import csv_row

    record = {
        "email": "a@x.com",
        "registration": {"Maths (marks)": "a label", "Email Address": "a@x.com"},
        "testStatus": {
            "result": {
                "sectionMarks": [
                    {"sectionName": "Maths", "totalMarks": 1.0, "maxMarks": 2.0},
                    {"sectionName": "Maths", "totalMarks": 3.0, "maxMarks": 4.0},
                ]
            }
        },
    }
    row = csv_row({"accessKey": "k"}, record)
    assert row["sections"] == {"Maths": [1.0, 2.0], "Maths (2)": [3.0, 4.0]}
    columns = csv_columns(row["registration"], row["sections"])
    assert "registration: Maths (marks)" in columns
    assert columns[-4:] == [
        "Maths (marks)",
        "Maths (max marks)",
        "Maths (2) (marks)",
        "Maths (2) (max marks)",
    ]
