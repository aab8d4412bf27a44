"""Bulk export of candidate results to JSONL or CSV: safe, resumable, flat in memory.

Records stream from the API to ``PATH.partial`` and are renamed to ``PATH``
only when the export is complete, so an interrupted run never leaves a file at
``PATH``. ``PATH.checkpoint`` is a journal: a header naming the export, then
lines recording how many bytes of ``PATH.partial`` are known good and which
schedules are complete. Data is flushed and fsynced before the checkpoint line
that vouches for it. ``--resume`` truncates ``PATH.partial`` to the last good
size, skips the complete schedules, and skips the candidates of the incomplete
ones that are already in the file, so the final file holds each candidate once.

JSONL lines are the record exactly as Mettl sent it, with ``accessKey``,
``scheduleName`` and ``assessmentId`` of its schedule put first. CSV rows are
flattened records spooled as JSON lines, turned into CSV at the end, when the
union of columns over all schedules is known.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final, Literal

import attrs
import orjson

from mettl_async._client import MettlClient
from mettl_async._errors import MettlError
from mettl_async.export.csv import _spool_to_csv, csv_row
from mettl_async.export.jsonl import _jsonl_head, _jsonl_line

__all__ = [
    "ExportError",
    "ExportOptions",
    "ExportProgress",
    "ExportSummary",
    "export_results",
]

Format = Literal["jsonl", "csv"]
Mode = Literal["new", "resume", "overwrite"]

CHECKPOINT_VERSION: Final = 1
#: Seconds between checkpoints (each costs two fsyncs).
CHECKPOINT_EVERY: Final = 0.5


class ExportError(MettlError):
    """The export cannot start or continue as asked (an existing file, a foreign checkpoint)."""


@attrs.frozen
class ExportOptions:
    """What to export, where, and how."""

    output: Path
    format: Format = "jsonl"
    access_keys: tuple[str, ...] | None = None  # None: every schedule of the account
    concurrency: int | None = None
    include_recommendation: bool = False
    include_essay_responses: bool = False
    mode: Mode = "new"

    @property
    def partial(self) -> Path:
        return self.output.with_name(self.output.name + ".partial")

    @property
    def checkpoint(self) -> Path:
        return self.output.with_name(self.output.name + ".checkpoint")

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed by these options."""
        return {
            "format": self.format,
            "access_keys": list(self.access_keys) if self.access_keys is not None else None,
            "include_recommendation": self.include_recommendation,
            "include_essay_responses": self.include_essay_responses,
        }


@attrs.define
class ExportProgress:
    """Live counters of an export, for a progress line."""

    started: float = attrs.field(factory=time.monotonic)
    schedules_total: int | None = None  # known once every schedule is listed
    schedules_done: int = 0
    schedules_skipped: int = 0  # complete in the checkpoint being resumed
    records: int = 0
    records_skipped: int = 0  # already in the file being resumed

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self) -> float | None:
        """Seconds left, from the pace of the schedules done in this run."""
        done = self.schedules_done
        if self.schedules_total is None or done == 0:
            return None
        left = self.schedules_total - self.schedules_skipped - done
        return max(0.0, self.elapsed / done * left)


@attrs.frozen
class ExportSummary:
    output: Path
    schedules: int
    records: int
    requests: int
    retries: int
    seconds: float
    resumed_records: int = 0


# -- the journal -------------------------------------------------------------------


@attrs.define
class _Journal:
    """``PATH.checkpoint``: which bytes of ``PATH.partial`` are good, which schedules done."""

    path: Path
    stream: IO[bytes]

    @classmethod
    def create(cls, path: Path, identity: Mapping[str, Any]) -> _Journal:
        stream = path.open("wb")
        header = {"mettl-async-export": CHECKPOINT_VERSION, **identity}
        stream.write(orjson.dumps(header) + b"\n")
        stream.flush()
        os.fsync(stream.fileno())
        return cls(path, stream)

    @classmethod
    def reopen(cls, path: Path) -> _Journal:
        stream = path.open("ab")
        if stream.tell() and not path.read_bytes().endswith(b"\n"):
            stream.write(b"\n")  # a line torn by the interruption stays a line of its own
        return cls(path, stream)

    def _append(self, entry: Mapping[str, Any]) -> None:
        self.stream.write(orjson.dumps(entry) + b"\n")
        self.stream.flush()
        os.fsync(self.stream.fileno())

    def commit(self, size: int, done: Sequence[str]) -> None:
        self._append({"size": size, "done": list(done)})

    def complete(self, size: int) -> None:
        """Every record is in the data file: only renaming (or CSV conversion) is left."""
        self._append({"size": size, "done": [], "complete": True})

    def close(self) -> None:
        self.stream.close()


