"""Noticing that a person saved the file, and reading it only once the save is whole.

We poll: every ``interval`` the adapter stats the file (modification time, size,
inode).  One stat of one file several times a second costs next to nothing, and
polling works the same on every filesystem: Linux and macOS disks, Termux's
shared storage (FUSE, where inotify events are unreliable), iSH (no inotify at
all) and network drives (which send no events for writes made on other
machines; their attribute cache can delay what a stat sees, see the docs).
File-event libraries would save at most one interval of latency, which the
settle time below spends anyway.

Editors save in different ways: rename a temp file over the path (a new inode),
truncate and write (the file is briefly empty or partial), or write in several
steps.  So a change is read only after the file has stayed unchanged for
``settle`` seconds, and the reader (document.py) refuses a file that is not
whole.  A file whose content we wrote ourselves, or have already handed out, is
not handed out again: that is what keeps the adapter's own rewrites from
looping back as saves.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_INTERVAL = 0.2  # seconds between stats of the file
SETTLE = 0.15  # seconds a change must hold still before the file is read
RACY_WINDOW = 2.0  # a file modified this recently may change again within one mtime tick

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


@dataclass(frozen=True)
class Signature:
    mtime_ns: int
    size: int
    inode: int


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class FileWatcher:
    """Hands out each new complete content of ``path`` once; call ``poll`` every interval."""

    def __init__(self, path: Path, settle: float = SETTLE) -> None:
        self.path = path
        self.settle = settle
        self._signature = self._stat()
        self._changed_at: float | None = float("-inf")  # read what is there at the first poll
        self._known: bytes | None = None  # digest of the content we wrote or handed out last

    def poll(self, now: float) -> bytes | None:
        """The file's content if it changed and has settled; MISSING if it is gone; else None."""
        signature = self._stat()
        if signature != self._signature:
            self._signature, self._changed_at = signature, now
            return None
        if self._changed_at is None:
            if signature is not None and self._changed_within_tick(signature):
                self._changed_at = now
            return None
        if now - self._changed_at < self.settle:
            return None
        self._changed_at = None
        if signature is None:
            self._known = None
            return MISSING  # type: ignore[no-any-return]
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self._changed_at = now  # renamed away between stat and read: look again
            return None
        if _digest(data) == self._known:
            return None
        self._known = _digest(data)
        return data

    def wrote(self, data: bytes, written: os.stat_result | None = None) -> None:
        """We just wrote ``data`` to the file: it is not a save to read back.

        ``written``: the stat of the file as we wrote it, taken before it was
        renamed into place (a rename keeps the inode, size and mtime).  A stat
        taken now would also cover a save that landed after our rename (while
        we fsynced the folder, which can take seconds on a loaded SD card), and
        that save would pass for ours.
        """
        self._known = _digest(data)
        self._signature = _signature(written) if written is not None else self._stat()
        self._changed_at = None

    def shows(self, data: bytes) -> bool:
        """True if the file's content (as last seen) is ``data``."""
        return self._known == _digest(data) and self._signature is not None

    def is_quiet(self) -> bool:
        """No change is waiting to settle and the file is as last seen."""
        return self._changed_at is None and self._stat() == self._signature

    def _changed_within_tick(self, signature: Signature) -> bool:
        """A save with the same size in the same mtime tick leaves the stat alike: compare content."""
        if time.time() - signature.mtime_ns / 1e9 > RACY_WINDOW:
            return False
        try:
            return _digest(self.path.read_bytes()) != self._known
        except OSError:
            return True

    def _stat(self) -> Signature | None:
        try:
            return _signature(os.stat(self.path))
        except FileNotFoundError:
            return None


def _signature(stat: os.stat_result) -> Signature:
    return Signature(stat.st_mtime_ns, stat.st_size, stat.st_ino)
