"""WAL checkpoints off the write path, and out of the way of a stream of writes.

The hub's write connection never checkpoints inside a commit (``hub.store_file``
only keeps SQLite's as a backstop); the mirror thread does, with PASSIVE, which
never blocks a writer.  But a checkpoint copies pages into the store file and
fsyncs it, and that fsync competes with the commits' fsyncs for the disk: run
after every mirror rewrite while clients wrote back to back, it was one of the
things that delayed an acknowledgement now and then (docs/performance.md).  So
a ``Checkpointer`` runs one only when the WAL holds a good amount not yet copied
back, and then preferably once the writes pause; only a large backlog is
checkpointed in the middle of a stream.

The backlog is read from the wal-index (the ``-shm`` file): its header's
``mxFrame`` (frames in the WAL) less ``nBackfill`` (frames already copied back),
both 32-bit in the machine's byte order (https://www.sqlite.org/walformat.html).
The WAL file's size says nothing about it: the file keeps its size when SQLite
starts writing it again from the beginning.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import time
from pathlib import Path

from statehub.hub.log_limit import RateLimitedLog

log = logging.getLogger(__name__)

CHECKPOINT_FRAMES = 1024  # ~4 MiB of WAL not yet copied back: worth a checkpoint once writes pause
FORCE_FRAMES = 8192  # ~32 MiB: checkpoint now, writes or not (SQLite's own backstop is at 16,384)
QUIET_SECONDS = 0.05  # no commit for this long: the writes have paused

_MX_FRAME = struct.Struct("=I")  # WalIndexHdr.mxFrame, at offset 16 of the wal-index
_N_BACKFILL_OFFSET = 96  # WalCkptInfo.nBackfill follows the header's two 48-byte copies


def wal_backlog(store_path: Path) -> int | None:
    """Frames in the WAL of ``store_path`` not yet copied into the store file; None if unknown."""
    shm = store_path.with_name(store_path.name + "-shm")
    try:
        with shm.open("rb") as f:
            head = f.read(_N_BACKFILL_OFFSET + 4)
    except OSError:
        return None
    if len(head) < _N_BACKFILL_OFFSET + 4:
        return None
    frames: int = _MX_FRAME.unpack_from(head, 16)[0]
    backfilled: int = _MX_FRAME.unpack_from(head, _N_BACKFILL_OFFSET)[0]
    return max(0, frames - backfilled)


class Checkpointer:
    """Decides when the mirror thread checkpoints, and does it.

    ``committed()`` is called on the server thread after each commit (an
    attribute write); ``maybe_checkpoint()`` on the mirror thread.
    """

    def __init__(self, store_path: Path, *, quiet: float = QUIET_SECONDS) -> None:
        self._store_path = store_path
        self.quiet = quiet  # seconds without a commit that count as a pause
        self._last_commit = 0.0
        self._faults = RateLimitedLog(log)
        self.checkpoints = 0  # run since start
        self.deferred = False  # a backlog waits for the writes to pause

    def committed(self) -> None:
        self._last_commit = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last commit."""
        return time.monotonic() - self._last_commit

    def maybe_checkpoint(self) -> None:
        """Checkpoint if the backlog is worth it and the writes paused, or if it is large."""
        backlog = wal_backlog(self._store_path)
        if backlog is None:  # no wal-index to read: fall back to checkpointing whenever asked
            backlog = CHECKPOINT_FRAMES
        if backlog < CHECKPOINT_FRAMES:
            self.deferred = False
            return
        if backlog < FORCE_FRAMES and self.quiet_for() < self.quiet:
            self.deferred = True
            return
        self.deferred = False
        self._checkpoint()

    def _checkpoint(self) -> None:
        try:
            # mode=rw: never create a store file where the hub's is gone (the store thread writes it back).
            conn = sqlite3.connect(f"file:{self._store_path}?mode=rw", uri=True, isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout = 1000")
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            self._faults.report("checkpoint", logging.WARNING, f"cannot checkpoint {self._store_path}: {exc}")
            return
        self.checkpoints += 1
        self._faults.clear("checkpoint")
