"""Writing the mirror: kept current change by change, replaced atomically, off the hub's thread.

The format and the reading side are ``hub.mirror`` (clients load only that);
this module is the hub's.  The mirror thread loads the whole state once, through
``StoreReader`` on a read-only connection of its own, and keeps every key's
rendered line in memory.  After that, the server thread hands it each commit's
``Applied`` records (``MirrorWriter.apply``, an append to a deque): the thread
re-renders only the lines those changed, and writes the file from the lines it
holds, in chunks.  So a rewrite costs the join and the write of the file, not
the rendering of every key, and the mirror of 100,000 keys trails the store by
the interval plus tens of milliseconds instead of seconds.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from statehub.hub.atomic_file import write_atomically
from statehub.hub.checkpoint import Checkpointer
from statehub.hub.errors import StatehubError
from statehub.hub.log_limit import RateLimitedLog
from statehub.hub.mirror import LineRenderer, render
from statehub.hub.records import Applied, Change
from statehub.hub.store_reads import StoreReader

log = logging.getLogger(__name__)

CHUNK_LINES = 2000  # lines joined per write: bounds how long one step holds the GIL
_CREATED = re.compile(rb" created=(\d+) ")


def write_mirror(store_path: Path, mirror_path: Path, mode: int = 0o600) -> int:
    """Write the mirror (file mode ``mode``) from one consistent read of the store; return its revision."""
    reader = StoreReader.open(store_path)
    try:
        with reader.snapshot():  # rev and rows from the same instant
            epoch, rev = str(reader.meta("epoch")), int(reader.meta("rev"))
            data = render(epoch, rev, reader.entries(), time.time())
    finally:
        reader.close()
    write_atomically(mirror_path, data, mode=mode)
    return rev


class MirrorLines:
    """The mirror's lines at one revision, in key order, updated by applying commits."""

    def __init__(self, epoch: str, rev: int, lines: dict[str, bytes]) -> None:
        self.epoch = epoch
        self.rev = rev
        self._lines = lines
        self._keys = sorted(lines)
        self._unsorted = False
        self._renderer = LineRenderer()
        self.rendered = len(lines)  # lines rendered since loading: what a rewrite costs beyond the join

    @classmethod
    def load(cls, store_path: Path) -> MirrorLines:
        """Every key's line, read in one consistent snapshot of the store."""
        renderer = LineRenderer()
        reader = StoreReader.open(store_path)
        try:
            with reader.snapshot():
                epoch, rev = str(reader.meta("epoch")), int(reader.meta("rev"))
                lines = {entry.key: renderer.line(*entry) for entry in reader.entries()}
        finally:
            reader.close()
        return cls(epoch, rev, lines)

    def apply(self, applied: list[Applied]) -> None:
        """Apply commits' writes (what the server thread hands over, taken at once)."""
        pending = PendingChanges()
        pending.add(applied)
        self.apply_latest(*pending.take())

    def apply_latest(self, latest: dict[str, Latest], rev: int) -> None:
        """Apply each key's latest change; those the load already read (revision <= ours) are skipped."""
        for key, change in latest.items():
            if change.rev > self.rev:
                self._apply_change(key, change)
        self.rev = max(self.rev, rev)

    def _apply_change(self, key: str, change: Latest) -> None:
        old = self._lines.get(key)
        if change.blob is None:
            if old is not None:
                del self._lines[key]
                self._unsorted = True
            return
        created = change.created_rev or (change.rev if old is None else _created_rev(old, change.rev))
        self._lines[key] = self._renderer.line(
            key, change.blob, change.rev, created, change.time, change.source, change.user
        )
        self.rendered += 1
        if old is None:
            self._unsorted = True

    def chunks(self, written: float) -> Iterator[bytes]:
        """The mirror text: the header, then the lines in key order, CHUNK_LINES at a time."""
        if self._unsorted:
            self._keys = sorted(self._lines)  # nearly sorted already: timsort takes a pass
            self._unsorted = False
        yield self._renderer.header(self.epoch, self.rev, len(self._keys), written)
        lines = self._lines
        for start in range(0, len(self._keys), CHUNK_LINES):
            yield b"".join([lines[key] for key in self._keys[start : start + CHUNK_LINES]])

    def __len__(self) -> int:
        return len(self._lines)


class Latest(NamedTuple):
    """A key's last change since the mirror thread last took the pending ones (``blob`` None: unset)."""

    blob: bytes | None
    rev: int
    created_rev: int  # 0: not known from these changes (the key's line knows)
    time: float
    source: str
    user: str


