#!/usr/bin/env python3
"""The hub's bounds as figures: a subscription flood's cost in RSS, and other clients' latency under max-size txns.

Issue 13 items 6 and 7, measured on a real hub process:

- flood: one peer subscribes to 2,000 distinct 4,000-byte topics, then three rounds
  of 2,000 of 400 bytes (what once grew the hub by ~370 MiB); prints the hub's RSS
  before and after.
- stall: a probe client writes and reads one small key in a loop, first alone, then
  while two clients send valid 4 MiB txns of tiny elements back to back; prints the
  probe's write ack and read p50 / p99 / max for both phases.

    python scripts/bench_bounds.py                 # both, 20 s of probing per phase
    python scripts/bench_bounds.py --seconds 10 --only stall
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from statehub import Client  # noqa: E402
from statehub.hub.paths import Layout, read_hub_info  # noqa: E402
from statehub.testing import HubProcess  # noqa: E402
from tests.test_bounds import Flooder, flood_subscriptions, max_size_txn, rss  # noqa: E402

MIB = 1024 * 1024


def flood(data_dir: Path) -> None:
    with HubProcess(data_dir) as hub, Client(hub.data_dir, timeout=5) as client:
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        with client.subscribe("") as subscription:
            subscription.next_event(10)
        start = rss(hub.pid)
        flood_subscriptions(info.events, 4000, 2000)
        for _ in range(3):
            flood_subscriptions(info.events, 400, 2000)
        with client.subscribe("") as subscription:
            welcomed = subscription.next_event(10) is not None
        end = rss(hub.pid)
        print(
            f"flood: hub RSS {start / MIB:.1f} MiB before, {end / MIB:.1f} MiB after "
            f"(+{(end - start) / MIB:.1f} MiB); a new subscriber {'synced' if welcomed else 'did NOT sync'}"
        )


def probe(client: Client, seconds: float) -> tuple[list[float], list[float]]:
    """Write and read one key for ``seconds``; the latencies in ms."""
    acks: list[float] = []
    reads: list[float] = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        t0 = time.perf_counter()
        client.set("probe.n", n)
        t1 = time.perf_counter()
        client.get("probe.n")
        t2 = time.perf_counter()
        acks.append((t1 - t0) * 1000)
        reads.append((t2 - t1) * 1000)
    return acks, reads


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{name} p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.1f} ms (n={len(ordered)})"


def stall(data_dir: Path, seconds: float) -> None:
    with HubProcess(data_dir) as hub, Client(hub.data_dir, timeout=10) as client:
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        quiet = probe(client, seconds)
        stop = threading.Event()
        flooders = [Flooder(info.rpc, max_size_txn(name), stop) for name in ("a", "b")]
        for flooder in flooders:
            flooder.start()
        try:
            loaded = probe(client, seconds)
        finally:
            stop.set()
            for flooder in flooders:
                flooder.join(60)
        txns = sum(f.answered for f in flooders)
        print(f"stall, alone:          {summary('ack', quiet[0])}; {summary('read', quiet[1])}")
        print(
            f"stall, 4 MiB txns ({txns} committed in {seconds:.0f} s): {summary('ack', loaded[0])}; {summary('read', loaded[1])}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="probing per phase (default 20)")
    parser.add_argument("--only", choices=["flood", "stall"], help="run one of the two")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bounds-") as tmp:
        if args.only in (None, "flood"):
            flood(Path(tmp) / "flood")
        if args.only in (None, "stall"):
            stall(Path(tmp) / "stall", args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
