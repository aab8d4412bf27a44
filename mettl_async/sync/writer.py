"""The sync's writer process: the database's work beside the walk, with a GIL of its own.

A sync spends more CPU on each record than the walk that fetches it: its
columns read, its hash, its rows inserted. In one process all of it shares
one GIL with the event loop that fetches the pages, and the walk waits.
``sync_results(..., writer="process")`` (``sync --writer process``) runs
the database's side, a :class:`~mettl_async.sync.sink.ResultSink`, in a child
process (this module's :func:`main`, in the same Python) and hands it each
page as it comes: the records' bytes, a page to a message.

The two talk over pipes, in frames of a 4-byte length and a msgpack list.
Each request carries a number, and its one reply the same number: ``ok`` and
a value, or ``error`` with the class and message of a
:class:`~mettl_async.sync.SyncError`, raised again in the parent as that
class. Requests go over the child's stdin, replies come back over its
stdout; a schedule's mark, which the walk waits for before asking for the
schedule's first page, goes over a pipe of its own, so that it never waits
behind the pages already sent. Pages are sent without waiting for their
replies: a child that falls behind holds the walk back (memory stays
bounded), and a failure comes back with the next call. In the child, each
schedule's pages and commit are handled in order, and different schedules'
side by side, so reading one schedule goes on while another commits.

What the sync promises holds as in one process. The child opens the database
and holds the sync lock; a schedule's mark is read before its first page is
asked for; a schedule is committed only after its last page, in one
transaction. The child ignores Ctrl+C and SIGTERM (the parent ends the run,
says why, then closes it); it dies with the parent (``PR_SET_PDEATHSIG`` on
Linux, the end of its input elsewhere), so a killed sync leaves no writer
holding the lock, and the transaction it was in is rolled back by the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

import msgspec

import mettl_async.sync.base as base_errors
from mettl_async.sync.base import (
    CLEANUP_SECONDS,
    Counts,
    DatabaseLostError,
    DatabaseTimeouts,
    Spool,
    SyncError,
)
from mettl_async.sync.sink import Committed, ResultSink, ScheduleColumns

__all__ = ["AVAILABLE", "WriterProcess", "main"]

#: Whether a writer process can be started here (it needs a pipe passed to a child: POSIX).
AVAILABLE: Final = os.name == "posix"

_HEADER: Final = 4
_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder()
#: Bytes of pages the parent may have sent and the child not yet read, beyond the pipe's own.
_HIGH_WATER: Final = 1 << 20
#: Bytes of pages the child holds, read but not yet handled, before it stops reading.
_BACKLOG: Final = 4 << 20
#: Seconds the child may take to start and open the database, beyond its timeouts.
_START_SECONDS: Final = 60.0

#: The child's program. It needs the database's half of mettl-async only, so the
#: packages ``mettl_async`` and ``mettl_async.sync`` are made bare (their modules are
#: found where the parent found them, but their ``__init__``, which imports the HTTP
#: client, is not run): the child starts in a third of the time.
_BOOTSTRAP: Final = """\
import sys, types
from importlib.machinery import PathFinder
def bare(name, path):
    spec = PathFinder.find_spec(name.rpartition(".")[2], path)
    module = types.ModuleType(name)
    module.__spec__, module.__file__ = spec, spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = module
    return module.__path__
