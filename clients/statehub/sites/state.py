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

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from statehub import StatehubError
from statehub.hub.atomic_file import write_atomically
from statehub.sites.wire import Heartbeat

log = logging.getLogger(__name__)

CURSOR_EVERY = 0.2  # seconds between cursor writes while acknowledgements stream in
STATUS_EVERY = 1.0  # seconds between status writes while nothing about the link changes
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between sessions after failures in a row


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
    heartbeat: float = 0.0  # when the uplink last sent a heartbeat (0: none yet)
    heartbeat_every: float = 0.0  # seconds between heartbeats
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


class Ledger:
    """One uplink's cursor and status, and when each is written.

    The cursor is written when it moved, at most every CURSOR_EVERY while
    acknowledgements stream in; the status when its link state or error
    changed, else at most every STATUS_EVERY: an idle uplink writes nothing
    (a Pi's SD card).
    """

    def __init__(self, state_dir: Path, scheme: str, site: str, target: str) -> None:
        name = state_name(scheme, site)
        self.target = target
        self._cursor_path = cursor_path(state_dir, name)
        self._status_path = status_path(state_dir, name)
        self.cursor = load_cursor(self._cursor_path)
        self.status = Status(site=site, target=target, epoch=self.cursor.epoch, cursor=self.cursor.rev)
        self._cursor_written = replace(self.cursor)
        self._cursor_saved = 0.0
        self._status_written = ("", "")
        self._status_saved = 0.0

    def advance(self, epoch: str, rev: int, messages: int) -> None:
        """Every message of revision ``rev`` is acknowledged: the cursor moves over it."""
        self.cursor.epoch, self.cursor.rev = epoch, rev
        self.status.forwarded += messages
        self.status.epoch, self.status.cursor = epoch, rev

    def heartbeat(self, every: float, hub_down: str) -> Heartbeat:
        """This uplink's heartbeat now: linked, its cursor, and the revision its hub was last seen at."""
        beat = Heartbeat(
            site=self.status.site,
            epoch=self.cursor.epoch,
            rev=self.cursor.rev,
            hub_rev=max(self.status.hub_rev, self.cursor.rev),
            time=time.time(),
            every=every,
            hub_down=hub_down,
        )
        self.status.heartbeat = beat.time
        return beat

    def failed(self, why: str) -> None:
        """A session ended on ``why``: said once per distinct cause, and in the status at once."""
        if self.status.link != "down" or self.status.last_error != why:
            log.warning("link to %s down: %s; resuming from revision %d", self.target, why, self.cursor.rev)
        self.status.link = "down"
        self.status.last_error, self.status.last_error_time = why, time.time()
        self.save_status()

    def save_now_and_then(self) -> None:
        if time.monotonic() - self._cursor_saved >= CURSOR_EVERY:
            self.save_cursor()
            self.save_status(now=False)

    def save_cursor(self) -> None:
        if self.cursor != self._cursor_written:
            save_cursor(self._cursor_path, self.cursor)
            self._cursor_written = replace(self.cursor)
        self._cursor_saved = time.monotonic()

    def save_status(self, *, now: bool = True) -> None:
        """Write the status; with ``now`` False only when its link state changed or STATUS_EVERY passed."""
        changed = (self.status.link, self.status.last_error) != self._status_written
        if now or changed or time.monotonic() - self._status_saved >= STATUS_EVERY:
            save_status(self._status_path, self.status)
            self._status_written = (self.status.link, self.status.last_error)
            self._status_saved = time.monotonic()


async def run_sessions(
    session: Callable[[], Awaitable[None]],
    ledger: Ledger,
    stop: asyncio.Event,
    *,
    ends: tuple[type[BaseException], ...],
    why: Callable[[BaseException], str],
) -> None:
    """Run ``session`` until ``stop`` is set; after each that ends on one of ``ends``, wait BACKOFF."""
    failures = 0
    ledger.save_status()  # `--status` finds a starting uplink too
    while not stop.is_set():
        try:
            await session()
            failures = 0
        except ends as exc:
            log.debug("the session ended", exc_info=True)
            ledger.failed(why(exc))
            failures += 1
        if failures:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=BACKOFF[min(failures, len(BACKOFF)) - 1])
    ledger.save_status()  # the last word, whatever the throttle
