"""The web process's view of the hub: one replica, a bounded log of recent revisions, and listeners.

Everything here runs in the event loop's thread only (the follower hands events
over with ``call_soon_threadsafe``), so nothing needs a lock.

Each committed revision becomes an ``Entry`` whose id is ``epoch:rev``.  The
log keeps the most recent entries since the last time the replica was rebuilt
from a snapshot; a reader that names an id inside it gets exactly the entries
after it, anything else gets one resync (the state, replaced whole).  Listeners
(one per SSE stream) each have a bounded queue: one that falls too far behind is
dropped, and its browser reconnects with its last id, served from the log.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from statehub import Changed, Item, apply_change

State = Literal["connecting", "live", "down"]


@dataclass(frozen=True)
class Entry:
    """One complete revision: the changes it made, in index order."""

    epoch: str
    rev: int
    changes: tuple[Changed, ...]
    # SSE text per prefix, made once however many streams send it (see statehub.web.sse).
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        return event_id(self.epoch, self.rev)

    def under(self, prefix: str) -> tuple[Changed, ...]:
        return self.changes if not prefix else tuple(c for c in self.changes if c.key.startswith(prefix))


@dataclass(frozen=True)
class Status:
    """The connection truth the page shows: live at a revision, or down (and since when)."""

    state: State
    epoch: str
    rev: int
    reason: str = ""
    since: float = field(default_factory=time.time)  # when this state began
    mirror_rev: int | None = None  # with state "down": what the mirror file holds
    mirror_written: float | None = None


@dataclass(frozen=True)
class Resync:
    """Replace your state: these items are everything under your prefix at ``epoch:rev``."""

    epoch: str
    rev: int
    reason: str

    @property
    def id(self) -> str:
        return event_id(self.epoch, self.rev)


Message = Entry | Status | Resync


def event_id(epoch: str, rev: int) -> str:
    return f"{epoch}:{rev}"


def parse_event_id(text: str | None) -> tuple[str, int] | None:
    """``epoch:rev`` from a Last-Event-ID header; None when absent or malformed."""
    if not text:
        return None
    epoch, colon, rev = text.strip().rpartition(":")
    if not colon or not epoch or not rev.isdigit():
        return None
    return epoch, int(rev)


class Listener:
    """One SSE stream's bounded queue.  ``dropped`` once it overflowed: the stream ends, the client resumes."""

    def __init__(self, prefix: str, capacity: int) -> None:
        self.prefix = prefix
        self.dropped = False
        self.pending: deque[Message] = deque()
        self.wake = asyncio.Event()
        self._capacity = capacity

    def offer(self, message: Message) -> None:
        if self.dropped:
            return
        if isinstance(message, Entry) and not message.under(self.prefix):
            return
        if len(self.pending) >= self._capacity:
            self.dropped = True
        else:
            self.pending.append(message)
        self.wake.set()


class Feed:
    """The replica, the log and the listeners of one web process."""

    def __init__(self, *, log_size: int = 10_000, queue_size: int = 1_000) -> None:
        self.items: dict[str, Item] = {}
        self.status = Status("connecting", "", 0, "waiting for the hub")
        self.resyncs = 0
        self.dropped_listeners = 0
        self.closing = False
        self._log: deque[Entry] = deque()
        self._log_changes = 0
        self._log_size = log_size
        self._base = (0, "")  # the revision and epoch the log starts after
        self._queue_size = queue_size
        self._listeners: set[Listener] = set()

    @property
    def rev(self) -> int:
        return self.status.rev

    @property
    def epoch(self) -> str:
        return self.status.epoch

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    # --- the follower's side --------------------------------------------------------

    def apply(self, epoch: str, rev: int, changes: Iterable[Changed]) -> None:
        """A complete revision from the hub, the next after ``self.rev``."""
        entry = Entry(epoch, rev, tuple(changes))
        for change in entry.changes:
            self._apply_change(change)
        self._remember(entry)
        since = self.status.since if self.status.state == "live" else time.time()
        self.status = Status("live", epoch, rev, since=since)
        self._publish(entry)

    def replace(self, items: Iterable[Item], status: Status, reason: str) -> None:
        """The state was rebuilt (a snapshot, or the mirror) at ``status``'s revision: every listener resyncs.

        A rebuild that lands on the revision we already hold changes nothing, so
        listeners only hear the new status.
        """
        same = (status.epoch, status.rev) == (self.status.epoch, self.status.rev) and self.status.rev > 0
        self.items = {item.key: item for item in items}
        self.status = status
        if not same:
            self._log.clear()
            self._log_changes = 0
            self._base = (status.rev, status.epoch)
            self.resyncs += 1
            self._publish(Resync(status.epoch, status.rev, reason))
        self._publish(status)

    def mark(self, status: Status) -> None:
        """The connection changed (down, back) without changing the state."""
        self.status = status
        self._publish(status)

    # --- the readers' side --------------------------------------------------------------

    def since(self, epoch: str, rev: int, prefix: str = "") -> list[Entry] | None:
        """The entries after ``epoch:rev`` under ``prefix``; None when the log cannot tell (resync)."""
        if epoch != self.status.epoch or rev > self.status.rev:
            return None
        base_rev, base_epoch = self._base
        if base_epoch != epoch or rev < base_rev:
            return None
        return [entry for entry in self._log if entry.rev > rev and entry.under(prefix)]

    def items_under(self, prefix: str) -> list[Item]:
        return sorted(
            (item for key, item in self.items.items() if key.startswith(prefix)), key=lambda i: i.key
        )

    def listen(self, prefix: str) -> Listener:
        listener = Listener(prefix, self._queue_size)
        self._listeners.add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def close(self) -> None:
        """The server is stopping: every stream ends after what it has queued."""
        self.closing = True
        for listener in self._listeners:
            listener.wake.set()

    # --- internals ------------------------------------------------------------------------

    def _apply_change(self, change: Changed) -> None:
        apply_change(self.items, change)

    def _remember(self, entry: Entry) -> None:
        self._log.append(entry)
        self._log_changes += max(1, len(entry.changes))
        while self._log_changes > self._log_size and len(self._log) > 1:
            gone = self._log.popleft()
            self._log_changes -= max(1, len(gone.changes))
            self._base = (gone.rev, gone.epoch)

    def _publish(self, message: Message) -> None:
        for listener in list(self._listeners):
            listener.offer(message)
            if listener.dropped:
                self._listeners.discard(listener)
                self.dropped_listeners += 1
