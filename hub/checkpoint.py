"""WAL checkpoints: out of the way of acknowledgements, and often enough that the WAL is reused.

A commit appends its pages to the WAL and fsyncs it.  While the WAL file grows,
that fsync also has to write the file's new size (the file system's journal), a
second write to the disk per commit: in one process, the same 5-page commit took
591 µs at the median appending to a growing WAL against 405 µs overwriting a WAL
file already that large (docs/performance.md).  SQLite starts writing the WAL
again from its beginning, at the same size, after a checkpoint has copied every
frame back into the store file.  So:

- ``WalBound`` (server thread) says when the WAL holds BOUND_FRAMES not yet
  copied back; the store thread then checkpoints on the write connection, right
  after a batch is acknowledged and published (no acknowledgement waits for it,
  and no commit runs meanwhile, so every frame is copied and the next commit
  starts the WAL over).  Under a steady stream the WAL stays ~16 MiB and each
  commit overwrites it in place.  A checkpoint takes a millisecond or two, and
  the writes that arrive meanwhile wait for it: at 4 MiB that was one write in
  200 and showed in the p99; at 16 MiB it is one in 800.
- ``Checkpointer`` (the mirror thread) is the backstop: a backlog the store
  thread could not copy whole (a reader held an old snapshot) is checkpointed
  once the writes pause, or at once when large.  SQLite's own checkpoint inside
  a COMMIT is kept only as the last resort (hub.store_file): it made the write
  that triggered it wait.

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

BOUND_FRAMES = 4096  # ~16 MiB not yet copied back: the store thread checkpoints between commits
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


class WalBound:
    """Whether the store thread should checkpoint now (server thread: ``due()`` once per commit)."""

    LOOK_EVERY = 16  # commits between two reads of the backlog (a file read each)

    def __init__(self, store_path: Path, *, frames: int = BOUND_FRAMES) -> None:
        self._store_path = store_path
        self._frames = frames
        self._commits = 0

    def due(self) -> bool:
        self._commits += 1
        if self._commits < self.LOOK_EVERY:
            return False
        self._commits = 0
        backlog = wal_backlog(self._store_path)
        return backlog is not None and backlog >= self._frames


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
