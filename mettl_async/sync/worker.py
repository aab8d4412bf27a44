"""A thread of its own for a blocking connection (SQLite's), whose every call has a deadline.

A SQLite connection belongs to the thread that made it, and its calls block: the
backend runs them, one at a time, in a :class:`Worker`, a daemon thread (a call
stuck in the kernel never keeps the process from exiting). Each call is a
:class:`Job` with a deadline the event loop watches; the call may move it on
(:meth:`Worker.limit`) as it goes from statement to statement. When the deadline
passes, or the awaiting task is cancelled (Ctrl+C), the job is marked and the
connection interrupted (:meth:`sqlite3.Connection.interrupt`), so the statement
running stops and the job ends; a job still queued then is never run.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

__all__ = ["GRACE_SECONDS", "Job", "JobExpired", "Worker", "retrieve"]

T = TypeVar("T")

#: Seconds a job that passed its deadline is given to stop once interrupted.
GRACE_SECONDS: Final = 2.0


class JobExpired(Exception):
    """A job reached its deadline (or was cancelled) before the worker started it."""


class Job(Generic[T]):
    """One call for the worker: what it does (for messages), its deadline, its outcome."""

    def __init__(
        self, call: Callable[[], T], loop: asyncio.AbstractEventLoop, what: str, limit: float
    ) -> None:
        self.call = call
        self.loop = loop
        self.what = what
        self.limit = limit  # seconds of the current step (for messages)
        self.deadline = time.monotonic() + limit  # moved on by Worker.limit
        self.future: asyncio.Future[T] = loop.create_future()
        self.expired = False  # set by the event loop: the deadline passed
        self.cancelled = False  # set by the event loop: nobody waits any more

    @property
    def stopping(self) -> bool:
        """Whether the job should give up (its deadline passed, or it was cancelled)."""
        return self.expired or self.cancelled or time.monotonic() >= self.deadline

    def _settle(self, result: Any, error: BaseException | None) -> None:
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        """Hand the outcome to the event loop (from the worker's thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self.loop.call_soon_threadsafe(self._settle, result, error)


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark the outcome of a future nobody awaits as seen (no "never retrieved" warning):
    an abandoned job's, a dropped read's, a run's end whose failure is not the run's."""
    if not future.cancelled():
        future.exception()


class Worker:
    """A daemon thread running jobs in order; ``interrupt`` stops the one running."""

    def __init__(self, name: str, interrupt: Callable[[], None]) -> None:
        self._interrupt = interrupt
        self._jobs: queue.SimpleQueue[Job[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._current: Job[Any] | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                if job.stopping:
                    job.settle(error=JobExpired(job.what))
                    continue
                self._current = job
            try:
                result = job.call()
            except BaseException as exc:  # handed to the awaiting task
                job.settle(error=exc)
            else:
                job.settle(result)
            finally:
                with self._lock:
                    self._current = None

    @property
    def current(self) -> Job[Any] | None:
        """The job running (read in the worker's thread by the job itself)."""
        return self._current

    def limit(self, seconds: float, what: str | None = None) -> None:
        """From the running job: its next step may take ``seconds`` from now."""
        job = self._current
        if job is not None:
            job.limit = seconds
            job.deadline = time.monotonic() + seconds
            if what is not None:
                job.what = what

    async def run(self, job: Job[T]) -> T:
        """Queue ``job`` and wait for it; a :class:`JobExpired` if its deadline passes.

        Past the deadline the job is marked expired and interrupted; it is given
        :data:`GRACE_SECONDS` to stop (its transaction rolled back) before it is
        abandoned. Cancelled, the job is marked and interrupted, and left to stop.
        """
        self._jobs.put(job)
        try:
            while not job.future.done():
                remaining = job.deadline - time.monotonic()
                if remaining <= 0:
                    break
                await asyncio.wait([job.future], timeout=remaining)
            if not job.future.done():
                job.expired = True
                self._stop(job)
                await asyncio.wait([job.future], timeout=GRACE_SECONDS)
                if not job.future.done():
                    job.future.add_done_callback(retrieve)
                    raise JobExpired(job.what)
            return job.future.result()
        except asyncio.CancelledError:
            job.cancelled = True
            self._stop(job)
            job.future.add_done_callback(retrieve)
            raise

    def _stop(self, job: Job[Any]) -> None:
        with self._lock:
            if self._current is job:
                self._interrupt()

    def stop(self) -> None:
        """End the thread once the jobs queued are done (it is a daemon: never waited for)."""
        self._jobs.put(None)
