"""The SQLite store: current values, one global revision, history and request ids.

Only the hub's server thread writes through a Store.  Every write is a list of
operations applied under one new revision; several writes are committed in one
SQLite transaction (group commit) so concurrent clients share one fsync.

The store speaks in records (``hub.records``): a write comes back as what it
did (``Applied``: its revision and changes) or as the refusal, an exception
of the error tree.  Which reply a writer gets, and what a subscriber is
shown, is decided elsewhere (``hub.replies``, ``hub.publisher``).  The
queries that only read are in ``hub.store_reads``, shared with the mirror
thread and restore.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import msgspec

from statehub.hub import replies
from statehub.hub.errors import ConflictError, InvalidRequest, NotFound, StatehubError, StorageError
from statehub.hub.protocol import (
    SECRET_PLACEHOLDER,
    Batch,
    ConflictDetail,
    Op,
    WriteRequest,
    batch_txns,
    write_ops,
)
from statehub.hub.records import Applied, AppliedBatch, Change, Entry, Rotation
from statehub.hub.schema import SCHEMA_KEY, Schema
from statehub.hub.schema_gate import has_ttl_rules, schema_after, stored_schema
from statehub.hub.secret_box import SecretBox, SecretKeyError, is_sealed
from statehub.hub.store_file import Transaction, open_for_writing, open_store_file
from statehub.hub.store_reads import StoreReader, connect, key_range

log = logging.getLogger(__name__)

REQUEST_ID_SECONDS = 600.0  # how long a retried write is recognised as a duplicate
PRUNE_EVERY_REVISIONS = 1000

_SCHEMA_STAMP = "SELECT key, rev FROM kv WHERE key >= ? AND key < ? ORDER BY key"

_UNCHANGED = object()  # a secret's placeholder written back: leave the secret as it is

# What one write of a commit did, or why it was refused.
WriteResult = Applied | AppliedBatch | StatehubError


class Store(StoreReader):
    """The authoritative state.  Not thread-safe: one thread owns a Store."""

    def __init__(self, path: Path, *, history_keep: int = 100_000, secrets: SecretBox | None = None) -> None:
        self.path = path
        self.history_keep = history_keep
        self.secrets = secrets or SecretBox(path.parent / "keys" / "secrets.key")
        super().__init__(open_store_file(path))
        self._encode = msgspec.msgpack.Encoder().encode
        try:
            self._inode = os.stat(path).st_ino
        except BaseException:
            self.close()
            raise
        self.epoch: str = self.meta("epoch")
        self.rev: int = int(self.meta("rev"))
        self.history_from: int = int(self.meta("history_from"))
        self.generation = 0  # counts the times the file was written back: readers must reopen then
        self._check_secrets_key()
        # The schema every write is judged by; replaced (never changed) when a schema key commits.
        self.schema: Schema = stored_schema(self.entries(SCHEMA_KEY))

    # --- setup ----------------------------------------------------------------

    def _check_secrets_key(self) -> None:
        """Say at start, not at the first secret read, when the key file cannot open our secrets."""
        expected = self.meta("secrets_key")
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

    def raise_revision(self, rev: int) -> None:
        """Continue numbering above ``rev`` (used when a store replaces another)."""
        if rev > self.rev:
            with self._transaction():
                self._set_meta("rev", rev)
                self._set_meta("history_from", rev + 1)
            self.rev, self.history_from = rev, rev + 1

    # --- the file under the store ---------------------------------------------------------

    def ensure_file(self) -> None:
        """Put a deleted store back before anyone relies on its absence; StorageError if it cannot be."""
        self._check_still_there()

    def _check_still_there(self) -> None:
        """Never acknowledge writes into a store file that is no longer at its path.

        SQLite keeps writing to an open file after it is deleted, and those writes
        would be lost at the next start.  A deleted store is written back from the
        open database (folder included); a file put in its place is refused.
        """
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            self._write_back()
            return
        except NotADirectoryError:
            raise StorageError(
                f"the data dir {self.path.parent} was replaced by a file while the hub ran; writes are "
                "refused: move that file away, and the hub writes its store back into a new folder"
            ) from None
        except OSError as exc:
            raise StorageError(
                f"the store {self.path} cannot be reached ({exc.strerror}); writes are refused"
            ) from None
        if inode != self._inode:
            raise StorageError(
                f"the store {self.path} was replaced by another file while the hub ran; "
                "writes are refused: stop the hub and check which store is the right one"
            )

    def _write_back(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            copy = sqlite3.connect(self.path)
            try:
                self._conn.backup(copy)
            finally:
                copy.close()
            self._conn.close()
            self._conn = open_for_writing(self.path)
            self._inode = os.stat(self.path).st_ino
            self.generation += 1
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"the store {self.path} was deleted and cannot be written back: {exc}"
            ) from exc
        log.warning(
            "the store %s was deleted while the hub ran; wrote it back from the open database", self.path
        )

    # --- writes ---------------------------------------------------------------

    @overload
    def commit(
        self, writes: Sequence[WriteRequest], *, judged: bool = True
    ) -> list[Applied | StatehubError]: ...

    @overload
    def commit(self, writes: Sequence[WriteRequest | Batch], *, judged: bool = True) -> list[WriteResult]: ...

    def commit(self, writes: Sequence[WriteRequest | Batch], *, judged: bool = True) -> Sequence[WriteResult]:
        """Apply ``writes`` in order in one durable transaction; one result each.

        Every op is judged by the schema (``judged``; only the hub's own expiry
        of a key is not: removing what lived too long needs no permission).

        A write's result is what it did (Applied; AppliedBatch for a batch), or
        its refusal: ConflictError, NotFound, InvalidRequest, or a SecretKeyError
        when its secret cannot be sealed.  A refused write changes nothing; the others still commit.
        Raises StorageError (and applies nothing) when the transaction cannot
        be made durable, e.g. on a full disk or a read-only file.
        """
        start_rev, start_history_from, start_schema = self.rev, self.history_from, self.schema
        now = time.time()
        self._check_still_there()
        try:
            with self._transaction():
                results = [self._apply_or_refuse(write, now, judged) for write in writes]
                if self.rev != start_rev:
                    # UPDATE, not _set_meta's INSERT OR REPLACE (a delete and an insert): once per commit.
                    self._conn.execute("UPDATE meta SET value = ? WHERE name = 'rev'", (self.rev,))
                    if self.rev // PRUNE_EVERY_REVISIONS != start_rev // PRUNE_EVERY_REVISIONS:
                        self._prune(now)
        except BaseException as exc:
            # Rolled back: the revisions handed out in memory were never used, nor the schema.
            self.rev, self.history_from, self.schema = start_rev, start_history_from, start_schema
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"the hub could not write its store {self.path}: {exc}") from exc
            raise
        return results

    def commit_one(self, write: WriteRequest) -> Applied:
        """Commit one write; raise its refusal, or StorageError."""
        (result,) = self.commit([write])
        if isinstance(result, StatehubError):
            raise result
        assert isinstance(result, Applied)
        return result

    def _apply_or_refuse(self, write: WriteRequest | Batch, now: float, judged: bool = True) -> WriteResult:
        try:
            if isinstance(write, Batch):
                return self._apply_batch(write, now)
            return self._apply(write, now, judged=judged)
        except StatehubError as refusal:
            return refusal

    def _apply_batch(self, batch: Batch, now: float) -> AppliedBatch:
        """Every write of ``batch`` in order, each under its own revision, or none of them.

        A savepoint undoes the writes already applied when a later one is
        refused; the refusal names the write.  A repeated batch request id
        finds each write's derived id, so it comes back as duplicates.  The
        batch remembers the rows it wrote: a replay sets the same keys write
        after write, and reading back what it just wrote was a third of its work.
        """
        start_rev, start_schema = self.rev, self.schema
        written: dict[str, Entry | None] = {}
        self._conn.execute("SAVEPOINT batch")
        try:
            applied: list[Applied] = []
            for index, txn in enumerate(batch_txns(batch)):
                try:
                    # All or nothing: if write 0 was new, so is every later one; skip their lookups.
                    may_repeat = index == 0 or applied[0].duplicate
                    applied.append(self._apply(txn, now, may_repeat=may_repeat, known=written))
                except StatehubError as refusal:
                    refusal.message = f"write {index} of the batch (none was applied): {refusal.message}"
                    raise
        except BaseException:
            self._conn.execute("ROLLBACK TO batch")
            self._conn.execute("RELEASE batch")
            self.rev, self.schema = start_rev, start_schema
            raise
        self._conn.execute("RELEASE batch")
        return AppliedBatch(applied=applied, duplicate=all(write.duplicate for write in applied))

    def _apply(
        self,
        write: WriteRequest,
        now: float,
        *,
        may_repeat: bool = True,
        known: dict[str, Entry | None] | None = None,
        judged: bool = True,
    ) -> Applied:
        """Apply one write; ``known`` holds keys as this transaction already read or wrote them."""
        if write.request_id and may_repeat:
            done = self._conn.execute(
                "SELECT rev FROM requests WHERE request_id = ?", (write.request_id,)
            ).fetchone()
            if done is not None:
                return Applied(rev=done[0], duplicate=True)
        ops = write_ops(write)
        if known is None:
            current = {op.key: self.find(op.key) for op in ops}
        else:
            current = {op.key: known[op.key] if op.key in known else self.find(op.key) for op in ops}
        _check_conditions(ops, current)
        # A write's own schema ops first: its other ops meet the schema it makes.
        schema = schema_after(self.schema, ops, write.source) if judged else None
        warnings: list[str] = []
        # Every value is judged, sealed or refused before anything is written.
        stored = [(op, self._stored_value(op, current[op.key], schema, write.source, warnings)) for op in ops]
        stored = [(op, blob) for op, blob in stored if blob is not _UNCHANGED]
        if not stored:
            return Applied(rev=self.rev, warnings=warnings)
        self.rev += 1
        lifetimes = self.schema if schema is None else schema
        changes = [
            self._write_op(op, blob, index, len(stored), current[op.key], write, now, lifetimes)
            for index, (op, blob) in enumerate(stored)
        ]
        if schema is not None:
            self.schema = schema
        if write.request_id:
            self._conn.execute(
                "INSERT INTO requests (request_id, rev, time) VALUES (?, ?, ?)",
                (write.request_id, self.rev, now),
            )
        if known is not None:
            known.update(_entries_after(stored, current, self.rev, write, now))
        if warnings:
            log.warning("write by %s accepted with warnings: %s", write.source or "?", "; ".join(warnings))
        return Applied(rev=self.rev, changes=changes, warnings=warnings)

    def _stored_value(
        self, op: Op, entry: Entry | None, schema: Schema | None, source: str, warnings: list[str]
    ) -> Any:
        """The bytes to store for ``op`` (None to unset), or _UNCHANGED for a placeholder written back.

        ``schema`` (None: not judged) judges the plaintext, then makes the key a
        secret where the schema says so; an unknown key it only warns about
        goes into ``warnings``.
        """
        if op.op == "unset":
            if schema is not None:
                schema.check(op.key, None, source, "unset")
            return None
        was_secret = entry is not None and entry.is_secret
        if op.secret == "sealed":
            if not isinstance(op.value, str):
                raise InvalidRequest(
                    f"the sealed value of {op.key!r} must be the token string from a sealed export"
                )
            sealed = self._seal_token(op.value, op.key)
            if schema is not None:
                plain_value = msgspec.msgpack.decode(
                    self.open_secret(Entry(op.key, sealed, 0, 0, 0.0, "", ""))
                )
                self._judge(schema, op, plain_value, source, True, warnings)
            return sealed
        if op.secret == "" and op.value == SECRET_PLACEHOLDER:
            if was_secret:
                return _UNCHANGED
            raise InvalidRequest(
                f"{SECRET_PLACEHOLDER!r} is what statehub shows in place of a secret, and {op.key!r} "
                f"is not a secret; to make it one use `statehub secret set {op.key}`"
            )
        is_secret = op.secret == "value" or was_secret
        if schema is not None:
            is_secret = self._judge(schema, op, op.value, source, is_secret, warnings)
        plain = self._encode(op.value)
        if is_secret:
            return self._seal(plain)
        return plain

    @staticmethod
    def _judge(schema: Schema, op: Op, value: Any, source: str, is_secret: bool, warnings: list[str]) -> bool:
        """Judge one set by ``schema`` (raising its refusal); whether the key is to be stored as a secret."""
        is_secret = is_secret or schema.is_secret(op.key)
        warning = schema.check(op.key, value, source, "set", secret=is_secret)
        if warning is not None:
            warnings.append(warning)
        return is_secret

    def _write_op(
        self,
        op: Op,
        blob: bytes | None,
        index: int,
        count: int,
        entry: Entry | None,
        write: WriteRequest,
        now: float,
        schema: Schema,
    ) -> Change:
        ttl = None
        origin_of = op.origin or write.origin
        origin = None if origin_of is None else self._encode(origin_of)
        if blob is not None:
            created_rev = entry.created_rev if entry is not None else self.rev
            self._conn.execute(
                "INSERT OR REPLACE INTO kv (key, value, rev, created_rev, time, source, user, origin, ttl) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (op.key, blob, self.rev, created_rev, now, write.source, write.user, origin, op.ttl),
            )
            lifetime = op.ttl if op.ttl is not None else schema.ttl_of(op.key)
            ttl = None if lifetime is None else float(lifetime)  # a rule's may be an integer: the wire says float
        else:
            self._conn.execute("DELETE FROM kv WHERE key = ?", (op.key,))
        prev_blob, prev_rev = (entry.blob, entry.rev) if entry is not None else (None, 0)
        change = Change(
            self.rev,
            index,
            count,
            op.key,
            op.op,
            blob,
            prev_blob,
            prev_rev,
            now,
            write.source,
            write.user,
            write.backfill,
            origin,
            ttl,
        )
        self._conn.execute(
            "INSERT INTO history (rev, idx, key, op, value, prev_value, prev_rev, time, source, user, backfill, "
            "origin, ttl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.rev,
                index,
                op.key,
                op.op,
                blob,
                prev_blob,
                prev_rev,
                now,
                write.source,
                write.user,
                write.backfill,
                origin,
                ttl,
            ),
        )
        return change

    def lifetimes(self) -> list[tuple[str, int, float]]:
        """Every key that has a ttl (its last write's, else its rule's): key, revision, seconds.

        One pass at start and after a schema change: only the keys written with
        a ttl when no rule gives one, every key otherwise.
        """
        schema = self.schema
        if not has_ttl_rules(schema):
            rows = self._conn.execute("SELECT key, rev, ttl FROM kv WHERE ttl IS NOT NULL")
            return [(key, rev, float(ttl)) for key, rev, ttl in rows]
        found = []
        for key, rev, ttl in self._conn.execute("SELECT key, rev, ttl FROM kv"):
            lifetime = ttl if ttl is not None else schema.ttl_of(key)
            if lifetime is not None:
                found.append((key, rev, float(lifetime)))
        return found

    def _prune(self, now: float) -> None:
        oldest_kept = self.rev - self.history_keep + 1
        if oldest_kept > self.history_from:
            self._conn.execute("DELETE FROM history WHERE rev < ?", (oldest_kept,))
            self._set_meta("history_from", oldest_kept)
            self.history_from = oldest_kept
        self._conn.execute("DELETE FROM requests WHERE time < ?", (now - REQUEST_ID_SECONDS,))

    def _set_meta(self, name: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def _transaction(self) -> Transaction:
        return Transaction(self._conn)

    def checkpoint(self) -> None:
        """Copy the WAL back into the store file on the write connection.

        Run between commits by the only writer, so nothing is appended meanwhile:
        when every frame is copied (and no reader holds an old snapshot), the next
        commit starts the WAL again from its beginning (hub.checkpoint).
        """
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    # --- secrets ----------------------------------------------------------------

    def open_secret(self, entry: Entry) -> bytes:
        """The plain MessagePack value of a secret (SecretKeyError when the key file cannot open it)."""
        return self.secrets.open(entry.blob, entry.key)

    def _seal(self, plain: bytes) -> bytes:
        may_create = self.meta("secrets_key") is None
        sealed = self.secrets.seal(plain, may_create=may_create)
        if may_create:
            self._set_meta("secrets_key", self.secrets.current_fingerprint)
        return sealed

    def _seal_token(self, token: str, key: str) -> bytes:
        if self.meta("secrets_key") is None:
            raise SecretKeyError(
                f"the sealed value of {key!r} comes from another hub's export: this hub has no secrets key yet, "
                "so it cannot decrypt it; copy that hub's key file here first (see docs/security.md)"
            )
        return self.secrets.reseal_token(token, key)

    def rotate_secrets(self) -> Rotation:
        """Re-encrypt every secret, current and in history, under a new key, in one transaction."""
        self._check_still_there()
        self.secrets.begin_rotation(may_create=self.meta("secrets_key") is None)
        try:
            with self._transaction():
                secrets = self._reencrypt(
                    "SELECT key, value FROM kv", "UPDATE kv SET value = ? WHERE key = ?"
                )
                versions = self._reencrypt(
                    "SELECT rev, idx, value FROM history",
                    "UPDATE history SET value = ? WHERE rev = ? AND idx = ?",
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
        return Rotation(secrets=secrets, versions=versions)

    def _reencrypt(self, select: str, update: str) -> int:
        rows = [row for row in self._conn.execute(select).fetchall() if is_sealed(row[-1])]
        for *where, stored in rows:
            self._conn.execute(update, (self.secrets.reencrypt(stored), *where))
        return len(rows)


def _entries_after(
    stored: list[tuple[Op, Any]], before: dict[str, Entry | None], rev: int, write: WriteRequest, now: float
) -> dict[str, Entry | None]:
    """The rows a write left, as ``find`` would read them back (None: unset)."""
    after: dict[str, Entry | None] = {}
    for op, blob in stored:
        entry = before[op.key]
        created = entry.created_rev if entry is not None else rev
        after[op.key] = None if blob is None else Entry(op.key, blob, rev, created, now, write.source, write.user)
    return after


class StoreView(StoreReader):
    """The server thread's read-only connection, while the store thread writes through the Store.

    WAL lets it read committed state while a commit is under way.  ``current``
    reads the revision and the keys in one read transaction, so a reply never
    pairs a revision with keys of another.
    """

    def __init__(self, store: Store) -> None:
        super().__init__(connect(store.path, readonly=True))
        self.path = store.path
        self.epoch = store.epoch
        self.secrets = store.secrets
        self.generation = store.generation
        self.meta("epoch")  # opens the WAL now: later its folder may be gone (the hub serves reads then too)
        # The schema keys' (key, revision) pairs as last read, and the ttl rules they made.
        self._schema_stamp: list[tuple[str, int]] | None = None
        self._ttl_rules: Schema | None = None

    def ttl_rules(self) -> Schema | None:
        """The stored schema when some rule of it gives keys a ttl, else None: what items add to a key's own ttl.

        Read from this connection, not taken from the store thread's Schema, so
        a reply pairs keys with the rules of a committed state (``current``:
        of the same one; a ``get``'s two reads may straddle a commit).  The
        schema compiles again only when a schema key changed (a schema key's
        revision changes with its text): otherwise this costs one small index read.
        """
        stamp = self._conn.execute(_SCHEMA_STAMP, key_range(SCHEMA_KEY)).fetchall()
        if stamp != self._schema_stamp:
            schema = stored_schema(self.entries(SCHEMA_KEY))
            self._ttl_rules = schema if has_ttl_rules(schema) else None
            self._schema_stamp = stamp
        return self._ttl_rules

    def reopen(self, generation: int) -> None:
        """Read the store file written back under the same path (its ``generation``)."""
        self._conn.close()
        self._conn = connect(self.path, readonly=True)
        self.generation = generation
        self.meta("epoch")

    @property
    def rev(self) -> int:
        return int(self.meta("rev"))

    def current(self, prefix: str = "") -> tuple[int, list[Entry], Schema | None]:
        """The committed revision, the keys under ``prefix`` and the ttl rules, from the same instant."""
        with self.snapshot():
            return int(self.meta("rev")), list(self.entries(prefix)), self.ttl_rules()

    def open_secret(self, entry: Entry) -> bytes:
        """The plain MessagePack value of a secret (SecretKeyError when the key file cannot open it)."""
        return self.secrets.open(entry.blob, entry.key)


def _check_conditions(ops: list[Op], current: dict[str, Entry | None]) -> None:
    """Raise ConflictError for failed compare-and-set conditions, NotFound for an unset of nothing."""
    conflicts = [
        replies.conflict(op.key, op.expect, current[op.key])
        for op in ops
        if op.expect is not None and _rev_of(current[op.key]) != op.expect
    ]
    if conflicts:
        raise ConflictError(_conflict_message(conflicts), conflicts)
    missing = [op.key for op in ops if op.op == "unset" and current[op.key] is None]
    if missing:
        raise NotFound(f"cannot unset {missing[0]!r}: no such key")


def _rev_of(entry: Entry | None) -> int:
    return 0 if entry is None else entry.rev


def _conflict_message(conflicts: list[ConflictDetail]) -> str:
    first = conflicts[0]
    expected = "it to be absent" if first.expected == 0 else f"revision {first.expected}"
    now = f"it is at revision {first.rev}" if first.exists else "it does not exist"
    more = f" (and {len(conflicts) - 1} more keys)" if len(conflicts) > 1 else ""
    return f"conflict on {first.key!r}: you expected {expected}, {now}{more}"
