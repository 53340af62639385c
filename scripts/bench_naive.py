"""A floor for the benchmark: the least a Python hub on ZeroMQ and SQLite can do for a durable write.

    python scripts/bench_naive.py serve DIR      # what --peers runs as the "naive hub" peer

One thread, one ROUTER and one PUB on ipc://, one SQLite table in WAL mode with
``synchronous=FULL``: for each request, ``INSERT OR REPLACE`` and ``COMMIT`` (one fsync),
reply, publish the change.  No revisions, history, request ids, validation, batching, mirror,
heartbeat or welcome: what statehub adds costs the difference between this and statehub.  It is
a measuring stick, not a peer anyone would run.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import zmq
from bench import NOTIFY_PAD, NOTIFY_PREFIX, Listener, Writer
from bench_peers import ServerProcess


def serve(folder: Path) -> None:
    db = sqlite3.connect(folder / "naive.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
    context = zmq.Context()
    router, pub = context.socket(zmq.ROUTER), context.socket(zmq.PUB)
    router.bind(f"ipc://{folder}/rpc.sock")
    pub.bind(f"ipc://{folder}/events.sock")
    (folder / "ready").write_text("ready\n")
    while True:
        identity, empty, body = router.recv_multipart()
        key, value = msgspec.msgpack.decode(body)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))
        db.execute("COMMIT")
        router.send_multipart([identity, empty, b"ok"])
        pub.send_multipart([key.encode(), body])


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


@dataclass(frozen=True)
class NaiveTarget:
    folder: str
    name: str = "naive"

    def writer(self) -> Writer:
        return _NaiveWriter(self.folder)

    def listener(self, prefix: str) -> Listener:
        return _NaiveListener(self.folder, prefix)

    def change(self, rep: int, index: int, t_ns: int) -> tuple[str, dict[str, Any]]:
        return f"{NOTIFY_PREFIX}k{index % 10}", {"r": rep, "t": t_ns, "p": NOTIFY_PAD}


class _NaiveWriter:
    def __init__(self, folder: str) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.REQ)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(f"ipc://{folder}/rpc.sock")
        self._encode = msgspec.msgpack.Encoder().encode

    def write(self, key: str, value: dict[str, Any]) -> None:
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
        _key, value = self._decode(body)
        change = self._decode(value)
        return [(int(change["r"]), (now - int(change["t"])) / 1e9)] if "t" in change else []

    def close(self) -> None:
        self._context.destroy(linger=0)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        raise SystemExit(__doc__)
    serve(Path(sys.argv[2]))
