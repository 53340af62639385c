"""The store's file: its tables, the write connection's settings, and opening it safely.

``open_store_file`` is what the hub does before it trusts a store: a quick
integrity check (a damaged file is found at start, not halfway through
serving), the tables created if they are missing, and a refusal of a store
written by a newer statehub, and the numbered migrations that bring an older
store's tables up to this statehub's layout, each in its own transaction.
(The configuration schema of issue 20 is ``hub.schema``, another thing.)
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from statehub.hub.errors import StorageError
from statehub.hub.store_reads import connect

BACKSTOP_CHECKPOINT_PAGES = 16_384  # 64 MiB of WAL: only reached if the mirror thread's checkpoints stop

# The tables as schema 1 made them; MIGRATIONS bring them to SCHEMA_VERSION, for new
# stores too, so there is one path to the current layout.
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

# MIGRATIONS[n] takes a store from schema n to n + 1.  Append only: never edit one that shipped.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: history rows remember whether their write was backfill (a replayed export).
    1: ("ALTER TABLE history ADD COLUMN backfill INTEGER NOT NULL DEFAULT 0",),
    # 2 -> 3: a key and a history row remember where a change came from when another hub made it
    # (a site's change applied at the centre: docs/sites.md), as a MessagePack SiteOrigin.
    2: ("ALTER TABLE kv ADD COLUMN origin BLOB", "ALTER TABLE history ADD COLUMN origin BLOB"),
    # 3 -> 4: a key written with a ttl keeps it, so a restart knows the key's lifetime (docs/schema.md).
    3: ("ALTER TABLE kv ADD COLUMN ttl REAL",),
    # 4 -> 5: a history row of a set keeps the lifetime it was published with (its write's ttl, else
    # its rule's), so a page of the change feed shows each change as the stream did (docs/protocol.md).
    4: ("ALTER TABLE history ADD COLUMN ttl REAL",),
}
SCHEMA_VERSION = 1 + len(MIGRATIONS)


class Transaction:
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


def new_epoch() -> str:
    return uuid.uuid4().hex[:16]


def open_for_writing(path: Path) -> sqlite3.Connection:
    """A connection that may write: WAL, and a commit that returns only once it is on disk."""
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL makes every commit fsync the WAL: an acknowledged write survives power loss.
        conn.execute("PRAGMA synchronous = FULL")
        # A checkpoint inside a COMMIT (SQLite's default, every 1,000 pages) made one write in a
        # few hundred wait for milliseconds.  The hub's mirror thread checkpoints instead
        # (hub.mirror_writer, PASSIVE: writers go on); this is only the backstop.
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_CHECKPOINT_PAGES}")
    except BaseException:
        conn.close()
        raise
    return conn


def open_store_file(path: Path) -> sqlite3.Connection:
    """The write connection of a checked store at ``path``, created if it is new.

    Raises sqlite3.DatabaseError for a damaged file, StorageError for a store
    of a newer schema.
    """
    conn = open_for_writing(path)
    try:
        _check_integrity(conn)
        _create_tables(conn)
        _check_schema(conn, path)
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_integrity(conn: sqlite3.Connection) -> None:
    # quick_check reads every page.
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError("integrity check failed: " + "; ".join(problems))


def _create_tables(conn: sqlite3.Connection) -> None:
    defaults = {
        "schema": 1,  # the layout _SCHEMA makes; _migrate takes it on
        "rev": 0,
        "epoch": new_epoch(),
        "created": time.time(),
        "history_from": 1,  # history is complete for every revision from this one on
    }
    with Transaction(conn):
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        for name, value in defaults.items():
            conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", (name, value))


def _schema_of(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()[0])


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    schema = _schema_of(conn)
    if schema > SCHEMA_VERSION:
        raise StorageError(
            f"store {path} has schema {schema}; this statehub understands {SCHEMA_VERSION}: upgrade statehub"
        )


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this store lacks, in order; each step and its new number commit together."""
    for schema in range(_schema_of(conn), SCHEMA_VERSION):
        with Transaction(conn):
            for statement in MIGRATIONS[schema]:
                conn.execute(statement)
            conn.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (schema + 1,))
