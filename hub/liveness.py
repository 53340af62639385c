"""Liveness: the keys with a ttl, and which of them are due to be removed.

The server thread keeps every key that has a lifetime (its write's ``ttl``,
else its schema rule's) with the revision it was tracked at and the moment
tracking began, and a heap of (deadline, key, revision).  Each committed write
pushes one entry; ``due`` pops only the entries whose deadline has passed and
drops those whose key was written or unset since, so no turn of the loop
scans every key.  Deadlines run on the monotonic clock: a wall-clock jump
neither expires nor extends a key.

The restart rule (docs/schema.md, "Liveness"): tracking begins at the later
of a key's last write and the moment the hub began tracking it (its start, or
the schema change that gave it a ttl), so a restart never expires a key at
once, and never resurrects one (an expiry is a committed ``unset``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import NamedTuple

from statehub.hub.records import Applied

EXPIRY_SOURCE = "ttl"  # the source of the hub's own unset of an expired key
RETRY_SECONDS = 1.0  # an expiry that could not commit is tried again this much later


class Tracked(NamedTuple):
    rev: int
    since: float  # monotonic time tracking began: the key's last write, or the hub's start
    ttl: float

    @property
    def deadline(self) -> float:
        return self.since + self.ttl


class Liveness:
    """The keys with a ttl and their deadlines (server thread only)."""

    def __init__(self) -> None:
        self._tracked: dict[str, Tracked] = {}
        self._heap: list[tuple[float, str, int]] = []
        self._expiring: set[str] = set()  # handed to the store thread, not yet seen unset

    def __len__(self) -> int:
        return len(self._tracked)

    def track_all(self, lifetimes: Iterable[tuple[str, int, float]], now: float) -> None:
        """Track exactly these (key, revision, ttl): at start, and after a schema change.

        A key tracked already at the same revision keeps its start (a schema
        change only changes its ttl); any other starts now.
        """
        tracked: dict[str, Tracked] = {}
        for key, rev, ttl in lifetimes:
            old = self._tracked.get(key)
            since = old.since if old is not None and old.rev == rev else now
            tracked[key] = Tracked(rev, since, ttl)
        self._tracked = tracked
        self._heap = [(entry.deadline, key, entry.rev) for key, entry in tracked.items()]
        heapq.heapify(self._heap)
        self._expiring &= tracked.keys()

    def observe(self, applied: Iterable[Applied], now: float) -> None:
        """Follow committed writes: a set with a ttl is tracked from now, anything else untracked."""
        for write in applied:
            for change in write.changes:
                self._expiring.discard(change.key)
                if change.op == "set" and change.ttl is not None:
                    entry = Tracked(change.rev, now, change.ttl)
                    self._tracked[change.key] = entry
                    heapq.heappush(self._heap, (entry.deadline, change.key, change.rev))
                else:
                    self._tracked.pop(change.key, None)

    def due(self, now: float) -> list[tuple[str, int]]:
        """The (key, revision) pairs whose deadline has passed and that are not being expired already."""
        found: list[tuple[str, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, key, rev = heapq.heappop(heap)
            entry = self._tracked.get(key)
            if entry is None or entry.rev != rev or key in self._expiring:
                continue  # written, unset or being expired since: a stale entry
            if entry.deadline > now:  # its ttl grew by a schema change
                heapq.heappush(heap, (entry.deadline, key, rev))
                continue
            self._expiring.add(key)
            found.append((key, rev))
        return found

    def retry(self, key: str, rev: int, now: float) -> None:
        """An expiry that did not commit (the store failed): try again a little later."""
        self._expiring.discard(key)
        entry = self._tracked.get(key)
        if entry is not None and entry.rev == rev:
            heapq.heappush(self._heap, (now + RETRY_SECONDS, key, rev))

    def next_deadline(self) -> float | None:
        """The earliest deadline in the heap (perhaps stale: waking early only costs a look)."""
        return self._heap[0][0] if self._heap else None
