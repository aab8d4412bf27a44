"""The journal's guarantees, each by a test that fails when the guarantee breaks.

- A checkpoint entry is written only once the data it vouches for is fsynced: the
  order of the calls is recorded, and a power loss at each entry is replayed.
- A schedule is journalled done only on the walk's last page of it, not on a page
  that merely looks like an end (a repair round of the listing may follow).
- A completion entry says what can be checked (each finished schedule and its
  records), and a resume refuses one that disagrees with the journal or the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import zlib
from collections import Counter
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from mettl_async import IncompleteListingError, RetryPolicy
from mettl_async._walk import ScheduleWalk
from mettl_async.export import ExportError, ExportOptions, Format, export_results
from mettl_async.export import engine as export_engine
from mettl_async.export.journal import CHECKPOINT_VERSION
from mettl_async.testing import FakeMettlServer
from mettl_async.testing.data import FakeAccount

from .test_export_faults import (
    SEED,
    SIZES,
    GatedFake,
    PageGate,
    _export_process,
    _until_held,
    reference,
    until,
)
from .test_export_faults import served as served  # the fixture


def keys_of(path: Path) -> list[tuple[str, str]]:
    return [(r["accessKey"], r["email"]) for r in map(orjson.loads, path.read_bytes().splitlines())]


def entries(checkpoint: bytes) -> list[dict[str, Any]]:
    """The entries of a checkpoint (its header left out)."""
    return [orjson.loads(line) for line in checkpoint.splitlines()[1:] if line.strip()]


# -- the data is durable before the entry that vouches for it ------------------------------


class Durability:
    """Records what an fsync made durable of ``PATH.partial``, and checks every checkpoint
    entry as it is written: it may vouch only for bytes already fsynced. At each entry,
    what a power loss would leave (the data cut back to its last fsync, the checkpoint
    with the entry) is kept for a later resume."""

    def __init__(self) -> None:
        self.durable = 0  # bytes of PATH.partial an fsync made durable
        self.entries = 0
        self.late: list[tuple[int, int]] = []  # (vouched, durable) of entries written too soon
        self.snapshots: list[tuple[bytes, bytes]] = []
        self._write, self._fsync = os.write, os.fsync

    @staticmethod
    def _side(fd: int) -> str:
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return ""

    def fsync(self, fd: int) -> None:
        self._fsync(fd)
        if self._side(fd).endswith(".partial"):
            self.durable = os.fstat(fd).st_size

    def write(self, fd: int, data: Any) -> int:
        target = self._side(fd)
        written = self._write(fd, data)
        if target.endswith(".checkpoint") and b'"size"' in bytes(data):
            for line in bytes(data).splitlines():
                vouched = orjson.loads(line)["size"]
                self.entries += 1
                if vouched > self.durable:
                    self.late.append((vouched, self.durable))
            data = Path(target.removesuffix(".checkpoint") + ".partial")
            with data.open("rb") as partial:
                self.snapshots.append((partial.read(self.durable), Path(target).read_bytes()))
        return written


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_checkpoint_vouches_only_for_data_already_fsynced(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: Format
) -> None:
    monkeypatch.setattr(export_engine, "CHECKPOINT_EVERY", 0.0)  # an entry after every page
    want = await reference(served, tmp_path / f"reference.{fmt}", fmt)
    watch = Durability()
    output = tmp_path / f"out.{fmt}"
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", watch.write)
        patch.setattr(os, "fsync", watch.fsync)
        await reference(served, output, fmt)
    assert watch.entries > 8
    assert watch.late == [], "an entry vouched for bytes not yet fsynced"
    assert sorted(output.read_bytes().splitlines()) == sorted(want.read_bytes().splitlines())
    # A power loss right after any entry (un-fsynced data lost, the entry kept): the
    # resume finishes the export exactly. Replayed at a few entries along the way.
    picks = sorted({1, len(watch.snapshots) // 3, len(watch.snapshots) // 2, -2})
    async with served.client() as client:
        for pick in picks:
            data, journal = watch.snapshots[pick]
            work = tmp_path / f"loss-{pick}"
            work.mkdir()
            lost = work / f"out.{fmt}"
            (work / f"out.{fmt}.partial").write_bytes(data)
            (work / f"out.{fmt}.checkpoint").write_bytes(journal)
            await export_results(client, ExportOptions(output=lost, format=fmt, mode="resume"))
            got, expected = lost.read_bytes().splitlines(), want.read_bytes().splitlines()
            assert sorted(got) == sorted(expected), pick
            assert sorted(os.listdir(work)) == [lost.name]


# -- a schedule is done only on its last page ------------------------------------------------


class EndThenFailWalk(ScheduleWalk):
    """The real walk, but one schedule's first page comes cut short, looking like its end
    (fewer records than asked, no totals), and the walk then fails: as when the listing
    shifted and a repair round was still to come."""

    target = ""

    def pages(self, **kwargs: Any) -> AsyncGenerator[Any, None]:
        return self._cut(super().pages(**kwargs))

    async def _cut(self, pages: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        async with contextlib.aclosing(pages):
            async for key, item in pages:
                if key != self.target:
                    yield key, item
                    continue
                page = attrs.evolve(
                    item.page,
                    items=item.page.items[:30],
                    received=30,
                    total_records=None,
                    next=None,
                    paged=False,
                )
                assert page.is_end()
                assert not page.is_last
                yield key, attrs.evolve(item, page=page)
                await asyncio.sleep(0)
                raise IncompleteListingError(
                    f"{key}: the listing shifted", listing=key, offset=None
                )


async def test_a_schedule_is_done_only_on_its_last_page_not_on_a_page_that_looks_like_an_end(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_engine, "CHECKPOINT_EVERY", 0.0)
    want = await reference(served, tmp_path / "reference.jsonl")
    big = next(s for s in served.fake.account.schedules if s.base_candidates == 250)
    output = tmp_path / "out.jsonl"
    options = ExportOptions(output=output, access_keys=(big.access_key,))
    with monkeypatch.context() as patch:
        patch.setattr(EndThenFailWalk, "target", big.access_key)
        patch.setattr(export_engine, "ScheduleWalk", EndThenFailWalk)
        async with served.client() as client:
            with pytest.raises(IncompleteListingError):
                await export_results(client, options)
    checkpoint = tmp_path / "out.jsonl.checkpoint"
    journalled = entries(checkpoint.read_bytes())
    assert journalled[-1]["lines"] == 30  # the cut page was written
    assert all(big.access_key not in entry["done"] for entry in journalled)
    async with served.client() as client:
        await export_results(client, attrs.evolve(options, mode="resume"))
    got = keys_of(output)
    assert len(got) == len(set(got)) == 250
    assert set(got) == {k for k in keys_of(want) if k[0] == big.access_key}


# -- the completion entry is checked, never trusted ------------------------------------------


async def _interrupted(server: FakeMettlServer, output: Path) -> tuple[bytes, bytes]:
    """A real export stopped with a page failing for good: the files it left."""
    big = next(s for s in server.fake.account.schedules if s.base_candidates == 250)
    fault = server.fake.add_fault(
        "E503", times=1000, path=f"/schedules/{big.access_key}/candidates", params={"offset": "200"}
    )
    retry = RetryPolicy(attempts=2, instant=True, learn_rate=False)
    async with server.client(retry=retry) as client:
        with pytest.raises(IncompleteListingError):
            await export_results(client, ExportOptions(output=output))
    server.fake.faults.remove(fault)
    partial = output.with_name(output.name + ".partial").read_bytes()
    return partial, output.with_name(output.name + ".checkpoint").read_bytes()


def completion(partial: bytes, **fields: Any) -> bytes:
    """A completion entry vouching for all of ``partial`` (sizes and checksum right)."""
    entry = {
        "size": len(partial),
        "lines": partial.count(b"\n"),
        "crc32": zlib.crc32(partial),
        "done": [],
        "complete": True,
        **fields,
    }
    return orjson.dumps(entry) + b"\n"


def done_of(checkpoint: bytes) -> set[str]:
    return {key for entry in entries(checkpoint) for key in entry["done"]}


def counts_of(partial: bytes) -> Counter[str]:
    return Counter(orjson.loads(line)["accessKey"] for line in partial.splitlines())


def forgeries(partial: bytes, checkpoint: bytes) -> dict[str, tuple[bytes, str]]:
    """Completion entries appended after an interruption, each with what refuses it."""
    done, counts = done_of(checkpoint), counts_of(partial)
    unfinished = sorted(set(counts) - done)
    assert done
    assert unfinished
    finished = {key: counts[key] for key in done}
    other = partial.count(b"\n") - sum(finished.values())
    claim_all = {**finished, **{key: counts[key] for key in unfinished}}
    wrong = {**finished}
    first = sorted(wrong)[0]
    wrong[first] += 1
    return {
        "as-the-issue-forged-it": (completion(partial), "does not say which schedules"),
        "claiming-an-unfinished-schedule": (
            completion(partial, schedules=claim_all, other=0),
            "names .* finished schedules but the entries before it finished",
        ),
        "leaving-out-a-finished-schedule": (
            completion(
                partial,
                schedules={k: n for k, n in finished.items() if k != first},
                other=other + finished[first],
            ),
            "names .* finished schedules but the entries before it finished",
        ),
        "counts-that-do-not-add-up": (
            completion(partial, schedules=finished, other=other + 5),
            "counts .* records, not the",
        ),
        "a-count-the-data-disagrees-with": (
            completion(partial, schedules=wrong, other=other - 1),
            f"says schedule {first} has {finished[first] + 1} records, the file holds",
        ),
        "schedules-not-a-mapping": (
            completion(partial, schedules=sorted(done), other=other),
            "does not say which schedules",
        ),
    }


async def test_a_forged_or_wrong_completion_entry_is_refused(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    want = await reference(served, tmp_path / "reference.jsonl")
    work = tmp_path / "work"
    work.mkdir()
    output = work / "out.jsonl"
    partial_path, checkpoint_path = work / "out.jsonl.partial", work / "out.jsonl.checkpoint"
    partial, checkpoint = await _interrupted(served, output)
    async with served.client() as client:
        for name, (line, message) in forgeries(partial, checkpoint).items():
            partial_path.write_bytes(partial)
            checkpoint_path.write_bytes(checkpoint + line)
            requests = served.fake.requests
            with pytest.raises(ExportError, match=message) as caught:
                await export_results(client, ExportOptions(output=output, mode="resume"))
            text = str(caught.value)
            assert "out.jsonl.checkpoint" in text, name
            assert "--overwrite" in text, name
            assert served.fake.requests == requests, name  # refused before any request
            assert not output.exists(), name
        # without the forged line, the same files resume to the whole export
        partial_path.write_bytes(partial)
        checkpoint_path.write_bytes(checkpoint)
        await export_results(client, ExportOptions(output=output, mode="resume"))
    assert sorted(keys_of(output)) == sorted(keys_of(want))


async def test_a_completion_entry_of_other_access_keys_is_refused(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    first, second = (s.access_key for s in served.fake.account.schedules[1:3])
    output = tmp_path / "out.jsonl"
    async with served.client() as client:
        await export_results(client, ExportOptions(output=output, access_keys=(first,)))
    data = output.read_bytes()
    options = ExportOptions(output=output, access_keys=(first, second), mode="resume")
    header = {"mettl-async-export": CHECKPOINT_VERSION, **options.identity()}
    output.rename(tmp_path / "out.jsonl.partial")
    (tmp_path / "out.jsonl.checkpoint").write_bytes(
        orjson.dumps(header)
        + b"\n"
        + completion(data, done=[first], schedules={first: data.count(b"\n")}, other=0)
    )
    async with served.client() as client:
        with pytest.raises(ExportError, match=r"the export is of 2 schedules .* names 1"):
            await export_results(client, options)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_run_stopped_after_its_completion_entry_finishes_on_resume(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: Format
) -> None:
    """The completion entry the export writes passes the checks a resume makes."""
    want = await reference(served, tmp_path / f"reference.{fmt}", fmt)
    output = tmp_path / f"out.{fmt}"

    def stopped(options: ExportOptions, fmt_: Any) -> None:
        raise KeyboardInterrupt

    async with served.client() as client:
        with monkeypatch.context() as patch:
            patch.setattr(export_engine, "_finish", stopped)
            with pytest.raises(KeyboardInterrupt):
                await export_results(client, ExportOptions(output=output, format=fmt))
        last = entries(output.with_name(output.name + ".checkpoint").read_bytes())[-1]
        assert last["complete"] is True
        assert sum(last["schedules"].values()) == sum(SIZES)
        assert last["other"] == 0
        assert len(last["schedules"]) == len(SIZES)  # the empty schedule too, with 0
        requests = served.fake.requests
        summary = await export_results(
            client, ExportOptions(output=output, format=fmt, mode="resume")
        )
    assert served.fake.requests == requests  # nothing fetched again
    assert summary.records == sum(SIZES)
    assert sorted(output.read_bytes().splitlines()) == sorted(want.read_bytes().splitlines())


async def test_data_edited_during_the_export_is_not_marked_complete(
    served: FakeMettlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The completion entry is made of the data read back: a byte changed behind the
    export's back (after a checkpoint vouched for it) fails the export, not the resume."""
    monkeypatch.setattr(export_engine, "CHECKPOINT_EVERY", 0.0)
    output = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    commit = export_engine._FileSink.commit

    def commit_then_edit(sink: Any, finished: list[str]) -> None:
        commit(sink, finished)
        if sink.committed and not getattr(sink, "edited", False):
            sink.edited = True
            with partial.open("r+b") as data:
                first = data.read(1)
                data.seek(0)
                data.write(bytes([first[0] ^ 1]))

    monkeypatch.setattr(export_engine._FileSink, "commit", commit_then_edit)
    async with served.client() as client:
        with pytest.raises(ExportError, match=r"out\.jsonl\.partial changed during the export"):
            await export_results(client, ExportOptions(output=output))
    assert not output.exists()
    checkpoint = (tmp_path / "out.jsonl.checkpoint").read_bytes()
    assert all("complete" not in entry for entry in entries(checkpoint))


