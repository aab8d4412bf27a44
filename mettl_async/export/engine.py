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
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final, Literal

import attrs
import orjson

from mettl_async._client import MettlClient
from mettl_async.export.base import ExportError
from mettl_async.export.csv import _spool_to_csv, csv_row
from mettl_async.export.journal import _count_lines, _Journal, _prepare, _Resume
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


# -- the export ----------------------------------------------------------------------


def _finish(options: ExportOptions) -> None:
    """Put the complete export at its path (CSV: convert the spool), then clean up."""
    if options.partial.exists():
        if options.format == "csv":
            _spool_to_csv(options.partial, options.output)
            options.partial.unlink()
        else:
            os.replace(options.partial, options.output)
    options.checkpoint.unlink(missing_ok=True)


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
