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
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final, Literal

import attrs

from mettl_async._client import MettlClient
from mettl_async.export.base import ExportError, ExportFormat, Format, get_format
from mettl_async.export.journal import _Journal, _prepare, _Resume

__all__ = [
    "ExportError",
    "ExportOptions",
    "ExportProgress",
    "ExportSummary",
    "export_results",
]

Mode = Literal["new", "resume", "overwrite"]

#: Seconds between checkpoints (each costs two fsyncs).
CHECKPOINT_EVERY: Final = 0.5


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


def _finish(options: ExportOptions, fmt: ExportFormat) -> None:
    """Put the complete export at its path (the format makes it), then clean up."""
    if options.partial.exists():
        fmt.finish(options.partial, options.output)
    options.checkpoint.unlink(missing_ok=True)


async def export_results(
    client: MettlClient,
    options: ExportOptions,
    *,
    progress: ExportProgress | None = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportSummary:
    """Export every candidate result of the chosen schedules (see the module docstring)."""
    fmt = get_format(options.format)
    progress = progress if progress is not None else ExportProgress()
    requests0, retries0 = client.stats.requests, client.stats.retries
    try:
        resume = _prepare(options, fmt)
        kept = resume.kept
        if not resume.complete:
            options.output.parent.mkdir(parents=True, exist_ok=True)
            # The data file first: a checkpoint never vouches for a file that is not there.
            with options.partial.open("ab" if resume.started else "wb") as data:
                journal = (
                    _Journal.reopen(options.checkpoint)
                    if resume.started
                    else _Journal.create(options.checkpoint, options.identity())
                )
                try:
                    await _walk(client, options, fmt, data, journal, resume, progress, on_progress)
                    journal.complete(data.tell())
                finally:
                    journal.close()
        _finish(options, fmt)
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
    fmt: ExportFormat,
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
        data.flush()
        os.fsync(data.fileno())
        journal.commit(data.tell(), finished)
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
