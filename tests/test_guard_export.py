"""Export mechanisms mutation testing found unguarded (see docs/mutation.md).

Most are the journal's checks, exercised on files written here (no server): what a
damaged or hand-written checkpoint is refused with, word for word, since that message is
all a user has to go on; what a resume keeps of the data; which leftovers a new export
may clear. The rest is the engine's, run in process against the fake server (the command
line's tests run it in a child process, which mutation testing cannot see): the outputs
refused before any request, what a failed run leaves, a resume's counters, the pacing of
checkpoints, a full disk, and streaming.
"""

from __future__ import annotations

import collections
import errno
import io
import os
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from mettl_async import AuthenticationError, IncompleteListingError, MettlClient, ServerError
from mettl_async import _walk as walk_module
from mettl_async.export import (
    ExportError,
    ExportOptions,
    ExportProgress,
    export_results,
    stream_results,
)
from mettl_async.export import engine as export_engine
from mettl_async.export import journal as journal_module
from mettl_async.export.base import get_format
from mettl_async.export.journal import (
    CHECKPOINT_VERSION,
    Journal,
    JournalState,
    prepare_resume,
    read_journal,
)
from mettl_async.testing import FakeMettlServer

from .test_export_faults import SIZES, reference
from .test_export_faults import served as served  # the fixture

OPTIONS = ExportOptions(output=Path("out.jsonl"))
IDENTITY = OPTIONS.identity()


def header(**identity: Any) -> bytes:
    return orjson.dumps({"mettl-async-export": CHECKPOINT_VERSION, **IDENTITY, **identity}) + b"\n"


def entry(size: int = 0, lines: int = 0, crc32: int = 0, done: Any = (), **more: Any) -> bytes:
    fields = {"size": size, "lines": lines, "crc32": crc32, "done": list(done), **more}
    return orjson.dumps(fields) + b"\n"


def vouching(data: bytes, done: Any = (), **more: Any) -> bytes:
    return entry(len(data), data.count(b"\n"), zlib.crc32(data), done, **more)


COMPLETE_EMPTY = entry(complete=True, schedules={}, other=0)

