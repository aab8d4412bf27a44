"""The export: the pages of the schedule walk (:mod:`mettl_async._walk`, which the
sync walks too), written through an :class:`ExportFormat`.

Records stream from the API to ``PATH.partial`` and are renamed (or converted)
to ``PATH`` only when the export is complete, so an interrupted run never
leaves a file at ``PATH``. ``PATH.checkpoint`` vouches for what
``PATH.partial`` holds (see :mod:`mettl_async.export.journal`), so that
``--resume`` continues where a run stopped. Which bytes a record becomes, and
what ``PATH`` is made of them, is the format's (see
:mod:`mettl_async.export.base`); nothing here knows one format from another.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final, Protocol

import attrs

from mettl_async._client import MettlClient
from mettl_async._tracing import traced_run
from mettl_async._walk import ScheduleWalk, WalkProgress
from mettl_async.export.base import ExportError, ExportFormat, get_format
from mettl_async.export.files import (
    ExportLock,
    create_new,
    fsync_directory,
    lexists,
    open_existing,
    remove,
    write_all,
)
from mettl_async.export.journal import Journal, Resume, prepare_resume, tally_data
from mettl_async.export.options import ExportOptions
from mettl_async.export.options import Mode as Mode

__all__ = [
    "ExportError",
    "ExportOptions",
    "ExportProgress",
    "ExportSummary",
    "export_results",
    "stream_results",
]

#: Seconds between checkpoints (each costs two fsyncs).
CHECKPOINT_EVERY: Final = 0.5

#: The progress of an export: the walk's (the sync shares it), under its earlier name.
ExportProgress = WalkProgress


@attrs.frozen
class ExportSummary:
    output: Path
    schedules: int
    records: int
    requests: int
    retries: int
    seconds: float
    resumed_records: int = 0


# -- the export ----------------------------------------------------------------------


def _check_paths(options: ExportOptions) -> None:
    """Refuse an output that cannot be written, before any file is touched or request sent."""
    output = options.output
    if output.name in ("", "..") or str(output) == "-":  # (a path never ends in a "." name)
        raise ExportError(f"cannot write the export to {output}: not a file name")
    parent = output.parent
    if not parent.is_dir():
        what = "is not a directory" if lexists(parent) else "does not exist"
        raise ExportError(
            f"cannot write the export to {output}: the directory {parent} {what} (create it first)"
        )
    try:
        info = os.lstat(output)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise ExportError(
            f"cannot write the export to {output}: it is a directory (name a file in it)"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(
            f"cannot write the export to {output}: no permission to create files in {parent}"
        )


class _DataFile:
    """``PATH.partial`` open for appending: what it holds, whole records only."""

    def __init__(self, fd: int, size: int, lines: int, crc: int) -> None:
        self.fd = fd
        self.size = size  # bytes of whole records written (what a checkpoint may vouch for)
        self.lines = lines
        self.crc = crc

    @classmethod
    def open(cls, path: Path, resume: Resume) -> _DataFile:
        if resume.started:  # (``prepare_resume`` found the file, or raised)
            fd = open_existing(path, os.O_WRONLY | os.O_APPEND)
        else:
            fd = create_new(path, append=True)
        return cls(fd, resume.size, resume.lines, resume.crc)

    def append(self, lines: list[bytes]) -> None:
        # A write cut short (a full disk) raises and ends the run with ``size`` not
        # counting it: no checkpoint vouches for the part of a record it left, and a
        # resume cuts the file back to the last checkpoint.
        blob = b"".join(lines)
        write_all(self.fd, blob)
        self.size += len(blob)
        self.lines += blob.count(b"\n")  # as a resume counts them
        self.crc = zlib.crc32(blob, self.crc)

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class _Sink(Protocol):
    def append(self, lines: list[bytes]) -> None: ...

    def commit(self, finished: list[str]) -> None: ...


class _FileSink:
    """Lines to ``PATH.partial``; commits to ``PATH.checkpoint`` vouch for what is synced."""

    def __init__(self, data: _DataFile, journal: Journal, done: frozenset[str]) -> None:
        self.data = data
        self.journal = journal
        self.committed = data.size
        self.finished = set(done)  # every schedule the journal names done

    def append(self, lines: list[bytes]) -> None:
        self.data.append(lines)

    def commit(self, finished: list[str]) -> None:
        data = self.data
        if data.size == self.committed and not finished:
            return  # nothing new to vouch for
        data.sync()  # the data first: a checkpoint never vouches for bytes not on disk
        self.journal.commit(data.size, data.lines, data.crc, finished)
        self.committed = data.size
        self.finished.update(finished)


class _StreamSink:
    """Lines to a stream (standard output), flushed a page at a time; nothing to resume."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def append(self, lines: list[bytes]) -> None:
        self.stream.write(b"".join(lines))
        self.stream.flush()

    def commit(self, finished: list[str]) -> None:
        return None