@attrs.frozen
class _JournalState:
    size: int = 0
    done: frozenset[str] = frozenset()
    complete: bool = False
    commits: int = 0


def _read_journal(path: Path, identity: Mapping[str, Any]) -> _JournalState:
    """What a checkpoint vouches for; checks that it belongs to this export."""
    size, done, complete, commits = 0, set[str](), False, 0
    lines = path.read_bytes().split(b"\n")
    try:
        header = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("mettl-async-export") != CHECKPOINT_VERSION:
        raise ExportError(f"{path} is not a mettl-async checkpoint")
    mismatched = sorted(k for k, v in identity.items() if header.get(k) != v)
    if mismatched:
        raise ExportError(
            f"{path} belongs to an export with other options ({', '.join(mismatched)}); "
            "resume with the same options, or use --overwrite to start over"
        )
    for line in lines[1:]:
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line torn by an interruption: the lines around it stand
        if isinstance(entry, dict) and isinstance(entry.get("size"), int):
            size = entry["size"]
            done.update(str(key) for key in entry.get("done", ()))
            complete = complete or entry.get("complete") is True
            commits += 1
    return _JournalState(size, frozenset(done), complete, commits)


def _already_written(
    partial: Path, done: frozenset[str]
) -> tuple[int, frozenset[tuple[str, str]], frozenset[int]]:
    """Lines kept; ``(accessKey, email)`` of those from schedules not yet complete, and
    (for records without an email) the hashes of those lines."""
    seen: set[tuple[str, str]] = set()
    keyless: set[int] = set()
    kept = 0
    with partial.open("rb") as stream:
        for line in stream:
            kept += 1
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(row, dict):
                key, email = row.get("accessKey"), row.get("email")
                if not isinstance(key, str) or key in done:
                    continue
                if isinstance(email, str):
                    seen.add((key, email))
                else:
                    keyless.add(hash(line))
    return kept, frozenset(seen), frozenset(keyless)


# -- the export ----------------------------------------------------------------------


@attrs.frozen
class _Resume:
    """What an earlier, interrupted run left: bytes kept, schedules done, records written."""

    size: int = 0
    done: frozenset[str] = frozenset()
    kept: int = 0
    written: frozenset[tuple[str, str]] = frozenset()
    written_lines: frozenset[int] = frozenset()  # hashes of lines of records without email
    complete: bool = False  # every record was written: only the last step is left
    started: bool = False  # the files of an earlier run are there to continue


def _prepare(options: ExportOptions) -> _Resume:
    """Check what is on disk against the mode, and what a resume starts from."""
    output, partial, checkpoint = options.output, options.partial, options.checkpoint
    if options.mode == "overwrite":
        for path in (partial, checkpoint):
            path.unlink(missing_ok=True)
        return _Resume()
    if options.mode == "new":
        if output.exists():
            raise ExportError(f"{output} exists: use --overwrite to replace it")
        if partial.exists() or checkpoint.exists():
            raise ExportError(
                f"an interrupted export to {output} exists ({partial.name}): "
                "use --resume to continue it or --overwrite to start over"
            )
        return _Resume()
    # --resume
    journal = _read_journal(checkpoint, options.identity()) if checkpoint.exists() else None
    if journal is not None and journal.complete and (partial.exists() or output.exists()):
        # Stopped after the last record, before (or while) the file was put in place.
        return _Resume(size=journal.size, done=journal.done, complete=True, started=True)
    if not partial.exists() and (journal is None or journal.commits == 0):
        if output.exists():
            raise ExportError(
                f"{output} is complete: nothing to resume (use --overwrite to redo it)"
            )
        checkpoint.unlink(missing_ok=True)  # stopped before anything was written
        return _Resume()
    if journal is None:
        if partial.stat().st_size == 0:
            partial.unlink()
            return _Resume()
        raise ExportError(
            f"the interrupted export to {output} lacks its checkpoint: "
            "use --overwrite to start over"
        )
    if not partial.exists():
        raise ExportError(
            f"the interrupted export to {output} lacks its data file: use --overwrite to start over"
        )
    if partial.stat().st_size < journal.size:
        raise ExportError(
            f"{partial} is shorter than its checkpoint says ({partial.stat().st_size} < "
            f"{journal.size} bytes): it was damaged; use --overwrite to start over"
        )
    with partial.open("r+b") as stream:
        stream.truncate(journal.size)  # drop whatever came after the last good checkpoint
    kept, written, written_lines = _already_written(partial, journal.done)
    return _Resume(journal.size, journal.done, kept, written, written_lines, started=True)


