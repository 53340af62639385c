"""Replacing the store with a snapshot: what to do when the store is damaged.

Restoring is a hub operation (only the hub writes the store): it takes the data
dir's lock, so it refuses while a hub runs.  The old store is moved aside, never
deleted.  The new store gets a new epoch, so every subscriber resyncs, and its
revision continues above every revision known anywhere in the data dir (the
snapshot, the mirror, the old store if it can still be read), so no revision
number is ever reused.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from statehub.hub.data_dir import acquire_lock, prepare_data_dir
from statehub.hub.errors import HubAlreadyRunning, StorageError
from statehub.hub.mirror import MirrorError, read_mirror
from statehub.hub.mirror_writer import write_mirror
from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import PROTOCOL_VERSION, Op, Txn
from statehub.hub.state_files import StateFile, list_snapshots
from statehub.hub.store import Store
from statehub.hub.store_reads import StoreReader


@dataclass(frozen=True)
class Restored:
    rev: int
    epoch: str
    keys: int
    moved_aside: list[Path]


def lock_for_restore(data_dir: Path) -> IO[bytes]:
    """Hold the data dir's lock for a restore (keep it until ``restore`` is done): refuse while a hub runs.

    Taken before anything is asked or changed, so a person is never asked to
    confirm a restore that cannot happen.
    """
    layout = Layout(data_dir)
    prepare_data_dir(layout)
    try:
        return acquire_lock(layout)
    except HubAlreadyRunning:
        info = read_hub_info(layout)
        who = f"a hub (pid {info.pid})" if info is not None else "a hub"
        raise HubAlreadyRunning(
            f"{who} is serving {data_dir}: restore replaces its store, so it cannot run while the hub does",
            hint="stop the hub (Ctrl-C, or `systemctl stop statehub`), then run the same restore again",
        ) from None


def restore(data_dir: Path, state: StateFile, lock: IO[bytes] | None = None) -> Restored:
    """Replace the store with ``state``; ``lock`` from ``lock_for_restore``, else it is taken here (and released)."""
    layout = Layout(data_dir)
    held = lock if lock is not None else lock_for_restore(data_dir)
    try:
        floor = max([state.rev, _readable_rev(layout.store), _mirror_rev(layout), *_snapshot_revs(data_dir)])
        moved = _move_aside(layout.store)
        prepare_data_dir(layout)  # the new store file is made 0600 before SQLite opens it (docs/security.md)
        store = Store(layout.store)
        try:
            store.raise_revision(floor)
            ops = [Op(op="set", key=key, value=value) for key, value in sorted(state.values.items())]
            rev = store.rev
            if ops:
                txn = Txn(v=PROTOCOL_VERSION, ops=ops, source="restore", user=state.name or "snapshot")
                rev = store.commit_one(txn).rev
            epoch = store.epoch
        finally:
            store.close()
        write_mirror(layout.store, layout.mirror)
        return Restored(rev, epoch, len(ops), moved)
    finally:
        held.close()


def _move_aside(store: Path) -> list[Path]:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved = []
    for path in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        if path.exists():
            target = path.with_name(f"{path.name}.replaced-{stamp}")
            path.replace(target)
            moved.append(target)
    return moved


def _readable_rev(store: Path) -> int:
    """The revision the old store reached, if it can still be read (it may be the damaged one)."""
    try:
        reader = StoreReader.open(store)
    except (StorageError, sqlite3.Error):
        return 0
    try:
        return int(reader.meta("rev"))
    except (sqlite3.Error, TypeError, ValueError):
        return 0
    finally:
        reader.close()


def _mirror_rev(layout: Layout) -> int:
    try:
        return read_mirror(layout.mirror).rev
    except (MirrorError, OSError, ValueError):
        return 0


def _snapshot_revs(data_dir: Path) -> list[int]:
    return [state.rev for _name, state in list_snapshots(data_dir)]
