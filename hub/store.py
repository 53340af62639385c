"""The SQLite store: current values, one global revision, history and request ids.

Only the hub's server thread writes through a Store.  Every write is a list of
operations applied under one new revision; several writes are committed in one
SQLite transaction (group commit) so concurrent clients share one fsync.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from hub.errors import InvalidRequest, NotFound, StorageError
from hub.protocol import (
    Changed,
    Committed,
    ConflictDetail,
    Error,
    Item,
    Items,
    Op,
    Version,
    WriteRequest,
    write_ops,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
REQUEST_ID_SECONDS = 600.0  # how long a retried write is recognised as a duplicate
PRUNE_EVERY_REVISIONS = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    rev INTEGER NOT NULL,
    created_rev INTEGER NOT NULL,
    time REAL NOT NULL,
    source TEXT NOT NULL,
    user TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    rev INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    key TEXT NOT NULL,
    op TEXT NOT NULL,
    value BLOB,
    prev_value BLOB,
    prev_rev INTEGER NOT NULL,
    time REAL NOT NULL,
    source TEXT NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY (rev, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_by_key ON history (key, rev);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    time REAL NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Outcome:
    """What one write did: the reply for its writer and the changes to publish."""

    reply: Committed | Error
    changes: list[Changed]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the store file with the settings every connection needs."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _open(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL makes every commit fsync the WAL: an acknowledged write survives power loss.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def new_epoch() -> str:
    return uuid.uuid4().hex[:16]


class Store:
    """The authoritative state.  Not thread-safe: one thread owns a Store."""

    def __init__(self, path: Path, *, history_keep: int = 100_000) -> None:
        self.path = path
        self.history_keep = history_keep
        self._conn = _open(path)
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder().decode
        self._check_integrity()
        self._init_schema()
        self._inode = os.stat(path).st_ino
        self.epoch: str = self._meta("epoch")
        self.rev: int = int(self._meta("rev"))
        self.history_from: int = int(self._meta("history_from"))

    # --- setup ----------------------------------------------------------------

    def _init_schema(self) -> None:
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            defaults = {
                "schema": SCHEMA_VERSION,
                "rev": 0,
                "epoch": new_epoch(),
                "created": time.time(),
                "history_from": 1,  # history is complete for every revision from this one on
            }
            for name, value in defaults.items():
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", (name, value)
                )
        schema = int(self._meta("schema"))
        if schema > SCHEMA_VERSION:
            raise StorageError(
                f"store {self.path} has schema {schema}; this statehub understands "
                f"{SCHEMA_VERSION}: upgrade statehub"
            )

    def _check_integrity(self) -> None:
        # quick_check reads every page: a damaged file is found here, at start,
        # not halfway through serving.
        problems = [row[0] for row in self._conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("integrity check failed: " + "; ".join(problems))

    def _check_still_there(self) -> None:
        """Never acknowledge writes into a store file that is no longer at its path.

        SQLite keeps writing to an open file after it is deleted, and those writes
        would be lost at the next start.  A deleted store is written back from the
        open database (folder included); a file put in its place is refused.
        """
        try:
            if os.stat(self.path).st_ino == self._inode:
                return
            raise StorageError(
                f"the store {self.path} was replaced by another file while the hub ran; "
                "writes are refused: stop the hub and check which store is the right one"
            )
        except FileNotFoundError:
            self._write_back()

    def _write_back(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            copy = sqlite3.connect(self.path)
            try:
                self._conn.backup(copy)
            finally:
                copy.close()
            self._conn.close()
            self._conn = _open(self.path)
            self._inode = os.stat(self.path).st_ino
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"the store {self.path} was deleted and cannot be written back: {exc}") from exc
        log.warning("the store %s was deleted while the hub ran; wrote it back from the open database", self.path)

    def ensure_file(self) -> None:
        """Called periodically: put a deleted store back before anyone relies on its absence."""
        with contextlib.suppress(StorageError):
            self._check_still_there()

    def raise_revision(self, rev: int) -> None:
        """Continue numbering above ``rev`` (used when a store replaces another)."""
        if rev > self.rev:
            with self._transaction():
                self._conn.execute("UPDATE meta SET value = ? WHERE name = 'rev'", (rev,))
                self._conn.execute("UPDATE meta SET value = ? WHERE name = 'history_from'", (rev + 1,))
            self.rev, self.history_from = rev, rev + 1

    def _meta(self, name: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0]

    def close(self) -> None:
        self._conn.close()

    # --- reads ----------------------------------------------------------------

    def get(self, key: str) -> Item:
        row = self._conn.execute(
            "SELECT key, value, rev, created_rev, time, source, user FROM kv WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no key {key!r}")
        return _item(row)

    def list(self, prefix: str = "") -> Items:
        return Items(epoch=self.epoch, rev=self.rev, items=list(self._items(prefix)))

    def _items(self, prefix: str) -> Iterator[Item]:
        sql = "SELECT key, value, rev, created_rev, time, source, user FROM kv"
        rows = (
            self._conn.execute(sql + " WHERE key >= ? AND key < ? ORDER BY key", _bounds(prefix))
            if prefix
            else self._conn.execute(sql + " ORDER BY key")
        )
        return (_item(row) for row in rows)

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM kv").fetchone()[0])

    def history(self, key: str, limit: int) -> builtins.list[Version]:
        rows = self._conn.execute(
            "SELECT rev, op, value, prev_value, prev_rev, time, source, user FROM history "
            "WHERE key = ? ORDER BY rev DESC LIMIT ?",
            (key, limit),
        ).fetchall()
        return [
            Version(
                rev=rev,
                op=op,
                value=_raw(value),
                prev_rev=prev_rev,
                prev_value=_raw(prev_value),
                time=when,
                source=source,
                user=user,
            )
            for rev, op, value, prev_value, prev_rev, when, source, user in rows
        ]

    def state_at(self, rev: int, prefix: str = "") -> Items:
        """The items under ``prefix`` as they were right after revision ``rev``.

        Undoes, key by key, the first change made after ``rev``: history rows
        carry the value they replaced.  Keys restored this way know only their
        value and revision (no time or writer).
        """
        if not 0 <= rev <= self.rev:
            raise InvalidRequest(f"revision {rev} does not exist: the store is at revision {self.rev}")
        if rev < self.history_from - 1:
            raise InvalidRequest(
                f"cannot rebuild revision {rev}: history before revision {self.history_from} "
                "was pruned (see the hub's --history-keep)"
            )
        items = {item.key: item for item in self._items(prefix)}
        sql = "SELECT key, prev_value, prev_rev FROM history WHERE rev > ?"
        args: tuple[Any, ...] = (rev,)
        if prefix:
            sql += " AND key >= ? AND key < ?"
            args += _bounds(prefix)
        undone: set[str] = set()
        for key, prev_value, prev_rev in self._conn.execute(sql + " ORDER BY rev, idx", args):
            if key in undone:
                continue
            undone.add(key)
            if prev_rev == 0:
                items.pop(key, None)
            else:
                items[key] = Item(key=key, value=msgspec.Raw(prev_value), rev=prev_rev, created_rev=prev_rev, time=0.0)
        return Items(epoch=self.epoch, rev=rev, items=[items[key] for key in sorted(items)])

    # --- writes ---------------------------------------------------------------

    def commit(self, writes: builtins.list[WriteRequest]) -> builtins.list[Outcome]:
        """Apply ``writes`` in order in one durable transaction; one outcome each.

        Raises StorageError (and applies nothing) when the transaction cannot be
        made durable, e.g. on a full disk or a read-only file.
        """
        start_rev = self.rev
        now = time.time()
        self._check_still_there()
        try:
            with self._transaction():
                outcomes = [self._apply(write, now) for write in writes]
                if self.rev != start_rev:
                    self._conn.execute("UPDATE meta SET value = ? WHERE name = 'rev'", (self.rev,))
                    if self.rev // PRUNE_EVERY_REVISIONS != start_rev // PRUNE_EVERY_REVISIONS:
                        self._prune(now)
        except sqlite3.Error as exc:
            self.rev = start_rev
            self.history_from = int(self._meta("history_from"))
            raise StorageError(f"the hub could not write its store {self.path}: {exc}") from exc
        return outcomes

    def _apply(self, write: WriteRequest, now: float) -> Outcome:
        if write.request_id:
            done = self._conn.execute(
                "SELECT rev FROM requests WHERE request_id = ?", (write.request_id,)
            ).fetchone()
            if done is not None:
                return Outcome(Committed(epoch=self.epoch, rev=done[0], duplicate=True), [])
        ops = write_ops(write)
        current = {op.key: self._current(op.key) for op in ops}
        refusal = self._check(ops, current)
        if refusal is not None:
            return Outcome(refusal, [])
        self.rev += 1
        changes = [
            self._apply_op(op, index, len(ops), current[op.key], write, now)
            for index, op in enumerate(ops)
        ]
        if write.request_id:
            self._conn.execute(
                "INSERT INTO requests (request_id, rev, time) VALUES (?, ?, ?)",
                (write.request_id, self.rev, now),
            )
        return Outcome(Committed(epoch=self.epoch, rev=self.rev), changes)

    def _current(self, key: str) -> tuple[Any, ...] | None:
        return self._conn.execute(  # type: ignore[no-any-return]
            "SELECT rev, created_rev, value, time, source, user FROM kv WHERE key = ?", (key,)
        ).fetchone()

    def _check(self, ops: builtins.list[Op], current: dict[str, tuple[Any, ...] | None]) -> Error | None:
        conflicts = [
            _conflict(op, current[op.key])
            for op in ops
            if op.expect is not None and _rev_of(current[op.key]) != op.expect
        ]
        if conflicts:
            return Error(code="conflict", message=_conflict_message(conflicts), conflicts=conflicts)
        missing = [op.key for op in ops if op.op == "unset" and current[op.key] is None]
        if missing:
            return Error(code="not_found", message=f"cannot unset {missing[0]!r}: no such key")
        return None

    def _apply_op(
        self,
        op: Op,
        index: int,
        count: int,
        row: tuple[Any, ...] | None,
        write: WriteRequest,
        now: float,
    ) -> Changed:
        blob = self._encode(op.value) if op.op == "set" else None
        if op.op == "set":
            created_rev = row[1] if row is not None else self.rev
            self._conn.execute(
                "INSERT OR REPLACE INTO kv (key, value, rev, created_rev, time, source, user) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (op.key, blob, self.rev, created_rev, now, write.source, write.user),
            )
        else:
            self._conn.execute("DELETE FROM kv WHERE key = ?", (op.key,))
        prev_value, prev_rev = (row[2], row[0]) if row is not None else (None, 0)
        self._conn.execute(
            "INSERT INTO history (rev, idx, key, op, value, prev_value, prev_rev, time, source, user) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.rev, index, op.key, op.op, blob, prev_value, prev_rev, now, write.source, write.user),
        )
        return Changed(
            epoch=self.epoch,
            rev=self.rev,
            index=index,
            count=count,
            key=op.key,
            op=op.op,
            value=op.value if op.op == "set" else None,
            time=now,
            source=write.source,
            user=write.user,
        )

    def _prune(self, now: float) -> None:
        oldest_kept = self.rev - self.history_keep + 1
        if oldest_kept > self.history_from:
            self._conn.execute("DELETE FROM history WHERE rev < ?", (oldest_kept,))
            self._conn.execute("UPDATE meta SET value = ? WHERE name = 'history_from'", (oldest_kept,))
            self.history_from = oldest_kept
        self._conn.execute("DELETE FROM requests WHERE time < ?", (now - REQUEST_ID_SECONDS,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def _item(row: tuple[Any, ...]) -> Item:
    key, value, rev, created_rev, when, source, user = row
    # The stored bytes are already MessagePack: pass them through without decoding.
    return Item(
        key=key,
        value=msgspec.Raw(value),
        rev=rev,
        created_rev=created_rev,
        time=when,
        source=source,
        user=user,
    )


def _raw(blob: bytes | None) -> msgspec.Raw | None:
    return msgspec.Raw(blob) if blob is not None else None


def _rev_of(row: tuple[Any, ...] | None) -> int:
    return 0 if row is None else int(row[0])


def _conflict(op: Op, row: tuple[Any, ...] | None) -> ConflictDetail:
    expected = op.expect if op.expect is not None else 0
    if row is None:
        return ConflictDetail(key=op.key, expected=expected)
    rev, _created, value, when, source, user = row
    return ConflictDetail(
        key=op.key,
        expected=expected,
        rev=rev,
        exists=True,
        value=msgspec.Raw(value),
        time=when,
        source=source,
        user=user,
    )


def _conflict_message(conflicts: list[ConflictDetail]) -> str:
    first = conflicts[0]
    expected = "it to be absent" if first.expected == 0 else f"revision {first.expected}"
    now = f"it is at revision {first.rev}" if first.exists else "it does not exist"
    more = f" (and {len(conflicts) - 1} more keys)" if len(conflicts) > 1 else ""
    return f"conflict on {first.key!r}: you expected {expected}, {now}{more}"


def _bounds(prefix: str) -> tuple[str, str]:
    """The half-open key range [prefix, next) holding every key that starts with prefix."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)

