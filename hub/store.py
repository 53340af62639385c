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

from statehub.hub.errors import InvalidRequest, NotFound, StorageError
from statehub.hub.protocol import (
    MAX_INLINE_VALUE_BYTES,
    SECRET_PLACEHOLDER,
    Changed,
    Committed,
    ConflictDetail,
    Error,
    Item,
    Items,
    Op,
    Rotated,
    Version,
    WriteRequest,
    write_ops,
)
from statehub.hub.secret_box import SecretBox, SecretKeyError, is_sealed, token_of

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


_UNCHANGED = object()  # a secret's placeholder written back: leave the secret as it is


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

    def __init__(self, path: Path, *, history_keep: int = 100_000, secrets: SecretBox | None = None) -> None:
        self.path = path
        self.history_keep = history_keep
        self.secrets = secrets or SecretBox(path.parent / "keys" / "secrets.key")
        self._conn = _open(path)
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder().decode
        self._check_integrity()
        self._init_schema()
        self._inode = os.stat(path).st_ino
        self.epoch: str = self._meta("epoch")
        self.rev: int = int(self._meta("rev"))
        self.history_from: int = int(self._meta("history_from"))
        self._check_secrets_key()

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
        return row[0] if row is not None else None

    def _check_secrets_key(self) -> None:
        """Say at start, not at the first secret read, when the key file cannot open our secrets."""
        expected = self._meta("secrets_key")
        if expected is None:
            return
        try:
            known = self.secrets.fingerprints()
        except SecretKeyError as exc:
            log.error("%s", exc.message)
            return
        if expected not in known:
            log.error(
                "the secrets key file %s is not the one this store's secrets were sealed with "
                "(fingerprint %s, expected %s); secrets cannot be read until the right file is restored",
                self.secrets.key_file,
                ", ".join(known),
                expected,
            )

    def close(self) -> None:
        self._conn.close()

    # --- reads ----------------------------------------------------------------

    def get(self, key: str, *, reveal: bool = False) -> Item:
        """One item; a secret shows as the placeholder unless ``reveal``."""
        row = self._conn.execute(
            "SELECT key, value, rev, created_rev, time, source, user FROM kv WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no key {key!r}")
        if reveal and is_sealed(row[1]):
            return _item(row, msgspec.Raw(self.secrets.open(row[1], key)), secret=True)
        return self._shown_item(row, sealed=False)

    def list(self, prefix: str = "", *, sealed: bool = False) -> Items:
        """Every item under ``prefix``; secrets as the placeholder, or as tokens when ``sealed``."""
        return Items(epoch=self.epoch, rev=self.rev, items=list(self._items(prefix, sealed)))

    def _items(self, prefix: str, sealed: bool = False) -> Iterator[Item]:
        sql = "SELECT key, value, rev, created_rev, time, source, user FROM kv"
        rows = (
            self._conn.execute(sql + " WHERE key >= ? AND key < ? ORDER BY key", _bounds(prefix))
            if prefix
            else self._conn.execute(sql + " ORDER BY key")
        )
        return (self._shown_item(row, sealed) for row in rows)

    def _shown_item(self, row: tuple[Any, ...], sealed: bool) -> Item:
        if not is_sealed(row[1]):
            return _item(row, msgspec.Raw(row[1]))
        return _item(row, token_of(row[1]).decode("ascii") if sealed else SECRET_PLACEHOLDER, secret=True)

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
                value=_shown(value),
                prev_rev=prev_rev,
                prev_value=_shown(prev_value),
                time=when,
                source=source,
                user=user,
                secret=is_sealed(value) or is_sealed(prev_value),
            )
            for rev, op, value, prev_value, prev_rev, when, source, user in rows
        ]

    def state_at(self, rev: int, prefix: str = "", *, sealed: bool = False) -> Items:
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
        items = {item.key: item for item in self._items(prefix, sealed)}
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
                row = (key, prev_value, prev_rev, prev_rev, 0.0, "", "")
                items[key] = self._shown_item(row, sealed)
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
        try:
            stored = [(op, self._stored_value(op, current[op.key])) for op in ops]
        except InvalidRequest as exc:
            return Outcome(Error(code="invalid", message=str(exc)), [])
        except SecretKeyError as exc:
            return Outcome(Error(code="storage", message=exc.message), [])
        stored = [(op, blob) for op, blob in stored if blob is not _UNCHANGED]
        if not stored:
            return Outcome(Committed(epoch=self.epoch, rev=self.rev), [])
        self.rev += 1
        changes = [
            self._apply_op(op, blob, index, len(stored), current[op.key], write, now)
            for index, (op, blob) in enumerate(stored)
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

    def _stored_value(self, op: Op, row: tuple[Any, ...] | None) -> Any:
        """The bytes to store for ``op`` (None to unset), or _UNCHANGED for a placeholder written back."""
        if op.op == "unset":
            return None
        was_secret = row is not None and is_sealed(row[2])
        if op.secret == "sealed":
            if not isinstance(op.value, str):
                raise InvalidRequest(f"the sealed value of {op.key!r} must be the token string from a sealed export")
            return self._seal_token(op.value, op.key)
        if op.secret == "" and op.value == SECRET_PLACEHOLDER:
            if was_secret:
                return _UNCHANGED
            raise InvalidRequest(
                f"{SECRET_PLACEHOLDER!r} is what statehub shows in place of a secret, and {op.key!r} "
                f"is not a secret; to make it one use `statehub secret set {op.key}`"
            )
        plain = self._encode(op.value)
        if op.secret == "value" or was_secret:
            return self._seal(plain)
        return plain

    def _seal(self, plain: bytes) -> bytes:
        may_create = self._meta("secrets_key") is None
        sealed = self.secrets.seal(plain, may_create=may_create)
        if may_create:
            self._set_meta("secrets_key", self.secrets.current_fingerprint)
        return sealed

    def _seal_token(self, token: str, key: str) -> bytes:
        if self._meta("secrets_key") is None:
            raise SecretKeyError(
                f"the sealed value of {key!r} comes from another hub's export: this hub has no secrets key yet, "
                "so it cannot decrypt it; copy that hub's key file here first (see docs/security.md)"
            )
        return self.secrets.reseal_token(token, key)

    def _set_meta(self, name: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def _apply_op(
        self,
        op: Op,
        blob: bytes | None,
        index: int,
        count: int,
        row: tuple[Any, ...] | None,
        write: WriteRequest,
        now: float,
    ) -> Changed:
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
        change = Changed(
            epoch=self.epoch,
            rev=self.rev,
            index=index,
            count=count,
            key=op.key,
            op=op.op,
            time=now,
            source=write.source,
            user=write.user,
        )
        if blob is None:
            return change
        if is_sealed(blob):
            change.value, change.secret = SECRET_PLACEHOLDER, True
        elif len(blob) > MAX_INLINE_VALUE_BYTES:
            change.value_omitted = True
        else:
            change.value = msgspec.Raw(blob)
        return change

    # --- secrets ----------------------------------------------------------------

    def rotate_secrets(self) -> Rotated:
        """Re-encrypt every secret, current and in history, under a new key, in one transaction."""
        self._check_still_there()
        self.secrets.begin_rotation(may_create=self._meta("secrets_key") is None)
        try:
            with self._transaction():
                secrets = self._reencrypt("SELECT key, value FROM kv", "UPDATE kv SET value = ? WHERE key = ?")
                versions = self._reencrypt(
                    "SELECT rev, idx, value FROM history", "UPDATE history SET value = ? WHERE rev = ? AND idx = ?"
                )
                versions += self._reencrypt(
                    "SELECT rev, idx, prev_value FROM history",
                    "UPDATE history SET prev_value = ? WHERE rev = ? AND idx = ?",
                )
                self._set_meta("secrets_key", self.secrets.current_fingerprint)
        except sqlite3.Error as exc:
            raise StorageError(f"the hub could not re-encrypt its secrets in {self.path}: {exc}") from exc
        self.secrets.end_rotation()
        log.info("secrets key rotated: %d secrets and %d history values re-encrypted", secrets, versions)
        return Rotated(secrets=secrets, versions=versions)

    def _reencrypt(self, select: str, update: str) -> int:
        rows = [row for row in self._conn.execute(select).fetchall() if is_sealed(row[-1])]
        for *where, stored in rows:
            self._conn.execute(update, (self.secrets.reencrypt(stored), *where))
        return len(rows)

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


def _item(row: tuple[Any, ...], value: Any, *, secret: bool = False) -> Item:
    key, _stored, rev, created_rev, when, source, user = row
    return Item(
        key=key,
        value=value,
        rev=rev,
        created_rev=created_rev,
        time=when,
        source=source,
        user=user,
        secret=secret,
    )


def _shown(blob: bytes | None) -> Any:
    """A stored value as readers may see it: MessagePack passed through, a secret as its placeholder."""
    if blob is None:
        return None
    return SECRET_PLACEHOLDER if is_sealed(blob) else msgspec.Raw(blob)


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
        value=_shown(value),
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