# (entries after the header, what the refusal says after "line N: ")
DAMAGED = {
    "not-an-object": (b"[1]\n", "line 2: an entry is JSON list, not an object;"),
    "completion-field-without-complete": (
        entry(schedules={}),
        "line 2: an entry has unknown fields (schedules);",
    ),
    "two-unknown-fields": (entry(y=1, x=2), "line 2: an entry has unknown fields (x, y);"),
    "lines-negative": (
        entry(10, -1),
        "line 2: size and lines must be whole numbers >= 0, got 10 and -1;",
    ),
    "crc-beyond-32-bits": (
        entry(crc32=2**32),
        "line 2: crc32 must be a 32-bit checksum, got 4294967296;",
    ),
    "crc-a-boolean": (entry(crc32=True), "line 2: crc32 must be a 32-bit checksum, got True;"),
    "crc-text": (entry(crc32="x"), "line 2: crc32 must be a 32-bit checksum, got 'x';"),
    "bytes-without-lines": (entry(5, 0), "line 2: 0 lines cannot fill 5 bytes;"),
    "one-byte-without-lines": (entry(1, 0), "line 2: 0 lines cannot fill 1 bytes;"),
    "done-a-string": (
        orjson.dumps({"size": 0, "lines": 0, "crc32": 0, "done": "abc"}) + b"\n",
        "line 2: done must be a list of access keys;",
    ),
    "done-an-empty-key": (entry(done=[""]), "line 2: done must be a list of access keys;"),
    "complete-false": (
        entry(complete=False, schedules={}, other=0),
        "line 2: complete must be true when present, got False;",
    ),
    "an-entry-after-completion": (
        COMPLETE_EMPTY + entry(),
        "line 3: an entry follows the one marking the export complete;",
    ),
    "size-back-lines-kept": (
        entry(10, 1) + entry(5, 1),
        "line 3: the size went back from 10 to 5 bytes;",
    ),
    "completion-other-negative": (
        entry(complete=True, schedules={}, other=-1),
        "line 2: the entry marking the export complete does not say which schedules it "
        "finished and their records (it was written by hand, or by another version);",
    ),
    "completion-count-negative": (
        entry(done=["k"]) + entry(complete=True, schedules={"k": -1}, other=1),
        "line 3: the completion entry's schedules must map access keys to record counts;",
    ),
    "completion-count-a-fraction": (
        entry(done=["k"]) + entry(complete=True, schedules={"k": 1.5}, other=0),
        "line 3: the completion entry's schedules must map access keys to record counts;",
    ),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_checkpoint_is_refused_saying_what_is_wrong(tmp_path: Path, case: str) -> None:
    lines, problem = DAMAGED[case]
    path = tmp_path / "out.jsonl.checkpoint"
    path.write_bytes(header() + lines)
    with pytest.raises(ExportError) as caught:
        read_journal(path, IDENTITY)
    text = str(caught.value)
    assert f"{path}, {problem} the checkpoint is damaged or was edited" in text
    assert text.endswith("use --overwrite to start over")


def test_the_completion_entry_names_the_schedules_it_gets_wrong(tmp_path: Path) -> None:
    finished = ["a1", "a2", "a3", "a4", "a5"]
    claimed = {"a4": 0, "a5": 0, "z1": 0, "z2": 0, "z3": 0, "z4": 0}
    path = tmp_path / "out.jsonl.checkpoint"
    path.write_bytes(
        header() + entry(done=finished) + entry(complete=True, schedules=claimed, other=0)
    )
    with pytest.raises(ExportError) as caught:
        read_journal(path, IDENTITY)
    assert (
        "line 3: the completion entry names 6 finished schedules but the entries before it "
        "finished 5 (not finished: z1, z2, z3, ...; missing: a1, a2, a3); the checkpoint"
    ) in str(caught.value)


def test_a_checkpoint_is_read_entry_by_entry_past_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.checkpoint"
    path.write_bytes(
        header()
        + entry(10, 1, 0xFFFFFFFF, ["a"])  # the largest checksum is one
        + b'{"size":2\n'  # a line torn by a kill
        + b"\n"  # a blank line (written by hand)
        + entry(30, 3, 7, ["b"])
        + entry(30, 3, 7, [])
    )
    assert read_journal(path, IDENTITY) == JournalState(30, 3, 7, frozenset({"a", "b"}), commits=3)


def test_a_checkpoint_of_other_options_or_none_at_all_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.checkpoint"
    path.write_bytes(header(format="csv", include_recommendation=True))
    with pytest.raises(ExportError) as caught:
        read_journal(path, IDENTITY)
    assert str(caught.value) == (
        f"{path} belongs to an export with other options (format, include_recommendation); "
        "resume with the same options, or use --overwrite to start over"
    )
    for text in (b"[1]\n", b"not json\n"):
        path.write_bytes(text)
        with pytest.raises(ExportError) as caught:
            read_journal(path, IDENTITY)
        assert str(caught.value) == (
            f"{path} is not a mettl-async checkpoint; use --overwrite to start over"
        )


def test_reopening_a_journal_torn_mid_line_starts_the_next_entry_on_its_own_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.jsonl.checkpoint"
    path.write_bytes(header() + entry(10, 1, 5) + b'{"size":2')  # killed mid-entry
    journal = Journal.reopen(path)
    journal.commit(20, 2, 6, ["a"])
    journal.close()
    journal.close()  # a second close does nothing
    assert read_journal(path, IDENTITY) == JournalState(20, 2, 6, frozenset({"a"}), commits=2)


def test_a_header_that_cannot_be_written_leaves_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module, "write_all", full)
    path = tmp_path / "out.jsonl.checkpoint"
    with pytest.raises(OSError, match="No space"):
        Journal.create(path, IDENTITY)
    assert not path.exists()


# -- what a resume keeps, and what a new export may clear ---------------------------------------


def _files(tmp_path: Path, partial: bytes | None, checkpoint: bytes | None) -> ExportOptions:
    options = ExportOptions(output=tmp_path / "out.jsonl")
    if partial is not None:
        options.partial.write_bytes(partial)
    if checkpoint is not None:
        options.checkpoint.write_bytes(checkpoint)
    return options


RECORD = b'{"accessKey":"k1","email":"a@example.com"}\n'


def test_resume_without_a_vouched_entry_cuts_the_data_to_nothing(tmp_path: Path) -> None:
    options = _files(tmp_path, RECORD + b'{"accessKey":"k1","em', header())
    options = ExportOptions(output=options.output, mode="resume")
    resume = prepare_resume(options, get_format("jsonl"))
    assert (resume.started, resume.size, resume.kept) == (True, 0, 0)
    assert options.partial.read_bytes() == b""