bare("mettl_async.sync", bare("mettl_async", [sys.argv[1]]))
from mettl_async.sync.writer import main
main(sys.argv[2:])
"""

#: The directory mettl_async was imported from.
_PACKAGE_PARENT: Final = str(Path(__file__).resolve().parents[2])

#: The errors a reply may name, by class name: raised in the parent as that class.
_ERRORS: Final[dict[str, type[SyncError]]] = {
    name: cls
    for name in base_errors.__all__
    if isinstance(cls := getattr(base_errors, name), type) and issubclass(cls, SyncError)
}


def _frame(message: Sequence[Any]) -> bytes:
    data = _ENCODER.encode(message)
    return len(data).to_bytes(_HEADER, "little") + data


async def _read_frame(reader: asyncio.StreamReader) -> tuple[Any, int] | None:
    """The next message and its size in bytes, or ``None`` at the end of the stream."""
    try:
        header = await reader.readexactly(_HEADER)
        size = int.from_bytes(header, "little")
        return _DECODER.decode(await reader.readexactly(size)), size
    except asyncio.IncompleteReadError:
        return None


async def _pipe_reader(file: IO[bytes]) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), file)
    return reader


# -- the parent's side ---------------------------------------------------------------------


class WriterProcess:
    """The parent's handle on a writer process: the calls of a
    :class:`~mettl_async.sync.sink.ResultSink`, answered by the child."""

    def __init__(self, process: asyncio.subprocess.Process, urgent: int, shown: str) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.url = shown  # the database URL, password hidden
        self._process = process
        self._writer = process.stdin
        self._writer.transport.set_write_buffer_limits(high=_HIGH_WATER)
        self._urgent = urgent  # the write end of the marks' pipe
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self._failure: BaseException | None = None  # of a reply nobody awaited
        self._lost: BaseException | None = None  # the child is gone, or not to be trusted
        #: Done, with the error that says why, once the child cannot be used any more.
        self.gone: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._reading = asyncio.get_running_loop().create_task(self._read(process.stdout))

    @classmethod
    async def start(cls, url: str, shown: str, timeouts: DatabaseTimeouts) -> WriterProcess:
        """A child process with the database of ``url`` opened and its sync lock held.

        Raises what opening raises (:class:`SyncConfigurationError`,
        :class:`DatabaseUnavailableError`, :class:`SyncLockedError`...).
        """
        urgent_read, urgent_write = os.pipe()
        try:
            # The child imports mettl-async from where this process did (-P keeps the
            # current directory off its path).
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",
                "-c",
                _BOOTSTRAP,
                _PACKAGE_PARENT,
                str(os.getpid()),
                str(urgent_read),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(urgent_read,),
            )
        except BaseException:
            os.close(urgent_write)
            raise
        finally:
            os.close(urgent_read)
        writer = cls(process, urgent_write, shown)
        try:
            limit = timeouts.connect + timeouts.statement + _START_SECONDS
            async with asyncio.timeout(limit):
                seconds = [timeouts.connect, timeouts.statement, timeouts.commit]
                # the child spools as this process would (its memory limit is this one's)
                await writer.call("open", url, seconds, Spool().max_memory)
        except BaseException:
            await writer.close()
            raise
        return writer

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        try:
            while (read := await _read_frame(stdout)) is not None:
                number, status, *value = read[0]
                future = self._replies.pop(number)
                if future.done():
                    continue
                if status == "ok":
                    future.set_result(value[0])
                else:
                    future.set_exception(self._error(*value))
        except Exception as exc:  # a broken frame: the child cannot be trusted further
            self._fail(DatabaseLostError(f"the sync's writer process sent a bad reply: {exc!r}"))
            return
        code = await self._process.wait()
        self._fail(
            DatabaseLostError(
                f"the sync's writer process (database {self.url}) ended unexpectedly "
                f"(exit code {code})"
            )
        )

    @staticmethod
    def _error(name: str, message: str) -> SyncError:
        cls = _ERRORS.get(name)
        if cls is None:
            return SyncError(f"the sync's writer process failed: {name}: {message}")
        return cls(message)

    def _fail(self, error: BaseException) -> None:
        if self._lost is None:
            self._lost = error
        if not self.gone.done():
            self.gone.set_result(error)
        replies, self._replies = self._replies, {}
        for future in replies.values():
            if not future.done():
                future.set_exception(error)

    def _request(self, message: tuple[Any, ...]) -> tuple[int, asyncio.Future[Any], bytes]:
        if self._lost is not None:
            raise self._lost
        if self._failure is not None:
            raise self._failure
        number, self._next = self._next, self._next + 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[number] = future
        return number, future, _frame((number, *message))

    def _send(self, *message: Any) -> asyncio.Future[Any]:
        _, future, frame = self._request(message)
        self._writer.write(frame)
        return future

    def _noted(self, future: asyncio.Future[Any]) -> None:
        """A reply nobody awaits: its failure fails the next call."""
        if future.cancelled():
            return
        error = future.exception()  # retrieved, whoever else is told
        if error is not None and self._failure is None:
            self._failure = error

    async def call(self, *message: Any) -> Any:
        """Send a request and wait for its reply."""
        future = self._send(*message)
        await self._writer.drain()
        return await future

    async def begin(self, now: datetime, scope: Sequence[str] | None) -> int:
        return int(await self.call("begin", now.isoformat(), scope))

    async def mark(self, key: str) -> None:
        # over the marks' own pipe: never behind the pages sent (a few bytes; the child
        # reads that pipe at once, so the write does not block)
        number, future, frame = self._request(("mark", key))
        try:
            os.write(self._urgent, frame)
        except OSError as exc:
            self._replies.pop(number, None)
            raise DatabaseLostError(f"the sync's writer process is gone ({exc})") from exc
        await future

    async def page(self, key: str, records: list[tuple[object, bytes]]) -> None:
        self._send("page", key, records).add_done_callback(self._noted)
        await self._writer.drain()  # the child is behind: wait (bounded memory)

    async def commit(
        self,
        key: str,
        columns: ScheduleColumns,
        now: datetime,
        done: Callable[[Committed], None],
    ) -> None:
        """Send the commit; ``done`` is called with its outcome when the child replies."""

        def replied(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                self._noted(future)
                return
            inserted, updated, unchanged, deleted, skipped = future.result()
            done(Committed(Counts(inserted, updated, unchanged, deleted), skipped))

        self._send("commit", key, list(columns), now.isoformat()).add_done_callback(replied)
        await self._writer.drain()

    async def finish(self, now: datetime, *, delete_schedules: bool) -> int:
        """End the run once every commit sent is done (their ``done`` called)."""
        deleted = int(await self.call("finish", now.isoformat(), delete_schedules))
        await asyncio.sleep(0)  # the commits' callbacks, scheduled with their replies, run
        return deleted

    async def abort(self, now: datetime, error: str) -> None:
        self._failure = None  # the run's end is recorded whatever failed before
        await self.call("abort", now.isoformat(), error)

    async def close(self) -> None:
        """Let the child close the database and exit (killed if it does not in time)."""
        process = self._process
        if process.returncode is None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLEANUP_SECONDS):
                    if self._lost is None:
                        self._failure = None
                        await self.call("close")
                    self._writer.close()
                    await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        with contextlib.suppress(OSError):
            os.close(self._urgent)
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading
        self._fail(SyncError(f"the sync's writer process (database {self.url}) is closed"))


# -- the child's side ----------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Be killed when the parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


class _Child:
    """The child: a :class:`ResultSink` driven by the parent's requests."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sink: ResultSink | None = None
        self.lanes: dict[str, asyncio.Task[None]] = {}  # each schedule's last request
        self.backlog = 0  # bytes of requests read and not yet handled
        self.room = asyncio.Event()
        self.room.set()

    @property
    def _sink(self) -> ResultSink:
        if self.sink is None:
            raise SyncError("the database is not open")
        return self.sink

    async def answer(self, number: int, call: Callable[[], Awaitable[Any]]) -> None:
        """Run ``call`` and send its reply."""
        try:
            reply: list[Any] = [number, "ok", await call()]
        except SyncError as exc:
            reply = [number, "error", type(exc).__name__, str(exc)]
        except Exception as exc:  # a bug, or the unforeseen: told, not hidden
            reply = [number, "error", type(exc).__name__, f"{type(exc).__name__}: {exc}"]
        self.out.write(_frame(reply))

    def queue(self, key: str, number: int, call: Callable[[], Awaitable[Any]], size: int) -> None:
        """Run ``call`` after the requests of schedule ``key`` before it."""
        previous = self.lanes.get(key)

        async def step() -> None:
            try:
                if previous is not None:
                    await asyncio.wait([previous])
                await self.answer(number, call)
            finally:
                self.backlog -= size
                if self.backlog < _BACKLOG:
                    self.room.set()
                if self.lanes.get(key) is task:
                    del self.lanes[key]

        task = self.lanes[key] = asyncio.create_task(step())
        self.backlog += size
        if self.backlog >= _BACKLOG:
            self.room.clear()

    async def settle(self, cancel: bool = False) -> None:
        """Wait for every schedule's requests (or cancel them: an aborted run)."""
        lanes = list(self.lanes.values())
        if cancel:
            for task in lanes:
                task.cancel()
        if lanes:
            await asyncio.wait(lanes)

    async def page(self, key: str, records: list[tuple[object, bytes]]) -> None:
        await self._sink.page(key, records)

    async def commit(self, key: str, columns: list[Any], now: str) -> list[int]:
        name, assessment_id, raw = columns
        outcome = await self._sink.commit(
            key, (name, assessment_id, raw), datetime.fromisoformat(now)
        )
        c = outcome.counts
        return [c.inserted, c.updated, c.unchanged, c.deleted, outcome.skipped]

    async def mark(self, key: str) -> None:
        await self._sink.mark(key)

    async def begin(self, now: str, scope: list[str] | None) -> int:
        return await self._sink.begin(datetime.fromisoformat(now), scope)

    async def finish(self, now: str, delete_schedules: bool) -> int:
        await self.settle()
        return await self._sink.finish(
            datetime.fromisoformat(now), delete_schedules=delete_schedules
        )

    async def abort(self, now: str, error: str) -> None:
        await self.settle(cancel=True)  # what was not committed yet is not
        await self._sink.abort(datetime.fromisoformat(now), error)

    async def open(self, url: str, seconds: list[float], spool_memory: int) -> str:
        from mettl_async.sync.database import open_database

        connect, statement, commit = seconds
        timeouts = DatabaseTimeouts(connect=connect, statement=statement, commit=commit)
        db = await open_database(url, timeouts=timeouts)
        try:
            await db.lock()
        except BaseException:
            await db.close()
            raise
        self.sink = ResultSink(db, spool_memory)
        return db.url

    async def close(self) -> None:
        await self.settle(cancel=True)
        if self.sink is not None:
            self.sink.discard()
            db, self.sink = self.sink.db, None
            await db.close()  # releases the lock


