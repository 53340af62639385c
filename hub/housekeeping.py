"""The loop's periodic chores, and the guard that keeps a failing chore from ending the loop.

Between requests, once a heartbeat interval, the hub checks that its files
are still in place, applies writes queued while it was down, and publishes a
heartbeat.  Any of these can meet a broken environment (the data dir deleted
or replaced by a file, an unreadable inbox, a full disk); none of them may
take the hub down, since reads (and often writes) are still served.  A
failing chore is logged at once, then once a minute while it keeps failing,
and again when it works.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from statehub.hub import inbox
from statehub.hub.errors import InvalidRequest, StatehubError
from statehub.hub.log_limit import RateLimitedLog
from statehub.hub.records import Applied
from statehub.hub.rules import check_write
from statehub.hub.store import Store

log = logging.getLogger(__name__)

INBOX_BATCH = 200  # queued writes committed per chore turn: bounds the turn, one fsync for them all

# Faults of the environment, which the message explains; anything else is a bug and gets a traceback.
_EXPECTED = (StatehubError, OSError, sqlite3.Error)


class Chores:
    """Runs chores so that an exception is logged (rate-limited) instead of raised."""

    def __init__(self) -> None:
        self._faults = RateLimitedLog(log)

    def run(self, name: str, chore: Callable[[], object]) -> None:
        try:
            chore()
        except Exception as exc:
            detail = exc.message if isinstance(exc, StatehubError) else f"{type(exc).__name__}: {exc}"
            self._faults.report(
                name,
                logging.ERROR,
                f"{name} failed: {detail}; the hub keeps serving and tries again",
                exc_info=not isinstance(exc, _EXPECTED),
            )
        else:
            if self._faults.clear(name):
                log.warning("%s works again", name)


def apply_inbox(data_dir: Path, store: Store, limit: int = INBOX_BATCH) -> list[Applied]:
    """Commit up to ``limit`` of the writes queued while the hub was down, in the order they were made.

    They are committed in one transaction (one fsync for the batch), so a
    thousand queued files take a few turns of a few milliseconds each, with
    requests served in between, not one turn of a thousand fsyncs.  A write
    that is refused (invalid, or a compare-and-set that no longer holds) moves
    to rejected/ with the reason.  When the store cannot commit, the
    StorageError is raised and the batch waits for the next turn.  Runs on the
    store thread; returns what was applied, for the loop to publish.
    """
    batch = []
    for queued in inbox.pending(data_dir, limit):
        if queued.write is None:
            inbox.reject(data_dir, queued, queued.reason)
            continue
        try:
            check_write(queued.write)
        except InvalidRequest as exc:
            inbox.reject(data_dir, queued, f"invalid: {exc}")
            continue
        batch.append(queued)
    if not batch:
        return []
    results = store.commit([queued.write for queued in batch if queued.write is not None])
    applied = []
    for queued, result in zip(batch, results, strict=True):
        if isinstance(result, Applied):
            applied.append(result)
            queued.path.unlink()
            log.info("queued write %s applied at revision %d", queued.path.name, result.rev)
        else:
            inbox.reject(data_dir, queued, result.message)
            log.warning("queued write %s refused: %s", queued.path.name, result.message)
    return applied
