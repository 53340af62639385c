"""What one commit of the hub's store costs, in-process: by batch size, and with the WAL growing or reused.

    python scripts/bench_commit.py            # 2,000 commits per figure (~1 minute)
    python scripts/bench_commit.py --commits 500

No hub, no sockets: a ``Store`` in a temp dir, writes of the benchmark's shape
(a 100-byte table under one of 100 keys), each commit timed whole and its
``COMMIT`` (the WAL append and fsync) timed apart.  Two stores take turns, so
both see the same disk:

- ``bounded``: checkpointed between commits the way the hub's store thread does
  (``hub.checkpoint.WalBound``), so SQLite writes the WAL over in place;
- ``growing``: never checkpointed, so each commit lengthens the WAL file, as
  every commit of a stream did before the store thread checkpointed.

Then the cost of a write in a batch: one commit of 1, 4 and 8 writes, bounded.
The figures explain the hub's write path in docs/performance.md ("Where a
write's time goes"); the floors (a one-row commit, an fdatasync) are in
``scripts/bench_floors.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.hub import store_file  # noqa: E402
from statehub.hub.checkpoint import WalBound  # noqa: E402
from statehub.hub.protocol import PROTOCOL_VERSION, Set  # noqa: E402
from statehub.hub.store import Store  # noqa: E402

PAYLOAD = "x" * 64
WARMUP = 1000  # commits before measuring: past the bounded WAL's first start-over (~800 of these)


@contextmanager
def timed_commits(into: list[float]) -> Iterator[None]:
    """Time every ``COMMIT`` of the store's transactions into ``into`` (seconds)."""
    original = store_file.Transaction.__exit__

    def exit_timed(self: store_file.Transaction, *exc: object) -> None:
        start = time.perf_counter()
        try:
            original(self, *exc)  # type: ignore[arg-type]
        finally:
            into.append(time.perf_counter() - start)

    store_file.Transaction.__exit__ = exit_timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        store_file.Transaction.__exit__ = original  # type: ignore[method-assign]


def writes(tag: str, n: int, batch: int) -> list[Set]:
    return [
        Set(v=PROTOCOL_VERSION, key=f"b{j}.k{n % 100}", value={"i": n, "p": PAYLOAD}, request_id=f"{tag}.{n}.{j}")
        for j in range(batch)
    ]


def p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def growing_against_bounded(folder: Path, commits: int) -> None:
    bounded, growing = Store(folder / "bounded.db"), Store(folder / "growing.db")
    bound = WalBound(folder / "bounded.db")
    whole: dict[str, list[float]] = {"bounded": [], "growing": []}
    inner: dict[str, list[float]] = {"bounded": [], "growing": []}
    try:
        for n in range(-WARMUP, commits):
            if n == 0:  # the bounded WAL has started over at least once: measure from here
                for samples in (*whole.values(), *inner.values()):
                    samples.clear()
            for name, store in (("bounded", bounded), ("growing", growing)):
                with timed_commits(inner[name]):
                    start = time.perf_counter()
                    store.commit(writes(name, n, 1))
                    whole[name].append(time.perf_counter() - start)
                if name == "bounded" and bound.due():
                    bounded.checkpoint()  # between commits, as the store thread does
        for name in ("bounded", "growing"):
            wal = folder / f"{name}.db-wal"
            print(
                f"one write a commit, WAL {name:8}: commit p50 {p50_us(whole[name]):6.0f} us, "
                f"its COMMIT p50 {p50_us(inner[name]):6.0f} us; WAL file {wal.stat().st_size / 1e6:.1f} MB"
            )
    finally:
        bounded.close()
        growing.close()


def batches(folder: Path, commits: int) -> None:
    store = Store(folder / "batches.db")
    bound = WalBound(folder / "batches.db")
    try:
        single = 0.0
        for size in (1, 4, 8):
            samples = []
            for n in range(commits // 2):
                start = time.perf_counter()
                store.commit(writes(f"s{size}", n, size))
                samples.append(time.perf_counter() - start)
                if bound.due():
                    store.checkpoint()
            p50 = p50_us(samples)
            single = single or p50
            extra = "" if size == 1 else f", {(p50 - single) / (size - 1):.0f} us for each write after the first"
            print(f"a commit of {size} writes, WAL bounded: p50 {p50:6.0f} us{extra}")
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=2000, help="commits per figure (default 2000)")
    args = parser.parse_args()
    if args.commits < 100:
        parser.error("--commits must be at least 100: fewer give no stable median")
    with tempfile.TemporaryDirectory(prefix="statehub-bench-commit-") as folder:
        growing_against_bounded(Path(folder), args.commits)
        batches(Path(folder), args.commits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
