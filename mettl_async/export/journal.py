"""The checkpoint journal of an export, and what a resume starts from.

``PATH.checkpoint`` is a journal: a header naming the export, then one line per
commit vouching for a prefix of ``PATH.partial``: its size in bytes, the
number of records (lines) in it, a CRC-32 of those bytes, and the schedules
completed since the previous commit. A commit is written only for whole
records that were written and fsynced: a size always falls on a line boundary.
The last entry of a finished walk marks the export complete, and says what
can be checked: every schedule finished (the union of the ``done`` lists
before it) with the number of its records in the data, and the records of no
finished schedule (``other``).

A resume trusts nothing blindly. Each entry is checked (types, bounds, sizes
that never shrink); the last one is checked against the data (the file is at
least that long, its prefix ends a line, holds that many lines, and has that
checksum). A completion entry must agree with the entries before it and with
the data, schedule by schedule. Only then is ``PATH.partial`` cut back to that size (dropping a
torn tail), complete schedules skipped, and the candidates of the incomplete
ones already in the file skipped, so that the final file holds each candidate
once. A checkpoint that does not match its data refuses to resume, with a
message saying so, rather than guessing.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import attrs
import orjson

from mettl_async._numbers import is_whole_number
from mettl_async.export.base import ExportError, ExportFormat
from mettl_async.export.files import (
    create_new,
    fsync_directory,
    lexists,
    open_existing,
    read_regular,
    remove,
    write_all,
)
from mettl_async.export.options import ExportOptions

__all__ = [
    "CHECKPOINT_VERSION",
    "Journal",
    "JournalState",
    "Resume",
    "Tally",
    "prepare_resume",
    "read_journal",
    "tally_data",
]

#: 2: entries carry ``lines`` and ``crc32``; 3: the completion entry carries
#: ``schedules`` and ``other`` (earlier checkpoints cannot be resumed).
CHECKPOINT_VERSION: Final = 3
_ENTRY_FIELDS: Final = frozenset({"size", "lines", "crc32", "done"})
_COMPLETION_FIELDS: Final = frozenset({"complete", "schedules", "other"})
_START_OVER: Final = "use --overwrite to start over"


class Journal:
    """``PATH.checkpoint`` open for appending: which bytes of ``PATH.partial`` are good."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.done_any = False  # whether a commit named a complete schedule

    @classmethod
    def create(cls, path: Path, identity: Mapping[str, Any]) -> Journal:
        fd = create_new(path)
        try:
            header = {"mettl-async-export": CHECKPOINT_VERSION, **identity}
            write_all(fd, orjson.dumps(header) + b"\n")
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            remove(path)  # a header cut short would block the next run
            raise
        fsync_directory(path.parent)
        return cls(path, fd)

    @classmethod
    def reopen(cls, path: Path) -> Journal:
        fd = open_existing(path, os.O_RDWR | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                write_all(fd, b"\n")  # a line torn by the interruption stays a line of its own
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    def _append(self, entry: Mapping[str, Any]) -> None:
        write_all(self.fd, orjson.dumps(entry) + b"\n")
        os.fsync(self.fd)

    def commit(self, size: int, lines: int, crc: int, done: Sequence[str]) -> None:
        """Vouch for the first ``size`` bytes (``lines`` records): written and fsynced."""
        self._append({"size": size, "lines": lines, "crc32": crc, "done": list(done)})
        if done:
            self.done_any = True

    def complete(self, size: int, lines: int, crc: int, tally: Tally) -> None:
        """Every record is in the data file: only the format's finish is left.

        ``tally`` is what the data holds (:func:`tally_data`): the records of each
        finished schedule, and the others; a resume checks it against the entries
        before and against the data.
        """
        self._append(
            {
                "size": size,
                "lines": lines,
                "crc32": crc,
                "done": [],
                "complete": True,
                "schedules": dict(sorted(tally.schedules.items())),
                "other": tally.other,
            }
        )

    def close(self) -> None:
        """Close the file (once: a second call does nothing)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


@attrs.frozen
class JournalState:
    """What a checkpoint vouches for (:func:`read_journal`): its last entry, schedules done."""

    size: int = 0
    lines: int = 0
    crc: int = 0
    done: frozenset[str] = frozenset()
    complete: bool = False
    commits: int = 0
    #: what the completion entry claims: each finished schedule's records, and the others
    schedules: Mapping[str, int] = attrs.field(factory=dict)
    other: int = 0


def _whole(value: object) -> bool:
    return is_whole_number(value) and value >= 0


def _entry_problem(
    entry: object, last: JournalState, finished: set[str], identity: Mapping[str, Any]
) -> str | None:
    """What is wrong with one journal entry, given the state before it; ``None`` if nothing."""
    if not isinstance(entry, dict):
        return f"an entry is JSON {type(entry).__name__}, not an object"
    allowed = _ENTRY_FIELDS | _COMPLETION_FIELDS if "complete" in entry else _ENTRY_FIELDS
    unknown = set(entry) - allowed
    if unknown:
        return f"an entry has unknown fields ({', '.join(sorted(unknown))})"
    size, lines, crc, done = (entry.get(k) for k in ("size", "lines", "crc32", "done"))
    if (
        not isinstance(size, int)
        or not isinstance(lines, int)
        or not _whole(size)
        or not _whole(lines)
    ):
        return f"size and lines must be whole numbers >= 0, got {size!r} and {lines!r}"
    if not isinstance(crc, int) or isinstance(crc, bool) or not 0 <= crc <= 0xFFFFFFFF:
        return f"crc32 must be a 32-bit checksum, got {crc!r}"
    if lines > size or (size > 0) != (lines > 0):
        return f"{lines} lines cannot fill {size} bytes"
    if not isinstance(done, list) or not all(isinstance(key, str) and key for key in done):
        return "done must be a list of access keys"
    if entry.get("complete", True) is not True:
        return f"complete must be true when present, got {entry['complete']!r}"
    if last.complete:
        return "an entry follows the one marking the export complete"
    if size < last.size or lines < last.lines:
        return f"the size went back from {last.size} to {size} bytes"
    if size == last.size and (lines, crc) != (last.lines, last.crc) and last.commits:
        return f"two entries describe the same {size} bytes differently"
    if "complete" in entry:
        return _completion_problem(entry, finished | set(done), identity)
    return None


def _completion_problem(
    entry: dict[str, Any], done: set[str], identity: Mapping[str, Any]
) -> str | None:
    """What a completion entry claims that the entries before it do not bear out."""
    schedules, other = entry.get("schedules"), entry.get("other")
    if not isinstance(schedules, dict) or not isinstance(other, int) or not _whole(other):
        return (
            "the entry marking the export complete does not say which schedules it finished "
            "and their records (it was written by hand, or by another version)"
        )
    if not all(isinstance(key, str) and key and _whole(n) for key, n in schedules.items()):
        return "the completion entry's schedules must map access keys to record counts"
    claimed = set(schedules)
    if claimed != done:
        return (
            f"the completion entry names {len(claimed)} finished schedules but the entries "
            f"before it finished {len(done)} ({_differences(claimed, done)})"
        )
    keys = identity.get("access_keys")
    if keys is not None and claimed != set(keys):
        return (
            f"the export is of {len(set(keys))} schedules but the completion entry names "
            f"{len(claimed)} ({_differences(claimed, set(keys))})"
        )
    if sum(schedules.values()) + other != entry["lines"]:
        return (
            f"the completion entry counts {sum(schedules.values())} + {other} records, "
            f"not the {entry['lines']} it vouches for"
        )
    return None


def _differences(claimed: set[str], recorded: set[str]) -> str:
    parts = []
    for label, keys in (("not finished", claimed - recorded), ("missing", recorded - claimed)):
        if keys:
            shown = ", ".join(sorted(keys)[:3]) + (", ..." if len(keys) > 3 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts)


def read_journal(path: Path, identity: Mapping[str, Any]) -> JournalState:
    """What a checkpoint vouches for; checks that it belongs to this export, entry by entry."""
    lines = read_regular(path).split(b"\n")
    try:
        header = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        header = None
    version = header.get("mettl-async-export") if isinstance(header, dict) else None
    if version is None:
        raise ExportError(f"{path} is not a mettl-async checkpoint; {_START_OVER}")
    if version != CHECKPOINT_VERSION:
        raise ExportError(
            f"{path} was written by another version of mettl-async (checkpoint version "
            f"{version!r}, this one reads {CHECKPOINT_VERSION}): it cannot be resumed; "
            f"{_START_OVER}"
        )
    assert isinstance(header, dict)
    mismatched = sorted(k for k, v in identity.items() if header.get(k) != v)
    if mismatched:
        raise ExportError(
            f"{path} belongs to an export with other options ({', '.join(mismatched)}); "
            "resume with the same options, or use --overwrite to start over"
        )
    state = JournalState()
    done: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line torn by an interruption: the lines around it stand
        problem = _entry_problem(entry, state, done, identity)
        if problem is not None:
            raise ExportError(
                f"{path}, line {number}: {problem}; the checkpoint is damaged or was edited, "
                f"so it cannot vouch for the data: {_START_OVER}"
            )
        done.update(entry["done"])
        state = JournalState(
            entry["size"],
            entry["lines"],
            entry["crc32"],
            frozenset(done),
            entry.get("complete") is True,
            state.commits + 1,
            entry.get("schedules", {}),
            entry.get("other", 0),
        )
    return state


@attrs.frozen
class Tally:
    """What the first bytes of a data file hold, line by line (:func:`tally_data`)."""

    size: int  # bytes of the whole lines read
    lines: int
    crc: int
    ends_line: bool  # whether the last byte read ends a line
    #: records of each finished schedule (every one named, none left out)
    schedules: Mapping[str, int]
    other: int  # records naming no finished schedule
    #: the records of unfinished schedules: (access key, email), and lines without email
    written: frozenset[tuple[str, str]] = frozenset()
    written_lines: frozenset[int] = frozenset()


def _tally(stream: IO[bytes], limit: int, fmt: ExportFormat, finished: frozenset[str]) -> Tally:
    counts = dict.fromkeys(finished, 0)
    seen: set[tuple[str, str]] = set()
    keyless: set[int] = set()
    crc = count = consumed = 0
    last = b"\n"
    for line in stream:
        if consumed + len(line) > limit:
            break
        consumed += len(line)
        crc = zlib.crc32(line, crc)
        count += 1
        last = line[-1:]
        identity = fmt.identify(line)
        if identity is None:
            continue
        key, email = identity
        if key in counts:
            counts[key] += 1
        elif email is not None:
            seen.add((key, email))
        else:
            keyless.add(hash(line))
    named = sum(counts.values())
    return Tally(
        consumed,
        count,
        crc,
        last == b"\n",
        counts,
        count - named,
        frozenset(seen),
        frozenset(keyless),
    )


def tally_data(path: Path, size: int, fmt: ExportFormat, finished: frozenset[str]) -> Tally:
    """What the first ``size`` bytes of the data file at ``path`` hold (whole lines)."""
    fd = open_existing(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as stream:
        return _tally(stream, size, fmt, finished)


@attrs.frozen
class Resume:
    """What an earlier, interrupted run left: bytes kept, schedules done, records written."""

    size: int = 0
    lines: int = 0
    crc: int = 0
    done: frozenset[str] = frozenset()
    kept: int = 0
    written: frozenset[tuple[str, str]] = frozenset()
    written_lines: frozenset[int] = frozenset()  # hashes of lines of records without email
    complete: bool = False  # every record was written: only the last step is left
    started: bool = False  # the files of an earlier run are there to continue


def _verify(partial: Path, journal: JournalState, fmt: ExportFormat, *, checkpoint: Path) -> Resume:
    """Check ``PATH.partial`` against the checkpoint's last entry, cut it back to the size
    vouched for, and read which records it holds."""
    mismatch = (
        f"{partial} does not match its checkpoint {checkpoint.name}: {{}}; the files were "
        f"changed, or do not belong together, so the export cannot continue from them: "
        f"{_START_OVER}"
    )
    fd = open_existing(partial, os.O_RDWR)
    with os.fdopen(fd, "r+b") as stream:
        actual = os.fstat(fd).st_size
        if actual < journal.size:
            raise ExportError(
                mismatch.format(
                    f"it is shorter ({actual} bytes) than the {journal.size} bytes "
                    "the checkpoint vouches for"
                )
            )
        tally = _tally(stream, journal.size, fmt, journal.done)
        if tally.size != journal.size or not tally.ends_line:
            raise ExportError(mismatch.format(f"byte {journal.size} is not the end of a record"))
        if (tally.lines, tally.crc) != (journal.lines, journal.crc):
            raise ExportError(
                mismatch.format(
                    f"its first {journal.size} bytes hold {tally.lines} records with checksum "
                    f"{tally.crc:08x}, the checkpoint says {journal.lines} with {journal.crc:08x}"
                )
            )
        if journal.complete:
            problem = _claim_problem(journal, tally)
            if problem is not None:
                raise ExportError(mismatch.format(problem))
        if actual > journal.size:
            stream.truncate(journal.size)  # drop what came after the last good checkpoint
            os.fsync(fd)
    return Resume(
        journal.size,
        journal.lines,
        journal.crc,
        journal.done,
        tally.lines,
        tally.written,
        tally.written_lines,
        complete=journal.complete,
        started=True,
    )


def _claim_problem(journal: JournalState, tally: Tally) -> str | None:
    """Where the data disagrees with what the completion entry says it holds."""
    for key in sorted(journal.schedules):
        claimed, found = journal.schedules[key], tally.schedules.get(key, 0)
        if claimed != found:
            return (
                f"the checkpoint's completion entry says schedule {key} has {claimed} "
                f"records, the file holds {found}"
            )
    if tally.other != journal.other:
        return (
            f"the checkpoint's completion entry says {journal.other} records name no "
            f"finished schedule, the file holds {tally.other}"
        )
    return None


def _holds_nothing(options: ExportOptions) -> bool:
    """Whether the side files of an earlier run vouch for nothing (no record, no schedule)."""
    partial, checkpoint = options.partial, options.checkpoint
    for path in (partial, checkpoint):
        if os.path.islink(path) or (lexists(path) and not os.path.isfile(path)):
            return False
    if not lexists(checkpoint):  # without one, only an empty data file is nothing
        return not lexists(partial) or os.path.getsize(partial) == 0
    try:
        state = read_journal(checkpoint, options.identity())
    except (ExportError, OSError):
        return False
    # Bytes of the data file that no entry vouches for would be cut by a resume anyway.
    return state.size == 0 and not state.done and not state.complete


def prepare_resume(options: ExportOptions, fmt: ExportFormat) -> Resume:
    """Check what is on disk against the mode, and what a resume starts from."""
    output, partial, checkpoint = options.output, options.partial, options.checkpoint
    if options.mode == "overwrite":
        for path in (partial, checkpoint):
            remove(path)  # a link planted there goes, its target stays untouched
        return Resume()
    for path in (partial, checkpoint):
        if os.path.islink(path):
            raise ExportError(
                f"{path} is a symbolic link: the export never reads or writes through one "
                "(remove it, or use --overwrite, which removes it)"
            )
    if options.mode == "new":
        if lexists(output):
            raise ExportError(f"{output} exists: use --overwrite to replace it")
        if lexists(partial) or lexists(checkpoint):
            if not _holds_nothing(options):
                raise ExportError(
                    f"an interrupted export to {output} exists ({partial.name}): "
                    "use --resume to continue it or --overwrite to start over"
                )
            for path in (partial, checkpoint):
                remove(path)  # a run that wrote nothing: nothing to keep
        return Resume()
    # --resume
    journal = read_journal(checkpoint, options.identity()) if lexists(checkpoint) else None
    has_partial = lexists(partial)
    if journal is not None and journal.complete:
        if has_partial:
            return _verify(partial, journal, fmt, checkpoint=checkpoint)
        if lexists(output):
            # Stopped after the file was put in place, before the checkpoint went.
            found = fmt.count(output)
            if found != journal.lines:
                raise ExportError(
                    f"{output} holds {found} records, but its checkpoint says the export "
                    f"wrote {journal.lines}: it was changed since; {_START_OVER}"
                )
            return Resume(
                journal.size,
                journal.lines,
                journal.crc,
                journal.done,
                found,
                complete=True,
                started=True,
            )
    if not has_partial and (journal is None or journal.commits == 0):
        if lexists(output):
            raise ExportError(
                f"{output} is complete: nothing to resume (use --overwrite to redo it)"
            )
        remove(checkpoint)  # stopped before anything was written
        return Resume()
    if journal is None:
        if _holds_nothing(options):
            remove(partial)
            return Resume()
        raise ExportError(f"the interrupted export to {output} lacks its checkpoint: {_START_OVER}")
    if not has_partial:
        raise ExportError(f"the interrupted export to {output} lacks its data file: {_START_OVER}")
    return _verify(partial, journal, fmt, checkpoint=checkpoint)
