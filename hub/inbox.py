"""Queued writes: changes made while the hub was down, applied when it returns.

A client that cannot reach the hub may write its change into ``inbox/`` in the
data dir (atomically, one JSON file per write, named so they sort in the order
they were made).  Each carries the revisions its writer last saw as
compare-and-set conditions, so a queued change never overwrites a newer one.
The hub applies the inbox at start and then every heartbeat; a refused change
moves to ``rejected/`` beside a ``.reason.txt`` saying why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from statehub.hub.atomic_file import write_atomically
from statehub.hub.protocol import WriteRequest


@dataclass(frozen=True)
class QueuedWrite:
    path: Path
    write: WriteRequest | None  # None when the file cannot be read
    reason: str = ""  # for rejected writes, and unreadable ones


def inbox_dir(data_dir: Path) -> Path:
    return data_dir / "inbox"


def rejected_dir(data_dir: Path) -> Path:
    return data_dir / "rejected"


def enqueue(data_dir: Path, write: WriteRequest) -> Path:
    """Store ``write`` in the inbox; the file name orders it after every earlier one."""
    folder = inbox_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{time.time_ns():020d}-{write.request_id or 'write'}.json"
    write_atomically(path, msgspec.json.encode(write) + b"\n")
    return path


def pending(data_dir: Path, limit: int | None = None) -> list[QueuedWrite]:
    """Queued writes in the order they were made (the first ``limit`` of them)."""
    return [_load(path) for path in sorted(inbox_dir(data_dir).glob("*.json"))[:limit]]


def rejected(data_dir: Path) -> list[QueuedWrite]:
    found = []
    for path in sorted(rejected_dir(data_dir).glob("*.json")):
        reason_file = path.with_suffix(".reason.txt")
        reason = reason_file.read_text(encoding="utf-8").strip() if reason_file.exists() else ""
        found.append(QueuedWrite(path, _load(path).write, reason))
    return found


def _load(path: Path) -> QueuedWrite:
    try:
        return QueuedWrite(path, msgspec.json.decode(path.read_bytes(), type=WriteRequest))
    except (OSError, msgspec.MsgspecError) as exc:
        return QueuedWrite(path, None, f"unreadable queued write: {exc}")


def reject(data_dir: Path, queued: QueuedWrite, reason: str) -> Path:
    """Move a queued write to rejected/, with the reason beside it."""
    folder = rejected_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = folder / queued.path.name
    write_atomically(target.with_suffix(".reason.txt"), reason.encode() + b"\n")
    queued.path.replace(target)
    return target
