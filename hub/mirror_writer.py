"""Writing the mirror: one consistent read of the store, rendered and replaced atomically, off the hub's thread.

The format and the reading side are ``hub.mirror`` (clients load only that);
this module is the hub's: it reads the store through ``StoreReader`` on a
read-only connection of its own, so the mirror thread never touches the
server thread's connection.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from statehub.hub.atomic_file import write_atomically
from statehub.hub.errors import StatehubError
from statehub.hub.log_limit import RateLimitedLog
from statehub.hub.mirror import render
from statehub.hub.store_reads import StoreReader

log = logging.getLogger(__name__)


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


class MirrorWriter:
    """Rewrites the mirror off the hub's thread, coalescing bursts of commits.

    After ``request()``, the mirror is rewritten within ``interval`` seconds plus
    the time one rewrite takes, or, for a large store, within the pause that keeps
    rewriting to at most 1/DUTY_SHARE of the time: rewriting 100,000 keys takes
    about half a second of the hub's CPU (and its GIL), which back to back would
    halve the hub's write throughput under sustained load.

    A failed rewrite (the folder deleted or read-only, the store gone) is logged,
    then once a minute while it lasts, and retried; the store is the authority,
    so a mirror fault never stops the hub.
    """

    DUTY_SHARE = 5

    def __init__(self, store_path: Path, mirror_path: Path, interval: float, *, mode: int = 0o600) -> None:
        self._store_path = store_path
        self._mirror_path = mirror_path
        self._mode = mode  # owner-only unless the operator shares the mirror (docs/security.md)
        self._interval = interval
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statehub-mirror", daemon=True)
        self._faults = RateLimitedLog(log)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        """Stop the thread (if it was started) and write one last mirror in the caller's thread."""
        self._stopping.set()
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join()
        self._write()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping.is_set():
                return
            self._wanted.clear()
            started = time.monotonic()
            self._write()
            took = time.monotonic() - started
            self._stopping.wait(max(self._interval, (self.DUTY_SHARE - 1) * took))

    def _write(self) -> None:
        try:
            rev = write_mirror(self._store_path, self._mirror_path, self._mode)
        except Exception as exc:  # whatever it is, the thread must live to try again
            self._faults.report(
                "write",
                logging.ERROR,
                f"cannot write the mirror {self._mirror_path}: {exc}; will retry",
                exc_info=not isinstance(exc, (OSError, sqlite3.Error, StatehubError)),
            )
            self._wanted.set()
            return
        if self._faults.clear("write"):
            log.warning("mirror %s written again at revision %d", self._mirror_path, rev)