async def _nothing() -> None:
    return None


async def _serve_marks(child: _Child, urgent: int) -> None:
    reader = await _pipe_reader(os.fdopen(urgent, "rb", buffering=0))
    running: set[asyncio.Task[None]] = set()  # kept until done (a task is weakly held)
    while (read := await _read_frame(reader)) is not None:
        number, _, key = read[0]
        task = asyncio.create_task(child.answer(number, functools.partial(child.mark, key)))
        running.add(task)
        task.add_done_callback(running.discard)


async def _serve(urgent: int) -> None:
    reader = await _pipe_reader(sys.stdin.buffer)
    # The replies go to the stdout it was given; anything printed goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    child = _Child(out)
    marks = asyncio.create_task(_serve_marks(child, urgent))
    try:
        while True:
            await child.room.wait()
            read = await _read_frame(reader)
            if read is None:
                break
            (number, op, *args), size = read
            if op in ("page", "commit"):
                call = functools.partial(getattr(child, op), *args)
                child.queue(args[0], number, call, size)
            elif op in ("open", "begin", "finish", "abort"):
                await child.answer(number, functools.partial(getattr(child, op), *args))
            elif op == "close":
                await child.close()
                await child.answer(number, _nothing)
                break
            else:
                message = f"the sync's writer process got an unknown request {op!r}"
                out.write(_frame([number, "error", "SyncError", message]))
    finally:
        marks.cancel()
        await child.close()


def main(argv: Sequence[str] | None = None) -> None:
    """The child's program (``PARENT_PID URGENT_FD``): serve the parent on its pipes."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides, and says why
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(int(args[0]))
    asyncio.run(_serve(int(args[1])))


if __name__ == "__main__":
    main()