class PendingChanges:
    """The changes the server thread handed over, one per key: memory bounded by the keys, not by the writes.

    The mirror thread may pause for a while between rewrites; keeping every
    commit's records until then held every value written meanwhile (and the
    value it replaced): 200 writes of 500 KB grew the hub by ~90 MiB.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Latest] = {}
        self._rev = -1

    def add(self, applied: list[Applied]) -> None:
        with self._lock:
            for write in applied:
                for change in write.changes:
                    self._latest[change.key] = self._latest_of(change)
                if write.changes:
                    self._rev = max(self._rev, write.rev)

    def _latest_of(self, change: Change) -> Latest:
        created = 0
        if change.blob is not None:
            before = self._latest.get(change.key)
            if change.prev_rev == 0:
                created = change.rev
            elif before is not None and before.blob is not None:
                created = before.created_rev
        return Latest(change.blob, change.rev, created, change.time, change.source, change.user)

    def take(self) -> tuple[dict[str, Latest], int]:
        """Everything added since the last take, and the newest revision among it."""
        with self._lock:
            latest, self._latest = self._latest, {}
            return latest, self._rev


def _created_rev(line: bytes, default: int) -> int:
    match = _CREATED.search(line)
    return int(match.group(1)) if match else default


class MirrorWriter:
    """Keeps the mirror current off the hub's thread, coalescing bursts of commits.

    The server thread calls ``apply(applied)`` after each commit.  The mirror is
    rewritten once the commits pause for PAUSE seconds, at most once per
    ``interval``, and at the latest when it is ``MAX_LAG_INTERVALS * interval``
    behind (1 s by default) under a stream of writes that never pauses; for a
    very large store, also no sooner than the pause that keeps rewriting to at
    most 1/DUTY_SHARE of the time.  Waiting for a pause keeps the rewrite's
    fsyncs off the commits' fsyncs: a commit that overlapped a rewrite took ~15
    times as long at the median (docs/performance.md).  A rewrite joins lines
    already rendered, so it is short even at 100,000 keys.

    A failed rewrite (the folder deleted or read-only) is logged, then once a
    minute while it lasts, and retried; a failed load of the store is retried
    the same way.  The store is the authority, so a mirror fault never stops the hub.
    """

    DUTY_SHARE = 5
    PAUSE = 0.02  # seconds without a commit: the writes paused, rewrite now
    MAX_LAG_INTERVALS = 5  # under writes that never pause, rewrite when this many intervals behind

    def __init__(self, store_path: Path, mirror_path: Path, interval: float, *, mode: int = 0o600) -> None:
        self._store_path = store_path
        self._mirror_path = mirror_path
        self._mode = mode  # owner-only unless the operator shares the mirror (docs/security.md)
        self._interval = interval
        self._pending = PendingChanges()
        self._lines: MirrorLines | None = None
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statehub-mirror", daemon=True)
        self._faults = RateLimitedLog(log)
        self.rewrites = 0  # mirror files written since start
        self.written_rev = -1  # the revision of the last mirror written
        self.checkpointer = Checkpointer(store_path)  # WAL checkpoints: this thread runs them
        self._behind_since: float | None = None  # the first commit the mirror does not show yet

    def start(self) -> None:
        self._thread.start()

    def apply(self, applied: list[Applied]) -> None:
        """Hand over one commit's writes (server thread); the mirror will show them."""
        if applied:
            self._pending.add(applied)
        self.checkpointer.committed()
        if self._behind_since is None:
            self._behind_since = time.monotonic()
        self._wanted.set()

    def request(self) -> None:
        """Ask for a rewrite even without new commits (the first mirror, a mirror deleted)."""
        self._wanted.set()

    def stop(self) -> None:
        """Stop the thread (if it was started) and write one last mirror in the caller's thread."""
        self._stopping.set()
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join()
        self._write()

    def _run(self) -> None:
        # The loop's own condition too: a stop that comes while a rewrite waits for a pause has its
        # ``_wanted`` cleared by that rewrite, and only ``_stopping`` still says it came.
        while not self._stopping.is_set():
            if not self._wanted.wait(self.checkpointer.quiet if self.checkpointer.deferred else None):
                self.checkpointer.maybe_checkpoint()  # no commit for a while: the deferred checkpoint's moment
                continue
            if self._stopping.is_set():
                return
            if self.written_rev >= 0:  # the first mirror is written at start, whatever the writers do
                self._wait_for_pause()
            self._wanted.clear()
            self._behind_since = None  # set again by the next commit, which this rewrite may not show
            self._load()  # once: not a rewrite's cost, so not paced like one
            started = time.monotonic()
            self._write()
            took = time.monotonic() - started
            self._stopping.wait(max(self._interval, (self.DUTY_SHARE - 1) * took))

    def _wait_for_pause(self) -> None:
        """Until no commit came for PAUSE seconds, or the mirror is the longest it may be behind."""
        since = self._behind_since if self._behind_since is not None else time.monotonic()
        deadline = since + self.MAX_LAG_INTERVALS * self._interval
        while not self._stopping.is_set():
            quiet = self.checkpointer.quiet_for()
            now = time.monotonic()
            if quiet >= self.PAUSE or now >= deadline:
                return
            self._stopping.wait(min(self.PAUSE - quiet, deadline - now))

    def _write(self) -> None:
        try:
            lines = self._current()
            write_atomically(self._mirror_path, lines.chunks(time.time()), mode=self._mode)
        except Exception as exc:  # whatever it is, the thread must live to try again
            self._faults.report(
                "write",
                logging.ERROR,
                f"cannot write the mirror {self._mirror_path}: {exc}; will retry",
                exc_info=not isinstance(exc, (OSError, sqlite3.Error, StatehubError)),
            )
            self._wanted.set()
            return
        self.rewrites += 1
        self.written_rev = lines.rev
        if self._faults.clear("write"):
            log.warning("mirror %s written again at revision %d", self._mirror_path, lines.rev)
        self.checkpointer.maybe_checkpoint()

    def _load(self) -> None:
        if self._lines is not None:
            return
        try:
            self._lines = MirrorLines.load(self._store_path)
        except Exception:  # _write tries again, and reports it
            return

    def _current(self) -> MirrorLines:
        """The lines with every commit handed over so far applied (loading the store the first time)."""
        if self._lines is None:
            self._lines = MirrorLines.load(self._store_path)
        lines = self._lines
        try:
            lines.apply_latest(*self._pending.take())
        except Exception:
            self._lines = None  # a bug: start again from the store rather than write a wrong mirror
            raise
        return lines