def _finish(options: ExportOptions) -> None:
    """Put the complete export at its path (CSV: convert the spool), then clean up."""
    if options.partial.exists():
        if options.format == "csv":
            _spool_to_csv(options.partial, options.output)
            options.partial.unlink()
        else:
            os.replace(options.partial, options.output)
    options.checkpoint.unlink(missing_ok=True)


def _count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(1 for _ in stream)


async def export_results(
    client: MettlClient,
    options: ExportOptions,
    *,
    progress: ExportProgress | None = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportSummary:
    """Export every candidate result of the chosen schedules (see the module docstring)."""
    progress = progress if progress is not None else ExportProgress()
    requests0, retries0 = client.stats.requests, client.stats.retries
    try:
        resume = _prepare(options)
        kept = resume.kept
        if resume.complete:
            source = options.partial if options.partial.exists() else options.output
            kept = _count_lines(source) - (
                1 if source == options.output and options.format == "csv" else 0
            )
        else:
            options.output.parent.mkdir(parents=True, exist_ok=True)
            # The data file first: a checkpoint never vouches for a file that is not there.
            with options.partial.open("ab" if resume.started else "wb") as data:
                journal = (
                    _Journal.reopen(options.checkpoint)
                    if resume.started
                    else _Journal.create(options.checkpoint, options.identity())
                )
                try:
                    await _walk(client, options, data, journal, resume, progress, on_progress)
                    journal.complete(data.tell())
                finally:
                    journal.close()
        _finish(options)
    except OSError as exc:
        raise ExportError(
            f"cannot write the export to {options.output}: {exc.strerror or exc}"
        ) from exc
    return ExportSummary(
        output=options.output,
        schedules=progress.schedules_done + progress.schedules_skipped,
        records=progress.records + kept,
        requests=client.stats.requests - requests0,
        retries=client.stats.retries - retries0,
        seconds=progress.elapsed,
        resumed_records=kept,
    )


async def _walk(
    client: MettlClient,
    options: ExportOptions,
    data: IO[bytes],
    journal: _Journal,
    resume: _Resume,
    progress: ExportProgress,
    on_progress: Callable[[ExportProgress], None] | None,
) -> None:
    done, written, written_lines = resume.done, resume.written, resume.written_lines
    progress.schedules_skipped = len(done)
    listed = 0

    async def schedules() -> Any:
        nonlocal listed
        if options.access_keys is not None:
            progress.schedules_total = len(set(options.access_keys))
            for key in dict.fromkeys(options.access_keys):
                if key not in done:
                    yield key
            return
        async for schedule in client.iter_schedules().raw():
            listed += 1
            if schedule.key not in done:
                yield schedule
        progress.schedules_total = listed

    walk = client.iter_all_results(
        schedules=schedules(),
        concurrency=options.concurrency,
        include_recommendation=options.include_recommendation,
        include_essay_responses=options.include_essay_responses,
    )
    csv_format = options.format == "csv"
    finished: list[str] = []
    last_commit = last_report = time.monotonic()

    def commit() -> None:
        data.flush()
        os.fsync(data.fileno())
        journal.commit(data.tell(), finished)
        finished.clear()

    try:
        async with contextlib.aclosing(walk.raw().pages()) as pages:
            async for item in pages:
                schedule = item.schedule
                key = str(schedule.key or schedule.get("accessKey"))
                head = b"" if csv_format else _jsonl_head(schedule)
                lines = []
                for record in item.page.items:
                    if written and (key, str(record.key)) in written:
                        progress.records_skipped += 1
                        continue
                    if csv_format:
                        row = csv_row(schedule, record)
                        line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
                    else:
                        line = _jsonl_line(head, record)
                    if written_lines and record.key is None and hash(line) in written_lines:
                        progress.records_skipped += 1  # a record without email, written before
                        continue
                    lines.append(line)
                if lines:
                    data.write(b"".join(lines))  # whole lines only: a page at a time
                    progress.records += len(lines)
                if item.page.is_last:
                    finished.append(key)
                    progress.schedules_done += 1
                now = time.monotonic()
                if now - last_commit >= CHECKPOINT_EVERY:
                    commit()
                    last_commit = now
                if on_progress is not None and now - last_report >= 0.2:
                    on_progress(progress)
                    last_report = now
    finally:
        # However the walk ends (done, an error, Ctrl+C), what was written is vouched for,
        # so that --resume continues from there.
        commit()
