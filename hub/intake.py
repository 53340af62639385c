"""Large requests are decoded and checked on a thread of their own, so the loop keeps serving.

A 4 MiB txn of tiny elements is four million Python objects to build and
check: tens of milliseconds at best, most of a second on a busy machine.  Done
on the server thread, it held every other client's request for that long, and
a few in a row made default-timeout clients call the hub down (issue 13, 7).
So the dispatcher hands any body of LARGE_BYTES or more to an ``Intake``
thread and goes on serving; the thread decodes and checks it, and the next
turn of the loop takes the checked write (or the refusal) back and commits
it with the others.  The thread never touches a socket or the store: it gets
bytes and hands back values, and wakes the loop through a socket pair the
loop polls.  Memory stays bounded: each REQ client has one request in flight.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import socket
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

LARGE_BYTES = 64 * 1024  # no read request is this large; a write this large may cost milliseconds

Envelope = TypeVar("Envelope")
Result = TypeVar("Result")


class Intake(Generic[Envelope, Result]):
    """Runs ``check(body)`` for submitted bodies on its own thread; ``take()`` returns what is done, in order."""

    def __init__(self, check: Callable[[bytes], Result]) -> None:
        self._check = check
        self._todo: queue.SimpleQueue[tuple[Envelope, bytes] | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[Envelope, Result]] = collections.deque()
        self.wakeup, self._wake = socket.socketpair()  # the loop polls ``wakeup``
        self.wakeup.setblocking(False)
        self._wake.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="statehub-intake", daemon=True)
        self._thread.start()

    def submit(self, envelope: Envelope, body: bytes) -> None:
        self._todo.put((envelope, body))

    def take(self, *, woken: bool = True) -> list[tuple[Envelope, Result]]:
        """Everything checked since the last call (server thread); ``woken`` as for ``Committer.finish``."""
        if woken:
            with contextlib.suppress(BlockingIOError):
                while self.wakeup.recv(4096):
                    pass
        taken = []
        while self._done:
            taken.append(self._done.popleft())
        return taken

    def close(self) -> None:
        self._todo.put(None)
        self._thread.join(5)
        self.wakeup.close()
        self._wake.close()

    def _run(self) -> None:
        while (item := self._todo.get()) is not None:
            envelope, body = item
            self._done.append((envelope, self._check(body)))
            with contextlib.suppress(BlockingIOError, OSError):  # full: the loop is already woken
                self._wake.send(b"\0")
