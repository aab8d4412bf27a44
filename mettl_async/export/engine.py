"""The export: the walk over schedules, writing through an :class:`ExportFormat`.

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
from typing import IO, Any, Final, Protocol

import attrs

from mettl_async._client import MettlClient
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
from mettl_async.export.journal import Journal, Resume, prepare_resume
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


@attrs.define
class ExportProgress:
    """Live counters of an export, for a progress line."""

    started: float = attrs.field(factory=time.monotonic)
    schedules_total: int | None = None  # known once every schedule is listed
    schedules_done: int = 0
    schedules_skipped: int = 0  # complete in the checkpoint being resumed
    records: int = 0
    records_skipped: int = 0  # already in the file being resumed
    records_kept: int = 0  # in the file being resumed, kept
    #: Whether the files of this export are on disk for ``mode="resume"`` to continue
    #: (false before anything was written, and once the export is complete).
    resumable: bool = False
    #: what the schedule listing's ``totalRecords`` said, before the listing ends
    schedules_reported: int | None = None
    schedules_begun: int = 0  # schedules of this run whose first page gave a total
    records_reported: int = 0  # the ``totalRecords`` of those schedules, added up

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def records_seen(self) -> int:
        """Records this run has handled: written, or found already in the file."""
        return self.records + self.records_skipped

    def records_expected(self) -> int | None:
        """Records this run will handle, by Mettl's ``totalRecords``; None until one is known.

        Exact once every schedule to walk has begun; until then the schedules
        begun stand for the others (their average size, times the schedules left).
        """
        schedules = self.schedules_total
        if schedules is None:
            schedules = self.schedules_reported
        if schedules is None or self.schedules_begun == 0:
            return None
        to_walk = max(0, schedules - self.schedules_skipped)
        expected = self.records_reported
        if self.schedules_begun < to_walk:
            expected = round(expected * to_walk / self.schedules_begun)
        return max(expected, self.records_seen)

    def eta(self, rate: float | None = None) -> float | None:
        """Seconds left at ``rate`` records per second (default: this run's average)."""
        expected = self.records_expected()
        if rate is None:
            elapsed = self.elapsed
            rate = self.records_seen / elapsed if elapsed > 0 else 0.0
        if expected is None or rate <= 0:
            return None
        return max(0.0, (expected - self.records_seen) / rate)


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
    if output.name in ("", ".", "..") or str(output) == "-":
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
        # Appending: after a failed write, cutting the file back to ``size`` also puts
        # the next write there.
        if resume.started and lexists(path):
            fd = open_existing(path, os.O_WRONLY | os.O_APPEND)
        else:
            fd = create_new(path, append=True)
        return cls(fd, resume.size, resume.lines, resume.crc)

    def append(self, lines: list[bytes]) -> None:
        blob = b"".join(lines)
        try:
            write_all(self.fd, blob)
        except OSError:
            # A write cut short (a full disk): take back the part of a record it left.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise
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

    def __init__(self, data: _DataFile, journal: Journal) -> None:
        self.data = data
        self.journal = journal
        self.committed = data.size

    def append(self, lines: list[bytes]) -> None:
        self.data.append(lines)

    def commit(self, finished: list[str]) -> None:
        data = self.data
        if data.size == self.committed and not finished:
            return  # nothing new to vouch for
        data.sync()  # the data first: a checkpoint never vouches for bytes not on disk
        self.journal.commit(data.size, data.lines, data.crc, finished)
        self.committed = data.size


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
    progress = progress if progress is not None else ExportProgress()
    requests0, retries0 = client.stats.requests, client.stats.retries
    try:
        _check_paths(options)
        with ExportLock.acquire(options.output):
            resume = prepare_resume(options, fmt)
            kept = progress.records_kept = resume.kept
            if not resume.complete:
                await _export_to_partial(client, options, fmt, resume, progress, on_progress)
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
        requests=client.stats.requests - requests0,
        retries=client.stats.retries - retries0,
        seconds=progress.elapsed,
        resumed_records=kept,
    )


async def _export_to_partial(
    client: MettlClient,
    options: ExportOptions,
    fmt: ExportFormat,
    resume: Resume,
    progress: ExportProgress,
    on_progress: Callable[[ExportProgress], None] | None,
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
        progress.resumable = True
        sink = _FileSink(data, journal)
        await _walk(client, options, fmt, sink, resume, progress, on_progress)
        data.sync()
        journal.complete(data.size, data.lines, data.crc)
    except BaseException:
        if fresh and (data is None or data.size == 0) and not journal.done_any:
            # Nothing was written (a wrong key, a bad URL, Ctrl+C at once): leave nothing.
            if data is not None:
                data.close()
                data = None
            journal.close()
            remove(options.partial)
            remove(options.checkpoint)
            progress.resumable = False
        raise
    finally:
        if data is not None:
            data.close()
        journal.close()


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
    progress = progress if progress is not None else ExportProgress()
    requests0, retries0 = client.stats.requests, client.stats.retries
    await _walk(client, options, fmt, _StreamSink(stream), Resume(), progress, on_progress)
    return ExportSummary(
        output=options.output,
        schedules=progress.schedules_done,
        records=progress.records,
        requests=client.stats.requests - requests0,
        retries=client.stats.retries - retries0,
        seconds=progress.elapsed,
    )


async def _walk(
    client: MettlClient,
    options: ExportOptions,
    fmt: ExportFormat,
    sink: _Sink,
    resume: Resume,
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
        async with contextlib.aclosing(client.iter_schedules().raw().pages()) as pages:
            async for page in pages:
                if progress.schedules_reported is None:
                    progress.schedules_reported = page.total_records
                for schedule in page.items:
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
    finished: list[str] = []
    last_commit = last_report = time.monotonic()

    def commit() -> None:
        sink.commit(finished)
        finished.clear()

    try:
        async with contextlib.aclosing(walk.raw().pages()) as pages:
            async for item in pages:
                schedule = item.schedule
                key = str(schedule.key or schedule.get("accessKey"))
                records = item.page.items
                if item.page.offset == 0 and item.page.total_records is not None:
                    progress.schedules_begun += 1  # a schedule's first page: its size
                    progress.records_reported += item.page.total_records
                lines = fmt.encode_page(schedule, records)
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
                if on_progress is not None and now - last_report >= 0.2:
                    on_progress(progress)
                    last_report = now
    except BaseException:
        # However the walk ends (an error, Ctrl+C, SIGTERM), what was written whole is
        # vouched for, so that --resume continues from there. A commit that fails too
        # (the disk is full) leaves the previous one standing.
        with contextlib.suppress(OSError):
            commit()
        raise
    commit()
