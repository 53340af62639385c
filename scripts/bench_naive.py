"""Two floors for the benchmark: the least a Python hub on ZeroMQ and SQLite can do for a durable write.

    python scripts/bench_naive.py serve DIR              # the "naive hub" peer of --peers
    python scripts/bench_naive.py serve DIR --contract   # the "contract floor" peer of --peers
    python scripts/bench_naive.py serve DIR --log        # the "log floor" peer of --peers

One thread, one ROUTER and one PUB on ipc://, SQLite in WAL mode with ``synchronous=FULL``.

- The naive hub: for each request, ``INSERT OR REPLACE`` into one table and ``COMMIT`` (one
  fsync), reply, publish the change.  No revisions, history, request ids, validation, batching,
  mirror, heartbeat or welcome.
- The contract floor: the same loop doing only what statehub's contract needs of the store for
  each write, written as plainly as Python allows.  A revision per write; a history row per
  change (with the per-key index), so a subscriber can resume from any revision; the request id
  looked up and recorded in the same transaction, so a retried write is applied once; the key's
  row with its revision.  Nothing else: no schema, secrets, ttl, batching, mirror or heartbeat.
- The log floor: the contract floor's write made durable the way Redis makes it, by appending one
  record (revision, request id, key, value) to a log file and ``fdatasync``-ing it; the state and
  the request ids live in memory.  It is what a hub whose durable point is an append-only log
  (the store brought up to date after the reply) could at best answer in, in Python.

statehub's figures against these two split what it costs into the contract's SQL and its own
code.  They are measuring sticks, not peers anyone would run.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import zmq
from bench import NOTIFY_PAD, NOTIFY_PREFIX, Listener, Writer
from bench_peers import ServerProcess


def bound_sockets(folder: Path) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    """The floor's ROUTER and PUB, bound on ipc:// in ``folder``, which then says it is ready."""
    context = zmq.Context()
    router, pub = context.socket(zmq.ROUTER), context.socket(zmq.PUB)
    router.bind(f"ipc://{folder}/rpc.sock")
    pub.bind(f"ipc://{folder}/events.sock")
    (folder / "ready").write_text("ready\n")
    return router, pub


def serve(folder: Path) -> None:
    db = sqlite3.connect(folder / "naive.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
    router, pub = bound_sockets(folder)
    while True:
        identity, empty, body = router.recv_multipart()
        key, value = msgspec.msgpack.decode(body)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))
        db.execute("COMMIT")
        router.send_multipart([identity, empty, b"ok"])
        pub.send_multipart([key.encode(), body])


CONTRACT_TABLES = (
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, rev INTEGER) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS history (rev INTEGER PRIMARY KEY, key TEXT, value BLOB, prev_rev INTEGER)",
    "CREATE INDEX IF NOT EXISTS history_by_key ON history (key, rev)",
    "CREATE TABLE IF NOT EXISTS requests (request_id TEXT PRIMARY KEY, rev INTEGER, time REAL) WITHOUT ROWID",
)


def serve_contract(folder: Path) -> None:
    db = sqlite3.connect(folder / "contract.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    for statement in CONTRACT_TABLES:
        db.execute(statement)
    rev = db.execute("SELECT coalesce(max(rev), 0) FROM history").fetchone()[0]
    encode, decode = msgspec.msgpack.Encoder().encode, msgspec.msgpack.Decoder().decode
    router, pub = bound_sockets(folder)
    while True:
        identity, empty, body = router.recv_multipart()
        key, value, request_id = decode(body)
        db.execute("BEGIN IMMEDIATE")
        done = db.execute("SELECT rev FROM requests WHERE request_id = ?", (request_id,)).fetchone()
        if done is not None:
            db.execute("COMMIT")
            router.send_multipart([identity, empty, encode(done[0])])
            continue
        prev = db.execute("SELECT rev FROM kv WHERE key = ?", (key,)).fetchone()
        rev += 1
        db.execute("INSERT OR REPLACE INTO kv (key, value, rev) VALUES (?, ?, ?)", (key, value, rev))
        db.execute(
            "INSERT INTO history (rev, key, value, prev_rev) VALUES (?, ?, ?, ?)",
            (rev, key, value, prev[0] if prev else 0),
        )
        db.execute(
            "INSERT INTO requests (request_id, rev, time) VALUES (?, ?, ?)", (request_id, rev, time.time())
        )
        db.execute("COMMIT")
        router.send_multipart([identity, empty, encode(rev)])
        pub.send_multipart([key.encode(), encode((key, value, rev))])


def serve_log(folder: Path) -> None:
    encode, decode = msgspec.msgpack.Encoder().encode, msgspec.msgpack.Decoder().decode
    state: dict[str, tuple[bytes, int]] = {}
    done: dict[str, int] = {}
    rev = 0
    router, pub = bound_sockets(folder)
    with open(folder / "log", "ab", buffering=0) as log:
        while True:
            identity, empty, body = router.recv_multipart()
            key, value, request_id = decode(body)
            if request_id in done:
                router.send_multipart([identity, empty, encode(done[request_id])])
                continue
            rev += 1
            record = encode((rev, request_id, key, value))
            log.write(len(record).to_bytes(4, "little") + record)
            os.fdatasync(log.fileno())
            state[key], done[request_id] = (value, rev), rev
            router.send_multipart([identity, empty, encode(rev)])
            pub.send_multipart([key.encode(), encode((key, value, rev))])


class NaiveServer(ServerProcess):
    name = "naive"

    def command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "serve", str(self.dir)]

    def is_ready(self) -> bool:
        return (self.dir / "ready").exists()

    def settings(self) -> dict[str, str]:
        return {"version": "-", "what": "one-thread Python ROUTER + SQLite WAL FULL, a floor"}

    def target(self) -> NaiveTarget:
        return NaiveTarget(str(self.dir))


