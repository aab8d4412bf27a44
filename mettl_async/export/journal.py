"""The checkpoint journal of an export, and what a resume starts from.

``PATH.checkpoint`` is a journal: a header naming the export, then lines
recording how many bytes of ``PATH.partial`` are known good and which schedules
are complete. Data is flushed and fsynced before the checkpoint line that
vouches for it. A resume truncates ``PATH.partial`` to the last good size,
skips the complete schedules, and skips the candidates of the incomplete ones
that are already in the file, so the final file holds each candidate once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import attrs
import orjson

from mettl_async.export.base import ExportError, ExportFormat, count_lines

if TYPE_CHECKING:
    from mettl_async.export.engine import ExportOptions

__all__ = ["CHECKPOINT_VERSION"]

CHECKPOINT_VERSION: Final = 1


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
        """Every record is in the data file: only the format's finish is left."""
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
    partial: Path, done: frozenset[str], fmt: ExportFormat
) -> tuple[int, frozenset[tuple[str, str]], frozenset[int]]:
    """Lines kept; ``(accessKey, email)`` of those from schedules not yet complete, and
    (for records without an email) the hashes of those lines."""
    seen: set[tuple[str, str]] = set()
    keyless: set[int] = set()
    kept = 0
    with partial.open("rb") as stream:
        for line in stream:
            kept += 1
            identity = fmt.identify(line)
            if identity is None:
                continue
            key, email = identity
            if key in done:
                continue
            if email is not None:
                seen.add((key, email))
            else:
                keyless.add(hash(line))
    return kept, frozenset(seen), frozenset(keyless)


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


def _prepare(options: ExportOptions, fmt: ExportFormat) -> _Resume:
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
        kept = count_lines(partial) if partial.exists() else fmt.count(output)
        return _Resume(journal.size, journal.done, kept, complete=True, started=True)
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
    kept, written, written_lines = _already_written(partial, journal.done, fmt)
    return _Resume(journal.size, journal.done, kept, written, written_lines, started=True)