async def test_a_checkpoint_of_the_previous_version_is_refused(
    served: FakeMettlServer, tmp_path: Path
) -> None:
    output = tmp_path / "out.jsonl"
    partial, checkpoint = await _interrupted(served, output)
    head, _, rest = checkpoint.partition(b"\n")
    header = orjson.loads(head)
    assert header["mettl-async-export"] == CHECKPOINT_VERSION == 3
    header["mettl-async-export"] = 2
    (tmp_path / "out.jsonl.checkpoint").write_bytes(orjson.dumps(header) + b"\n" + rest)
    async with served.client() as client:
        with pytest.raises(
            ExportError, match=r"checkpoint version 2, this one reads 3.*--overwrite"
        ):
            await export_results(client, ExportOptions(output=output, mode="resume"))
    assert (tmp_path / "out.jsonl.partial").read_bytes() == partial


# -- the acceptance: a forged completion line after SIGKILL ------------------------------------


async def test_a_forged_completion_line_after_sigkill_is_refused_and_nothing_is_output(
    tmp_path: Path,
) -> None:
    gate = PageGate()
    fake = GatedFake(gate, account=FakeAccount(SIZES, seed=SEED), latency=0.02)
    async with FakeMettlServer(fake) as server:
        want = await reference(server, tmp_path / "reference.jsonl")
        output = tmp_path / "out.jsonl"
        partial_path = tmp_path / "out.jsonl.partial"
        checkpoint_path = tmp_path / "out.jsonl.checkpoint"
        # Half the pages answered, then the next one held: the export cannot finish before
        # the kill, however loaded the machine. A checkpoint after every page.
        gate.arm(sum(gate.pages.values()) // 2)
        process = await _export_process(server.base_url, output, "jsonl", checkpoint_every=0.0)
        total = want.stat().st_size

        def vouched() -> bool:
            try:
                return entries(checkpoint_path.read_bytes())[-1]["lines"] >= sum(SIZES) // 4
            except (FileNotFoundError, IndexError, orjson.JSONDecodeError):
                return False

        await _until_held(gate, process)
        await until(vouched)
        process.kill()
        await process.wait()
        gate.budget = None
        assert not output.exists()
        partial = partial_path.read_bytes()
        assert 0 < len(partial) < total
        # the forgery: the data's size, lines and checksum, marked complete
        vouched_size = entries(checkpoint_path.read_bytes())[-1]["size"]
        kept = partial[:vouched_size]
        with checkpoint_path.open("ab") as journal:
            journal.write(completion(kept))
        resumed = await _export_process(server.base_url, output, "jsonl", "--resume")
        async with asyncio.timeout(60):
            _, err = await resumed.communicate()
        assert resumed.returncode == 2, err
        assert b"out.jsonl.checkpoint" in err
        assert b"--overwrite" in err
        assert b"does not say which schedules" in err
        assert not output.exists()
        assert partial_path.read_bytes() == partial  # nothing cut, nothing written
        # without the forged line, the same command finishes the export exactly
        checkpoint_path.write_bytes(checkpoint_path.read_bytes().removesuffix(completion(kept)))
        resumed = await _export_process(server.base_url, output, "jsonl", "--resume")
        async with asyncio.timeout(60):
            _, err = await resumed.communicate()
        assert resumed.returncode == 0, err
    assert sorted(keys_of(output)) == sorted(keys_of(want))
    assert len(set(keys_of(output))) == sum(SIZES)