def _finish(options: ExportOptions, fmt: ExportFormat) -> None:
    """Put the complete export at its path (the format makes it), then clean up."""
    if lexists(options.partial):
        fmt.finish(options.partial, options.output)
        fsync_directory(options.output.parent)
    remove(options.checkpoint)


@traced_run("mettl.export")  # one span over the run's calls, when traced
async def export_results(
    client: MettlClient,
    options: ExportOptions,
    *,
    progress: ExportProgress | None = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportSummary:
    """Export every candidate result of the chosen schedules (see the module docstring).

    One export at a time per output: a second one to the same path raises
    :class:`ExportError` at once, naming the running one, without touching its
    files. Paths are checked before any request. A run that fails before
    writing anything leaves no file behind.
    """
    fmt = get_format(options.format).for_options(options)
    walk = _schedule_walk(client, options, progress, on_progress)
    progress = walk.progress
    try:
        _check_paths(options)
        with ExportLock.acquire(options.output):
            resume = prepare_resume(options, fmt)
            kept = progress.records_kept = resume.kept
            if not resume.complete:
                await _export_to_partial(walk, options, fmt, resume)
            else:
                progress.resumable = True  # only the last step is left, from the files on disk
            _finish(options, fmt)
            progress.resumable = False
    except OSError as exc:
        raise ExportError(
            f"cannot write the export to {options.output}: {exc.strerror or exc}"
        ) from exc
    return ExportSummary(
        output=options.output,
        schedules=progress.schedules_done + progress.schedules_skipped,
        records=progress.records + kept,
        requests=walk.requests,
        retries=walk.retries,
        seconds=progress.elapsed,
        resumed_records=kept,
    )


async def _export_to_partial(
    walk: ScheduleWalk, options: ExportOptions, fmt: ExportFormat, resume: Resume
) -> None:
    """Every record not yet written into ``PATH.partial``, journalled; marked complete."""
    fresh = not resume.started
    # The checkpoint first: a data file without one is an export that wrote nothing.
    journal = (
        Journal.create(options.checkpoint, options.identity())
        if fresh
        else Journal.reopen(options.checkpoint)
    )
    data: _DataFile | None = None
    try:
        data = _DataFile.open(options.partial, resume)
        walk.progress.resumable = True
        sink = _FileSink(data, journal, resume.done)
        await _write(walk, options, fmt, sink, resume)  # its last commit syncs the data
        _complete(options, fmt, data, journal, frozenset(sink.finished))
    except BaseException:
        if fresh and (data is None or data.size == 0) and not journal.done_any:
            # Nothing was written (a wrong key, a bad URL, Ctrl+C at once): leave nothing.
            if data is not None:
                data.close()
                data = None
            journal.close()
            remove(options.partial)
            remove(options.checkpoint)
            walk.progress.resumable = False
        raise
    finally:
        if data is not None:
            data.close()
        journal.close()


def _complete(
    options: ExportOptions,
    fmt: ExportFormat,
    data: _DataFile,
    journal: Journal,
    finished: frozenset[str],
) -> None:
    """Mark the export complete, with what the data holds read back from the disk."""
    tally = tally_data(options.partial, data.size, fmt, finished)
    if (tally.size, tally.lines, tally.crc) != (data.size, data.lines, data.crc):
        raise ExportError(
            f"{options.partial} changed during the export: its first {data.size} bytes are "
            f"not the {data.lines} records written (was it edited?); use --overwrite to "
            "start over"
        )
    journal.complete(data.size, data.lines, data.crc, tally)


@traced_run("mettl.export")  # one span over the run's calls, when traced
async def stream_results(
    client: MettlClient,
    options: ExportOptions,
    stream: IO[bytes],
    *,
    progress: ExportProgress | None = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportSummary:
    """Write every candidate result to ``stream`` as it comes (``--output -``).

    Only a format whose spooled lines are its final lines (JSONL) can stream;
    ``options.output`` is not used, no file is written, and nothing can be
    resumed: an interrupted stream is run again.
    """
    fmt = get_format(options.format).for_options(options)
    if not fmt.streamable:
        raise ExportError(
            f"the {options.format} format cannot be streamed: it is made whole at the end "
            "(write it to a file)"
        )
    if options.mode == "resume":
        raise ExportError("a stream cannot be resumed: run the export again")
    walk = _schedule_walk(client, options, progress, on_progress)
    await _write(walk, options, fmt, _StreamSink(stream), Resume())
    return ExportSummary(
        output=options.output,
        schedules=walk.progress.schedules_done,
        records=walk.progress.records,
        requests=walk.requests,
        retries=walk.retries,
        seconds=walk.progress.elapsed,
    )


def _schedule_walk(
    client: MettlClient,
    options: ExportOptions,
    progress: ExportProgress | None,
    on_progress: Callable[[ExportProgress], None] | None,
) -> ScheduleWalk:
    return ScheduleWalk(
        client, access_keys=options.access_keys, progress=progress, on_progress=on_progress
    )


async def _write(
    walk: ScheduleWalk, options: ExportOptions, fmt: ExportFormat, sink: _Sink, resume: Resume
) -> None:
    """Walk the schedules not done, writing each page's new records through ``sink``."""
    done, written, written_lines = resume.done, resume.written, resume.written_lines
    progress = walk.progress
    progress.schedules_skipped = len(done)
    pages = walk.pages(
        skip=done,
        concurrency=options.concurrency,
        include_recommendation=options.include_recommendation,
        include_essay_responses=options.include_essay_responses,
    )
    finished: list[str] = []
    last_commit = time.monotonic()

    def commit() -> None:
        sink.commit(finished)
        finished.clear()

    try:
        async with contextlib.aclosing(pages):
            async for key, item in pages:
                records = item.page.items
                lines = fmt.encode_page(item.schedule, records)
                if written or written_lines:  # a resume: drop the records already in the file
                    fresh = []
                    for record, line in zip(records, lines, strict=True):
                        if (key, str(record.key)) in written or (
                            record.key is None and hash(line) in written_lines
                        ):  # (a record without email is known by its line)
                            progress.records_skipped += 1
                        else:
                            fresh.append(line)
                    lines = fresh
                if lines:
                    sink.append(lines)  # whole lines only: a page at a time
                    progress.records += len(lines)
                if item.page.is_last:
                    finished.append(key)
                    progress.schedules_done += 1
                now = time.monotonic()
                if now - last_commit >= CHECKPOINT_EVERY:
                    commit()
                    last_commit = now
                walk.report(now)
    except BaseException:
        # However the walk ends (an error, Ctrl+C, SIGTERM), what was written whole is
        # vouched for, so that --resume continues from there. A commit that fails too
        # (the disk is full) leaves the previous one standing.
        with contextlib.suppress(OSError):
            commit()
        raise
    commit()