class LogServer(NaiveServer):
    name = "log"

    def command(self) -> list[str]:
        return [*super().command(), "--log"]

    def settings(self) -> dict[str, str]:
        return {
            "version": "-",
            "what": "the contract floor made durable by a log append + fdatasync, a floor",
        }

    def target(self) -> NaiveTarget:
        return NaiveTarget(str(self.dir), name="log", contract=True)


class ContractServer(NaiveServer):
    name = "contract"

    def command(self) -> list[str]:
        return [*super().command(), "--contract"]

    def settings(self) -> dict[str, str]:
        return {"version": "-", "what": "the naive hub plus revisions, history and request ids, a floor"}

    def target(self) -> NaiveTarget:
        return NaiveTarget(str(self.dir), name="contract", contract=True)


@dataclass(frozen=True)
class NaiveTarget:
    folder: str
    name: str = "naive"
    contract: bool = False  # the contract floor: each write carries a request id, a change its revision

    def writer(self) -> Writer:
        return _NaiveWriter(self.folder, self.contract)

    def listener(self, prefix: str) -> Listener:
        return _NaiveListener(self.folder, prefix)

    def change(self, rep: int, index: int, t_ns: int) -> tuple[str, dict[str, Any]]:
        return f"{NOTIFY_PREFIX}k{index % 10}", {"r": rep, "t": t_ns, "p": NOTIFY_PAD}


class _NaiveWriter:
    def __init__(self, folder: str, contract: bool) -> None:
        self._contract = contract
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.REQ)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(f"ipc://{folder}/rpc.sock")
        self._encode = msgspec.msgpack.Encoder().encode

    def write(self, key: str, value: dict[str, Any]) -> None:
        if self._contract:  # a request id per write, as statehub's client sends
            self._socket.send(self._encode((key, self._encode(value), uuid.uuid4().hex)))
        else:
            self._socket.send(self._encode((key, self._encode(value))))
        if not self._socket.poll(10_000):
            raise RuntimeError("the naive hub did not answer within 10 s")
        self._socket.recv()

    def close(self) -> None:
        self._context.destroy(linger=0)


class _NaiveListener:
    def __init__(self, folder: str, prefix: str) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self._socket.connect(f"ipc://{folder}/events.sock")
        self._decode = msgspec.msgpack.Decoder().decode

    def wait_live(self, timeout: float) -> bool:
        # PUB has no welcome: a short settling time is all a naive subscriber has (the join race).
        time.sleep(min(timeout, 0.5))
        return True

    def receive(self, timeout: float) -> list[tuple[int, float]]:
        if not self._socket.poll(int(timeout * 1000)):
            return []
        _topic, body = self._socket.recv_multipart()
        now = time.monotonic_ns()
        _key, value, *_rev = self._decode(body)
        change = self._decode(value)
        return [(int(change["r"]), (now - int(change["t"])) / 1e9)] if "t" in change else []

    def close(self) -> None:
        self._context.destroy(linger=0)


if __name__ == "__main__":
    modes = {(): serve, ("--contract",): serve_contract, ("--log",): serve_log}
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "serve" or tuple(sys.argv[3:]) not in modes:
        raise SystemExit(__doc__)
    modes[tuple(sys.argv[3:])](Path(sys.argv[2]))