def test_resume_keeps_a_line_naming_no_schedule_and_the_records_after_it(tmp_path: Path) -> None:
    data = b"{}\n" + RECORD
    options = _files(tmp_path, data + b"torn", header() + vouching(data))
    options = ExportOptions(output=options.output, mode="resume")
    resume = prepare_resume(options, get_format("jsonl"))
    assert (resume.size, resume.kept) == (len(data), 2)
    assert resume.written == {("k1", "a@example.com")}
    assert options.partial.read_bytes() == data


MISMATCHES = {
    "shorter": (
        RECORD[:-5],
        vouching(RECORD),
        "it is shorter (38 bytes) than the 43 bytes the checkpoint vouches for;",
    ),
    "mid-record": (
        RECORD,
        entry(5, 1, zlib.crc32(RECORD[:5])),
        "byte 5 is not the end of a record;",
    ),
    "checksum": (
        RECORD,
        entry(len(RECORD), 1, 1),
        f"its first 43 bytes hold 1 records with checksum {zlib.crc32(RECORD):08x}, "
        "the checkpoint says 1 with 00000001;",
    ),
}


@pytest.mark.parametrize("case", MISMATCHES)
def test_resume_refuses_data_that_does_not_match_its_checkpoint(tmp_path: Path, case: str) -> None:
    data, vouched, problem = MISMATCHES[case]
    options = _files(tmp_path, data, header() + vouched)
    with pytest.raises(ExportError) as caught:
        prepare_resume(ExportOptions(output=options.output, mode="resume"), get_format("jsonl"))
    assert (
        f"{options.partial} does not match its checkpoint out.jsonl.checkpoint: {problem}"
    ) in str(caught.value)


NOTHING_LEFT = {  # files an earlier run left that vouch for nothing: a new export clears them
    "an-empty-data-file": (b"", None),
    "a-header-only": (None, header()),
    "a-header-and-unvouched-bytes": (RECORD, header()),
    "an-entry-of-nothing": (RECORD, header() + entry()),
}
SOMETHING_LEFT = {  # files that vouch for records or schedules: a new export refuses
    "data-without-checkpoint": (RECORD, None),
    "vouched-data": (RECORD, header() + vouching(RECORD)),
    "an-empty-schedule-done": (b"", header() + entry(done=["k0"])),
    "a-complete-export-of-nothing": (b"", header() + COMPLETE_EMPTY),
    "a-damaged-checkpoint": (RECORD, header() + b'{"size":"x"}\n'),
}


@pytest.mark.parametrize("case", NOTHING_LEFT)
def test_a_new_export_clears_leftovers_that_vouch_for_nothing(tmp_path: Path, case: str) -> None:
    options = _files(tmp_path, *NOTHING_LEFT[case])
    assert prepare_resume(options, get_format("jsonl")).started is False
    assert not options.partial.exists()
    assert not options.checkpoint.exists()


@pytest.mark.parametrize("case", SOMETHING_LEFT)
def test_a_new_export_refuses_leftovers_that_vouch_for_something(tmp_path: Path, case: str) -> None:
    partial, checkpoint = SOMETHING_LEFT[case]
    options = _files(tmp_path, partial, checkpoint)
    with pytest.raises(ExportError) as caught:
        prepare_resume(options, get_format("jsonl"))
    assert str(caught.value) == (
        f"an interrupted export to {options.output} exists (out.jsonl.partial): "
        "use --resume to continue it or --overwrite to start over"
    )
    assert (options.partial.exists(), options.checkpoint.exists()) == (
        partial is not None,
        checkpoint is not None,
    )


def test_a_new_export_refuses_a_directory_at_a_side_file(tmp_path: Path) -> None:
    options = _files(tmp_path, None, header())
    options.partial.mkdir()
    with pytest.raises(ExportError, match=r"an interrupted export to .* exists"):
        prepare_resume(options, get_format("jsonl"))
    assert options.partial.is_dir()


# -- the export's options reach the requests --------------------------------------------------


