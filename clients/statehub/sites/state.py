"""An uplink's durable cursor and its status, each a small JSON file replaced atomically.

The cursor (``<name>.cursor.json``) is what the uplink resumes from after any
outage: the epoch of the hub it follows, ``rev`` (every revision up to it is
acknowledged by the broker, or had nothing to forward) and ``published`` (the
last revision it forwarded: the next one's ``prev``).  It is written after
acknowledgements, at most every ``CURSOR_EVERY`` seconds while they stream in:
a cursor a little behind only means a few changes are sent again, and both
JetStream (message ids) and the centre (its link record) drop those.

The status (``<name>.status.json``) is for ``statehub uplink --status``: what a
person or a monitoring script wants to know about a process they cannot ask.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from statehub import StatehubError
from statehub.hub.atomic_file import write_atomically

CURSOR_EVERY = 0.2  # seconds between cursor writes while acknowledgements stream in


@dataclass
class Cursor:
    """Where an uplink is in its hub's feed."""

    epoch: str = ""
    rev: int = 0
    published: int = 0

    @property
    def is_new(self) -> bool:
        return not self.epoch


@dataclass
class Status:
    """What ``statehub uplink --status`` shows."""

    site: str
    target: str
    pid: int = field(default_factory=os.getpid)
    link: str = "starting"  # starting, up, down, resyncing
    epoch: str = ""
    cursor: int = 0
    hub_rev: int = 0
    lag_revisions: int = 0
    lag_seconds: float = 0.0
    forwarded: int = 0  # changes acknowledged since start
    resyncs: int = 0
    last_resync: str = ""
    last_error: str = ""
    last_error_time: float = 0.0
    updated: float = 0.0


def default_state_dir(data_dir: Path) -> Path:
    """``<data dir>/uplink``, or the user's state dir when the data dir cannot be written."""
    if os.access(data_dir, os.W_OK):
        return data_dir / "uplink"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "statehub" / "uplink"


def state_name(scheme: str, site: str) -> str:
    """One uplink per scheme and site may share a state dir: ``nats-north``, ``mqtt-north``."""
    return f"{scheme}-{site}"


def cursor_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.cursor.json"


def status_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.status.json"


def load_cursor(path: Path) -> Cursor:
    """The saved cursor, or a new one (no file yet); a damaged file is an error, never a silent restart."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Cursor()
    try:
        return msgspec.json.decode(data, type=Cursor)
    except msgspec.DecodeError as exc:
        raise StatehubError(
            f"the uplink's cursor {path} is damaged ({exc})",
            hint="move it away to start over with a full resync of this site",
        ) from None


def save_cursor(path: Path, cursor: Cursor) -> None:
    write_atomically(path, msgspec.json.encode(cursor), mode=0o644)


def save_status(path: Path, status: Status) -> None:
    status.updated = time.time()
    write_atomically(path, msgspec.json.encode(status), mode=0o644)


def load_status(path: Path) -> Status | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=Status)
    except (FileNotFoundError, msgspec.DecodeError):
        return None


def status_dict(status: Status, *, running: bool) -> dict[str, Any]:
    """The status as ``--status --json`` prints it."""
    return {**asdict(status), "running": running}
