"""Export formats: a third one, registered through the public registry, exports and resumes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from mettl_async import IncompleteListingError, MettlClient, RetryPolicy
from mettl_async._paging import RawRecord
from mettl_async.export import (
    FORMATS,
    ExportError,
    ExportFormat,
    ExportOptions,
    export_results,
    get_format,
    register_format,
    unregister_format,
)
from mettl_async.testing import FakeMettl, FakeMettlServer
from mettl_async.testing.data import FakeAccount

SIZES = [0, 1, 99, 100, 101, 37, 250]


class EmailsFormat(ExportFormat):
    """A toy format: ``accessKey<TAB>email`` per candidate, sorted, made at the end."""

    def encode_page(self, schedule: Mapping[str, Any], records: Sequence[RawRecord]) -> list[bytes]:
        key = schedule.get("accessKey")
        return [
            orjson.dumps({"accessKey": key, "email": record.get("email")}) + b"\n"
            for record in records
        ]

    def finish(self, partial: Path, output: Path) -> None:
        rows = [orjson.loads(line) for line in partial.read_bytes().splitlines()]
        temporary = output.with_name(output.name + ".tmp")
        temporary.write_text(
            "".join(sorted(f"{row['accessKey']}\t{row['email']}\n" for row in rows)),
            encoding="utf-8",
        )
        os.replace(temporary, output)
        partial.unlink()


@pytest.fixture
def emails_format() -> Iterator[str]:
    register_format("emails", EmailsFormat)
    try:
        yield "emails"
    finally:
        unregister_format("emails")


@pytest.fixture
async def account_server() -> Any:
    async with FakeMettlServer(FakeMettl(account=FakeAccount(SIZES, seed=5))) as server:
        yield server


def expected(fake: FakeMettl) -> list[str]:
    return sorted(
        f"{schedule.access_key}\t{record['email']}\n"
        for schedule in fake.account.schedules
        for record in fake.account.candidates(schedule)
    )


async def test_a_registered_format_exports_and_resumes(
    account_server: FakeMettlServer, emails_format: str, tmp_path: Path
) -> None:
    """The engine writes, journals, resumes and finishes a format it has never heard of."""
    fake = account_server.fake
    output = tmp_path / "all.txt"
    async with account_server.client() as client:
        summary = await export_results(client, ExportOptions(output=output, format=emails_format))
    assert output.read_text(encoding="utf-8").splitlines(keepends=True) == expected(fake)
    assert summary.records == sum(SIZES)
    assert not (tmp_path / "all.txt.partial").exists()
    assert not (tmp_path / "all.txt.checkpoint").exists()

    # Interrupted midway, then resumed: each candidate once (found again by ``identify``).
    big = next(s for s in fake.account.schedules if s.base_candidates == 250)
    fake.add_fault(
        "E503", times=1000, path=f"/schedules/{big.access_key}/candidates", params={"offset": "200"}
    )
    output = tmp_path / "resumed.txt"
    options = ExportOptions(output=output, format=emails_format)
    async with account_server.client(
        retry=RetryPolicy(attempts=2, instant=True, learn_rate=False)
    ) as client:
        with pytest.raises(IncompleteListingError):
            await export_results(client, options)
    assert not output.exists()
    checkpoint = tmp_path / "resumed.txt.checkpoint"
    assert orjson.loads(checkpoint.read_bytes().splitlines()[0])["format"] == "emails"
    fake.faults.clear()
    async with account_server.client() as client:
        summary = await export_results(client, attrs.evolve(options, mode="resume"))
    assert output.read_text(encoding="utf-8").splitlines(keepends=True) == expected(fake)
    assert 0 < summary.resumed_records < summary.records == sum(SIZES)
    assert not checkpoint.exists()


def test_the_registry_lists_formats_and_refuses_clashes(emails_format: str) -> None:
    from mettl_async.cli.entry import build_parser

    assert list(FORMATS) == ["jsonl", "csv", "emails"]
    assert isinstance(get_format("emails"), EmailsFormat)
    with pytest.raises(ValueError, match="registered already"):
        register_format("csv", EmailsFormat)
    assert type(get_format("csv")).__name__ == "CsvFormat"
    args = build_parser().parse_args(["export", "--all", "--format", "emails", "-o", "x"])
    assert args.format == "emails"


async def test_an_unknown_format_is_an_export_error_before_any_file(tmp_path: Path) -> None:
    output = tmp_path / "r.xml"
    with pytest.raises(ExportError, match="no export format is named 'xml'"):
        await export_results(MettlClient("a", "b"), ExportOptions(output=output, format="xml"))
    for name in ("r.xml", "r.xml.partial", "r.xml.checkpoint"):
        assert not (tmp_path / name).exists()