async def test_the_exports_options_reach_every_page_request(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    await reference(served, tmp_path / "plain.jsonl")
    served.fake.stats.log.clear()
    options = ExportOptions(
        output=tmp_path / "out.jsonl", include_recommendation=True, include_essay_responses=True
    )
    async with served.client() as client:
        summary = await export_results(client, options)
    pages = [r for r in served.fake.stats.log if r.path.endswith("/candidates")]
    assert pages
    for request in pages:
        assert request.params.get("ir") == '{"recommendation":true}', request.params
        assert request.params.get("qr") == "true", request.params
    assert summary.records == sum(SIZES)


# -- the engine, in process: paths, what a failed run leaves, resume counters, streaming ---------


def _names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


async def _refusal(served: FakeMettlServer, output: Path) -> str:
    """The refusal of an export to ``output``, checked to come before any request."""
    async with served.client() as client:
        with pytest.raises(ExportError) as caught:
            await export_results(client, ExportOptions(output=output))
    assert served.fake.requests == 0
    return str(caught.value)


@pytest.mark.parametrize("name", ["", "..", "-"])
async def test_an_output_that_is_no_file_name_is_refused(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    output = Path(name)
    assert await _refusal(served, output) == (
        f"cannot write the export to {output}: not a file name"
    )
    assert _names(tmp_path) == []


async def test_an_output_whose_directory_is_missing_or_a_file_is_refused(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    missing = tmp_path / "no" / "r.jsonl"
    assert await _refusal(served, missing) == (
        f"cannot write the export to {missing}: the directory {missing.parent} does not exist "
        "(create it first)"
    )
    (tmp_path / "file").write_text("x")
    under_a_file = tmp_path / "file" / "r.jsonl"
    assert await _refusal(served, under_a_file) == (
        f"cannot write the export to {under_a_file}: the directory {under_a_file.parent} "
        "is not a directory (create it first)"
    )
    assert _names(tmp_path) == ["file"]


async def test_an_output_that_is_a_directory_is_refused(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    assert await _refusal(served, tmp_path / "d") == (
        f"cannot write the export to {tmp_path / 'd'}: it is a directory (name a file in it)"
    )
    assert _names(tmp_path) == ["d"]
    assert _names(tmp_path / "d") == []


async def test_a_directory_without_write_permission_is_refused(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(The tests may run as root, whom a mode does not stop: the check is made to say no.)"""
    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if Path(path) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    output = locked / "r.jsonl"
    assert await _refusal(served, output) == (
        f"cannot write the export to {output}: no permission to create files in {locked}"
    )
    assert _names(locked) == []


async def test_a_run_failing_before_it_writes_leaves_nothing_and_is_not_resumable(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    """A wrong key fails the first request: no file is left, and nothing is there to resume."""
    progress = ExportProgress()
    output = tmp_path / "r.jsonl"
    wrong = MettlClient(served.public_key, "wrong", base_url=served.base_url)
    async with wrong as client:
        with pytest.raises(AuthenticationError):
            await export_results(client, ExportOptions(output=output), progress=progress)
    assert progress.resumable is False
    assert _names(tmp_path) == []


async def test_a_data_file_that_cannot_be_created_leaves_no_checkpoint(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, *, append: bool = False) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_engine, "create_new", full)
    output = tmp_path / "r.jsonl"
    progress = ExportProgress()
    async with served.client() as client:
        with pytest.raises(ExportError) as caught:
            await export_results(client, ExportOptions(output=output), progress=progress)
    assert str(caught.value) == f"cannot write the export to {output}: No space left on device"
    assert served.fake.requests == 0
    assert progress.resumable is False
    assert _names(tmp_path) == []


async def test_a_run_failing_after_an_empty_schedule_keeps_it_done(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    """The checkpoint of a run that wrote no record but finished a schedule is kept, and
    --resume does not ask for that schedule again."""
    fake = served.fake
    empty, other = fake.account.schedules[0], fake.account.schedules[1]
    assert (empty.base_candidates, other.base_candidates) == (0, 40)
    keys = (empty.access_key, other.access_key)
    fake.add_fault("E503", times=1000, path=f"/schedules/{other.access_key}/candidates")
    output = tmp_path / "r.jsonl"
    progress = ExportProgress()
    async with served.client() as client:
        with pytest.raises(ServerError):
            await export_results(
                client,
                ExportOptions(output=output, access_keys=keys, concurrency=1),
                progress=progress,
            )
    assert progress.resumable is True
    options = ExportOptions(output=output, access_keys=keys, mode="resume")
    assert options.partial.read_bytes() == b""
    assert read_journal(options.checkpoint, options.identity()).done == {empty.access_key}
    fake.faults.clear()
    fake.stats.log.clear()
    async with served.client() as client:
        summary = await export_results(client, options)
    assert fake.stats.log
    assert not [r.path for r in fake.stats.log if empty.access_key in r.path]
    assert (summary.schedules, summary.records) == (2, 40)


async def test_a_resume_counts_the_records_it_finds_already_written(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    complete = await reference(served, tmp_path / "complete.jsonl")
    lines = complete.read_bytes().splitlines(keepends=True)
    kept = b"".join(lines[:100])
    options = _files(tmp_path, kept + b'{"accessKey":"torn', header() + vouching(kept))
    progress = ExportProgress()
    async with served.client() as client:
        summary = await export_results(
            client, ExportOptions(output=options.output, mode="resume"), progress=progress
        )
    # no schedule was done: every kept record is found again on its page, and skipped
    assert (progress.records_kept, progress.records_skipped) == (100, 100)
    assert progress.records == sum(SIZES) - 100
    assert (summary.records, summary.resumed_records) == (sum(SIZES), 100)
    assert sorted(options.output.read_bytes().splitlines()) == sorted(
        complete.read_bytes().splitlines()
    )


async def test_a_concurrency_of_one_walks_one_schedule_at_a_time(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    served.fake.config.latency = 0.01  # answers that take a while: requests could overlap
    in_flight: collections.Counter[str] = collections.Counter()  # page requests per schedule
    most = 0

    async def started(session: Any, context: Any, params: Any) -> None:
        nonlocal most
        if params.url.path.endswith("/candidates"):
            in_flight[params.url.path] += 1
            most = max(most, len(+in_flight))

    async def ended(session: Any, context: Any, params: Any) -> None:
        if params.url.path.endswith("/candidates"):
            in_flight[params.url.path] -= 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(ended)
    output = tmp_path / "r.jsonl"
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        served.client(session=session) as client,
    ):
        summary = await export_results(client, ExportOptions(output=output, concurrency=1))
    assert summary.records == sum(SIZES)
    assert (most, +in_flight) == (1, collections.Counter())


async def test_the_callers_progress_is_the_one_kept_and_reported(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walk_module, "REPORT_EVERY", 0)  # report after every page
    progress = ExportProgress()
    reported: list[tuple[int, int]] = []

    def on_progress(seen: ExportProgress) -> None:
        assert seen is progress
        reported.append((seen.records, seen.schedules_done))

    async with served.client() as client:
        summary = await export_results(
            client,
            ExportOptions(output=tmp_path / "r.jsonl"),
            progress=progress,
            on_progress=on_progress,
        )
    assert (progress.records, progress.schedules_done) == (sum(SIZES), len(SIZES))
    assert (summary.records, summary.schedules) == (sum(SIZES), len(SIZES))
    assert reported[-1] == (sum(SIZES), len(SIZES))
    assert reported == sorted(reported)


async def test_data_edited_during_the_export_is_not_made_the_output(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walk_module, "REPORT_EVERY", 0)
    options = ExportOptions(output=tmp_path / "r.jsonl")

    def edit(progress: ExportProgress) -> None:
        if progress.records and options.partial.read_bytes()[:1] == b"{":
            with options.partial.open("r+b") as file:
                file.write(b"[")  # the first byte of the first record, by another hand

    async with served.client() as client:
        with pytest.raises(ExportError) as caught:
            await export_results(client, options, on_progress=edit)
    size = options.partial.stat().st_size
    assert str(caught.value) == (
        f"{options.partial} changed during the export: its first {size} bytes are not the "
        f"{sum(SIZES)} records written (was it edited?); use --overwrite to start over"
    )
    assert not options.output.exists()


class _Pipe(io.BytesIO):
    """A stream that notes how much was written at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[int] = []

    def flush(self) -> None:
        self.flushed.append(len(self.getvalue()))


async def test_a_stream_holds_the_records_of_a_file_export_flushed_page_by_page(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    complete = await reference(served, tmp_path / "complete.jsonl")
    served.fake.stats.log.clear()
    before = served.fake.requests
    stream = _Pipe()
    async with served.client() as client:
        summary = await stream_results(client, ExportOptions(output=Path("-")), stream)
    data = stream.getvalue()
    assert sorted(data.splitlines()) == sorted(complete.read_bytes().splitlines())
    pages = [r for r in served.fake.stats.log if r.path.endswith("/candidates")]
    # each page with records is flushed whole as it comes (an empty one writes nothing)
    assert stream.flushed == sorted(set(stream.flushed))
    assert stream.flushed[-1] == len(data)
    assert len(pages) - 1 <= len(stream.flushed) <= len(pages)
    assert (summary.schedules, summary.records) == (len(SIZES), sum(SIZES))
    assert summary.requests == served.fake.requests - before
    assert _names(tmp_path) == ["complete.jsonl"]


async def test_a_stream_refuses_a_format_made_at_the_end_and_a_resume(
    served: FakeMettlServer,
) -> None:
    async with served.client() as client:
        with pytest.raises(ExportError) as caught:
            await stream_results(client, ExportOptions(output=Path("-"), format="csv"), _Pipe())
        assert str(caught.value) == (
            "the csv format cannot be streamed: it is made whole at the end (write it to a file)"
        )
        with pytest.raises(ExportError) as caught:
            await stream_results(client, ExportOptions(output=Path("-"), mode="resume"), _Pipe())
        assert str(caught.value) == "a stream cannot be resumed: run the export again"
    assert served.fake.requests == 0


class _Clock:
    """The engine's clock, standing still or stepping a checkpoint's interval per reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 1000.0, step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now


async def _failing_at_offset_200(served: FakeMettlServer, output: Path) -> JournalState:
    """A run that stops at the 250-record schedule's third page, having walked the schedules
    before it one at a time; its checkpoint, read."""
    big = next(s for s in served.fake.account.schedules if s.base_candidates == 250)
    served.fake.add_fault(
        "E503", times=1000, path=f"/schedules/{big.access_key}/candidates", params={"offset": "200"}
    )
    async with served.client() as client:
        with pytest.raises(IncompleteListingError):
            await export_results(client, ExportOptions(output=output, concurrency=1))
    served.fake.faults.clear()
    return read_journal(ExportOptions(output=output).checkpoint, IDENTITY)


async def test_checkpoints_are_paced_not_one_per_page(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each checkpoint costs two fsyncs: within CHECKPOINT_EVERY, only the last is made."""
    monkeypatch.setattr(export_engine, "time", _Clock(0.0))
    still = await _failing_at_offset_200(served, tmp_path / "still.jsonl")
    assert still.commits == 1  # the one made as the run stopped
    monkeypatch.setattr(export_engine, "time", _Clock(export_engine.CHECKPOINT_EVERY))
    paced = await _failing_at_offset_200(served, tmp_path / "paced.jsonl")
    assert paced.commits > 5  # a page at a time
    assert still.size == paced.size > 0  # as much written and vouched for either way


async def test_a_full_disk_names_the_cause_and_the_last_checkpoint_stands(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills as the third page's checkpoint is written, and the checkpoint tried
    as the run stops fails too: the error is the disk's, and --resume continues from the
    second page's checkpoint."""
    complete = await reference(served, tmp_path / "complete.jsonl")
    monkeypatch.setattr(export_engine, "time", _Clock(export_engine.CHECKPOINT_EVERY))
    real_write_all = export_engine.write_all
    pages: list[int] = []

    def data_write(fd: int, data: bytes) -> None:
        real_write_all(fd, data)
        pages.append(len(data))

    def checkpoint_write(fd: int, data: bytes) -> None:
        if len(pages) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, data)

    monkeypatch.setattr(export_engine, "write_all", data_write)
    monkeypatch.setattr(journal_module, "write_all", checkpoint_write)
    output = tmp_path / "r.jsonl"
    async with served.client() as client:
        with pytest.raises(ExportError) as caught:
            await export_results(client, ExportOptions(output=output))
    assert str(caught.value) == f"cannot write the export to {output}: No space left on device"
    state = read_journal(ExportOptions(output=output).checkpoint, IDENTITY)
    assert state.size == sum(pages[:2])
    monkeypatch.undo()
    async with served.client() as client:
        summary = await export_results(client, ExportOptions(output=output, mode="resume"))
    assert summary.resumed_records == state.lines
    assert sorted(output.read_bytes().splitlines()) == sorted(complete.read_bytes().splitlines())
