"""The floors under the benchmark's figures, measured in the same run: what no design on this machine beats.

    python scripts/bench_floors.py DIR      # print the four floors, DIR on the disk the hub would use

- ZeroMQ REQ/REP round trip over ipc://, to an echo in another process (a reply costs at least this);
- a 4 KiB ``pwrite`` + ``fdatasync`` in DIR (a durable write costs at least one of these);
- a one-row SQLite commit, WAL with ``synchronous=FULL``, in DIR (the naive hub's commit);
- PUB -> SUB one way over ipc://, to a subscriber in another process, at 1,000 messages/s
  (a change notification costs at least this beyond its commit).

Each is the p50 and p99 of its samples, in microseconds.  ``scripts/bench_suite.py --peers`` runs
them once a repetition, taking turns with the targets, and prints them under the table.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import _latency_summary  # noqa: E402

READY_TIMEOUT = 10.0
WARMUP = 100


def _echo(endpoint: str, count: int) -> None:
    context = zmq.Context()
    rep = context.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind(endpoint)
    try:
        for _ in range(count):
            if not rep.poll(int(READY_TIMEOUT * 1000)):
                return
            rep.send(rep.recv())
    finally:
        context.destroy(linger=0)


def zmq_round_trip(folder: Path, count: int, ctx: BaseContext) -> dict[str, float]:
    """A 64-byte REQ -> REP -> REQ round trip over ipc:// to another process."""
    endpoint = f"ipc://{folder}/floor-rr.sock"
    echo = ctx.Process(target=_echo, args=(endpoint, WARMUP + count), daemon=True)  # type: ignore[attr-defined]
    echo.start()
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(endpoint)
    body = b"x" * 64
    samples = []
    try:
        for i in range(WARMUP + count):
            start = time.perf_counter()
            req.send(body)
            if not req.poll(int(READY_TIMEOUT * 1000)):
                raise RuntimeError("the echo process did not answer within 10 s")
            req.recv()
            if i >= WARMUP:
                samples.append(time.perf_counter() - start)
    finally:
        context.destroy(linger=0)
        echo.join(5)
        if echo.is_alive():
            echo.terminate()
    return _latency_summary(samples)


def write_fdatasync(folder: Path, count: int) -> dict[str, float]:
    """A 4 KiB ``pwrite`` over the same block, then ``fdatasync``: one durable write to the disk."""
    fd, name = tempfile.mkstemp(dir=folder, prefix="floor-")
    block = b"w" * 4096
    samples = []
    try:
        os.pwrite(fd, block, 0)
        os.fsync(fd)
        for i in range(WARMUP + count):
            start = time.perf_counter()
            os.pwrite(fd, block, (i % 16) * 4096)
            os.fdatasync(fd)
            if i >= WARMUP:
                samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(name)
    return _latency_summary(samples)


def sqlite_commit(folder: Path, count: int) -> dict[str, float]:
    """``BEGIN IMMEDIATE``, one ``INSERT OR REPLACE`` of 64 bytes, ``COMMIT`` (WAL, synchronous=FULL)."""
    path = folder / "floor.db"
    db = sqlite3.connect(path, isolation_level=None)
    samples = []
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
        value = b"v" * 64
        for i in range(WARMUP + count):
            start = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (f"k{i % 100}", value))
            db.execute("COMMIT")
            if i >= WARMUP:
                samples.append(time.perf_counter() - start)
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return _latency_summary(samples)


def _subscribe(endpoint: str, count: int, out: Any) -> None:
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    samples = []
    try:
        out.put(("ready", None))
        deadline = time.monotonic() + READY_TIMEOUT + count / 100
        while len(samples) < count and time.monotonic() < deadline:
            if not sub.poll(100):
                continue
            sent = int(sub.recv())
            if sent >= 0:  # a negative stamp is a probe: the subscription is not yet known to be live
                samples.append((time.monotonic_ns() - sent) / 1e9)
        out.put(("samples", samples))
    finally:
        context.destroy(linger=0)


def pub_sub_one_way(folder: Path, count: int, ctx: BaseContext, rate: float = 1000.0) -> dict[str, float]:
    """PUB in this process -> SUB in another over ipc://, each message carrying CLOCK_MONOTONIC."""
    endpoint = f"ipc://{folder}/floor-ps.sock"
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    out = ctx.Queue()
    sub = ctx.Process(target=_subscribe, args=(endpoint, count, out), daemon=True)  # type: ignore[attr-defined]
    sub.start()
    try:
        out.get(timeout=READY_TIMEOUT)
        time.sleep(0.3)  # a SUB's subscription reaches the PUB a moment after connecting (no welcome here)
        next_at = time.monotonic()
        for i in range(WARMUP + count):
            pub.send(str(time.monotonic_ns() if i >= WARMUP else -1).encode())
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        kind, samples = out.get(timeout=READY_TIMEOUT + count / 100)
    finally:
        context.destroy(linger=0)
        sub.join(5)
        if sub.is_alive():
            sub.terminate()
    if not samples:
        raise RuntimeError("no PUB -> SUB message arrived")
    return _latency_summary(samples)


def floors(folder: Path, ctx: BaseContext, count: int = 2000) -> dict[str, dict[str, float]]:
    """Every floor, measured once, in ``folder``."""
    return {
        "zmq_round_trip": zmq_round_trip(folder, count, ctx),
        "fdatasync": write_fdatasync(folder, count // 2),
        "sqlite_commit": sqlite_commit(folder, count // 2),
        "pub_sub": pub_sub_one_way(folder, count, ctx),
    }


def main() -> None:
    import bench

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="statehub-floors-"))
    folder.mkdir(parents=True, exist_ok=True)
    for name, summary in floors(folder, bench.context()).items():
        print(f"{name}: p50 {summary['p50_us']:.0f} us, p99 {summary['p99_us']:.0f} us")


if __name__ == "__main__":
    main()
