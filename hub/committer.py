"""The store's own thread: it runs every job that writes the store, so the loop never waits for SQLite.

The server thread owns the sockets; this thread owns the Store's write
connection.  The loop hands it jobs (a batch of writes to commit, a chore that
writes, a key rotation) and goes on serving reads and taking in the next
writes; a job's callback runs back on the server thread, in the order the
jobs were submitted, so replies and publishing stay where the sockets are and
changes leave in revision order.  While one batch commits (sqlite3 releases
the GIL for the fsync), the next one gathers: group commit with pipelining.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from statehub.hub.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """What a job returned, or the exception it raised."""

    value: T | None = None
    error: BaseException | None = None

    def result(self) -> T:
        """The value, or the job's exception raised again (in the caller's thread)."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


@dataclass
class _Job:
    work: Callable[[Store], Any]
    done: Callable[[Outcome[Any]], None]
    outcome: Outcome[Any] | None = None


class Committer:
    """Runs jobs on the store in a thread of its own; ``finish()`` runs their callbacks on the caller's thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: collections.deque[_Job] = collections.deque()
        self.wakeup, self._wake = socket.socketpair()  # the loop polls ``wakeup``
        self.wakeup.setblocking(False)
        self._wake.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="statehub-store", daemon=True)
        self._pending = 0

    def start(self) -> None:
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs submitted whose callback has not run yet (server thread)."""
        return self._pending

    def submit(self, work: Callable[[Store], T], done: Callable[[Outcome[T]], None]) -> None:
        """Run ``work(store)`` on the store thread; ``done(outcome)`` later, from ``finish()``."""
        self._pending += 1
        self._jobs.put(_Job(work, done))

    def run_here(self, work: Callable[[Store], T]) -> Outcome[T]:
        """Run ``work(store)`` in the caller's thread, now; only while no job is pending (the thread is idle).

        A small batch skips the two thread hand-offs (tens of microseconds each,
        more on a busy machine) and the GIL passing back and forth, which cost
        more than pipelining a small commit buys (hub.dispatch).
        """
        if self._pending:
            raise RuntimeError("the store thread has jobs: run_here would race it")
        try:
            return Outcome(value=work(self.store))
        except BaseException as exc:
            return Outcome(error=exc)

    def finish(self, *, woken: bool = True) -> None:
        """Run the callbacks of every finished job, in submission order (server thread).

        ``woken``: the poll saw ``wakeup`` readable, so it is drained; otherwise not
        (a failed recv per turn costs microseconds; a byte left behind only wakes the loop once more).
        """
        if woken:
            with contextlib.suppress(BlockingIOError):
                while self.wakeup.recv(4096):
                    pass
        while self._done:
            job = self._done.popleft()
            self._pending -= 1
            assert job.outcome is not None
            job.done(job.outcome)

    def stop(self) -> None:
        """Let the thread finish every job submitted, then end it; ``finish()`` after this runs the last callbacks."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def close(self) -> None:
        self.stop()
        self.wakeup.close()
        self._wake.close()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.outcome = Outcome(value=job.work(self.store))
            except BaseException as exc:  # handed to the loop, which decides what it means
                job.outcome = Outcome(error=exc)
            self._done.append(job)
            with contextlib.suppress(BlockingIOError, OSError):  # full: the loop is already woken
                self._wake.send(b"\0")
