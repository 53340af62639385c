"""WAL checkpoints: the backlog read from the wal-index; the store thread bounds the WAL; the backstop runs when writes pause."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from statehub.client import Client
from statehub.hub.checkpoint import BOUND_FRAMES, CHECKPOINT_FRAMES, Checkpointer, WalBound, wal_backlog
from statehub.hub.protocol import Op, Set
from statehub.hub.store import Store
from statehub.testing import HubProcess


def _fill(store: Store, writes: int) -> None:
    for i in range(writes):
        store.commit([Set(v=1, key=f"k{i % 10}", value={"i": i})])


def _sqlite_backlog(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        # A checkpoint that copies nothing: its counts say how many frames are in the WAL and copied back.
        _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    return int(frames) - int(copied)


def test_the_backlog_read_from_the_wal_index_is_what_sqlite_counts(tmp_path: Path) -> None:
    """wal_backlog counts the WAL's frames not yet copied back, and 0 right after a checkpoint."""
    store = Store(tmp_path / "state.db")
    try:
        _fill(store, 40)
        backlog = wal_backlog(tmp_path / "state.db")
        assert backlog is not None and backlog >= 40
        assert _sqlite_backlog(tmp_path / "state.db") == 0  # that PRAGMA checkpointed everything
        assert wal_backlog(tmp_path / "state.db") == 0
    finally:
        store.close()


def test_a_store_without_a_wal_index_has_no_known_backlog(tmp_path: Path) -> None:
    """No -shm file (no store opened there) reads as unknown, not as an empty WAL."""
    assert wal_backlog(tmp_path / "state.db") is None


def test_a_backlog_is_checkpointed_when_writes_pause_and_deferred_while_they_stream(tmp_path: Path) -> None:
    """While commits are recent the checkpoint waits (deferred); once they pause it runs and empties the WAL."""
    store = Store(tmp_path / "state.db")
    try:
        _fill(store, CHECKPOINT_FRAMES // 3 + 50)  # ~4 frames a write: past the threshold
        streaming = Checkpointer(tmp_path / "state.db", quiet=3600.0)
        streaming.committed()
        streaming.maybe_checkpoint()
        assert streaming.deferred and streaming.checkpoints == 0
        assert (wal_backlog(tmp_path / "state.db") or 0) >= CHECKPOINT_FRAMES

        paused = Checkpointer(tmp_path / "state.db", quiet=0.0)
        paused.maybe_checkpoint()
        assert not paused.deferred and paused.checkpoints == 1
        assert wal_backlog(tmp_path / "state.db") == 0
    finally:
        store.close()


def test_a_small_backlog_is_left_alone(tmp_path: Path) -> None:
    """Below the threshold nothing is checkpointed, however quiet the hub is."""
    store = Store(tmp_path / "state.db")
    try:
        _fill(store, 5)
        checkpointer = Checkpointer(tmp_path / "state.db", quiet=0.0)
        checkpointer.maybe_checkpoint()
        assert checkpointer.checkpoints == 0 and not checkpointer.deferred
        assert (wal_backlog(tmp_path / "state.db") or 0) > 0
    finally:
        store.close()


def test_a_stream_of_writes_keeps_the_wal_bounded_because_the_store_thread_checkpoints_between_commits(
    tmp_path: Path,
) -> None:
    """300 txns back to back (~50 MB of pages): the WAL file stays under 24 MiB and its backlog near the bound.

    Before, checkpoints waited for the writes to pause, so the WAL file grew with
    every commit of a stream (to ~55 MB here, 64 MiB at SQLite's backstop), and a
    growing file costs each commit's fsync a second write (hub.checkpoint).
    """
    with HubProcess(tmp_path / "data") as hub, Client(hub.data_dir, timeout=30) as client:
        for i in range(300):  # each txn: 20 values of 4,000 bytes, in kv and in history
            client.txn([Op(op="set", key=f"stream.k{j}", value=f"{i:04d}" + "x" * 3996) for j in range(20)])
        wal = hub.data_dir / "state.db-wal"
        assert wal.stat().st_size < 24 * 1024 * 1024, f"the WAL grew to {wal.stat().st_size / 1e6:.1f} MB"
        backlog = wal_backlog(hub.data_dir / "state.db")
        assert backlog is not None and backlog < BOUND_FRAMES + WalBound.LOOK_EVERY * 100
        assert client.get("stream.k19").value.startswith("0299")
