"""Reading the store: every query that does not change it, in one place.

The hub's Store reads through these on its write connection; the mirror
thread and restore open a read-only connection of their own with
``StoreReader.open`` and use the same queries, so the SQL that knows the
tables lives here and in ``hub.store`` only.  Results are the records of
``hub.records``: values stay the bytes the store holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from statehub.hub.errors import InvalidRequest, NotFound, StorageError
from statehub.hub.records import Change, Entry

_ENTRY = "SELECT key, value, rev, created_rev, time, source, user, origin, ttl FROM kv"
_FIND = _ENTRY + " WHERE key = ?"  # built once: it runs for every op of every write
# A change's count is the number of history rows of its revision: one index lookup each.
_CHANGE = (
    "SELECT rev, idx, (SELECT count(*) FROM history AS part WHERE part.rev = history.rev), "
    "key, op, value, prev_value, prev_rev, time, source, user, backfill != 0, origin, ttl FROM history"
)
# What a change found before it (its previous value and revision) and, from the row of the
# change that wrote that value (if still kept), when and by whom: the key right before ``later``.
_UNDO = (
    "SELECT later.key, later.prev_value, later.prev_rev, wrote.time, wrote.source, wrote.user, wrote.origin, "
    "wrote.ttl "
    "FROM history AS later LEFT JOIN history AS wrote ON wrote.key = later.key AND wrote.rev = later.prev_rev"
)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the store file with the settings every connection needs."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        # The hub opens its write connection, then hands it to its store thread (one user at a time).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class StoreReader:
    """Read queries over one SQLite connection.  Like the connection, used by one thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> StoreReader:
        """A read-only reader of the store at ``path``; never creates a file there."""
        if not path.is_file():
            # Opening a missing path read-write would create an empty database; read-only
            # it fails with SQLite's vague "unable to open database file".
            raise StorageError(f"the store {path} is gone")
        return cls(connect(path, readonly=True))

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every query inside sees the store at the same revision."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    # --- the store as a whole -------------------------------------------------------------

    def meta(self, name: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row is not None else None

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM kv").fetchone()[0])

    # --- keys -------------------------------------------------------------------------------

    def find(self, key: str) -> Entry | None:
        row = self._conn.execute(_FIND, (key,)).fetchone()
        return None if row is None else Entry._make(row)

    def entry(self, key: str) -> Entry:
        """The key as stored; NotFound when it does not exist."""
        found = self.find(key)
        if found is None:
            raise NotFound(f"no key {key!r}")
        return found

    def entries(self, prefix: str = "") -> Iterator[Entry]:
        """Every key starting with ``prefix``, sorted."""
        if prefix:
            rows = self._conn.execute(_ENTRY + " WHERE key >= ? AND key < ? ORDER BY key", key_range(prefix))
        else:
            rows = self._conn.execute(_ENTRY + " ORDER BY key")
        return map(Entry._make, rows)

    # --- history ------------------------------------------------------------------------------

    def history(self, key: str, limit: int) -> list[Change]:
        """The last ``limit`` changes of ``key``, newest first."""
        rows = self._conn.execute(_CHANGE + " WHERE key = ? ORDER BY rev DESC LIMIT ?", (key, limit))
        return [change_of(row) for row in rows]

    def state_at(self, rev: int, prefix: str = "") -> list[Entry]:
        """The keys under ``prefix`` as they were right after revision ``rev``.

        Undoes, key by key, the first change made after ``rev``: history rows
        carry the value they replaced, and the row of the change that wrote it
        (while history still holds it) its time and writer.  A key restored this
        way does not know when it was created: its ``created_rev`` is its ``rev``.
        """
        with self.snapshot():
            self._check_rebuildable(rev)
            entries = {entry.key: entry for entry in self.entries(prefix)}
            sql = _UNDO + " WHERE later.rev > ?"
            args: tuple[Any, ...] = (rev,)
            if prefix:
                sql += " AND later.key >= ? AND later.key < ?"
                args += key_range(prefix)
            undone: set[str] = set()
            for key, *state in self._conn.execute(sql + " ORDER BY later.rev, later.idx", args):
                if key in undone:
                    continue
                undone.add(key)
                restored = _restored(key, *state)
                if restored is None:
                    entries.pop(key, None)
                else:
                    entries[key] = restored
        return [entries[key] for key in sorted(entries)]

    def entry_at(self, key: str, rev: int) -> Entry | None:
        """The key as it was right after revision ``rev`` (None: it did not exist then), as ``state_at`` rebuilds it."""
        with self.snapshot():
            self._check_rebuildable(rev)
            row = self._conn.execute(
                _UNDO + " WHERE later.key = ? AND later.rev > ? ORDER BY later.rev LIMIT 1", (key, rev)
            ).fetchone()
            if row is None:
                return self.find(key)  # nothing changed it since: as it is now
        return _restored(*row)

    def changes_after(self, after: int, until: int, prefix: str = "") -> Generator[Change, None, None]:
        """The history rows of revisions ``after``+1 .. ``until``, in revision and index order, read lazily.

        With ``prefix``, only those of keys under it (``count`` still counts the
        whole revision).  Values are the stored bytes: sealed secrets stay sealed.
        """
        if prefix:
            sql = _CHANGE + " WHERE rev > ? AND rev <= ? AND key >= ? AND key < ? ORDER BY rev, idx"
            rows = self._conn.execute(sql, (after, until, *key_range(prefix)))
        else:
            rows = self._conn.execute(_CHANGE + " WHERE rev > ? AND rev <= ? ORDER BY rev, idx", (after, until))
        return (change_of(row) for row in rows)

    def _check_rebuildable(self, rev: int) -> None:
        """InvalidRequest unless history reaches back to the state right after ``rev``."""
        current, history_from = int(self.meta("rev")), int(self.meta("history_from"))
        if not 0 <= rev <= current:
            raise InvalidRequest(f"revision {rev} does not exist: the store is at revision {current}")
        if rev < history_from - 1:
            raise InvalidRequest(
                f"cannot rebuild revision {rev}: history before revision {history_from} "
                "was pruned (see the hub's --history-keep)"
            )


def change_of(row: tuple[Any, ...]) -> Change:
    """The Change of a row selected with ``_CHANGE`` (SQLite has no booleans: backfill comes as 0 or 1)."""
    rev, index, count, key, op, blob, prev_blob, prev_rev, when, source, user, backfill, origin, ttl = row
    return Change(
        rev, index, count, key, op, blob, prev_blob, prev_rev, when, source, user, bool(backfill), origin, ttl
    )


def _restored(
    key: str,
    prev_blob: bytes | None,
    prev_rev: int,
    time: float | None,
    source: str | None,
    user: str | None,
    origin: bytes | None,
    ttl: float | None,
) -> Entry | None:
    """A key as a later change found it: gone (prev_rev 0), or its previous value and revision."""
    if prev_rev == 0 or prev_blob is None:
        return None
    return Entry(key, prev_blob, prev_rev, prev_rev, time or 0.0, source or "", user or "", origin, ttl)


def key_range(prefix: str) -> tuple[str, str]:
    """The half-open key range [prefix, next) holding every key that starts with prefix."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
