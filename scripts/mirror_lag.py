"""Mirror lag under sustained writes: how long after its acknowledgement a write shows in the mirror.

    python scripts/mirror_lag.py                                # 100,000 keys, 500 writes/s for 10 s
    python scripts/mirror_lag.py --keys 30000 --rate 1000 --seconds 20 --json lag.json

A hub in a temp dir is filled with ``--keys`` keys (1,000 per txn, ~300-byte records as in
footprint.py), then one client writes ``--rate`` small values a second for ``--seconds``.  A
thread reads the mirror's header every millisecond or two and notes when each revision first
shows; a write's lag is that moment minus the moment its acknowledgement arrived.  Reported:
p50, p99 and max of the lag, the number of mirror rewrites seen, and the writes acknowledged.
scripts/bench's footprint section runs the same measurement (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import footprint  # noqa: E402

from statehub.testing import HubProcess  # noqa: E402

CATCH_UP_TIMEOUT = 60.0  # after the writes: the mirror must reach the last revision within this


def _header_rev(path: Path) -> int | None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(600)
    except OSError:
        return None
    for line in head.split(b"\n"):
        if line.startswith(b"# revision: "):
            return int(line[len(b"# revision: ") :])
    return None


class _Watcher(threading.Thread):
    """Notes (first seen, revision) each time the mirror shows a newer revision."""

    def __init__(self, mirror: Path) -> None:
        super().__init__(daemon=True)
        self.mirror = mirror
        self.seen: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        last = -1
        while not self.stop.wait(0.001):
            rev = _header_rev(self.mirror)
            if rev is not None and rev > last:
                self.seen.append((time.monotonic(), rev))
                last = rev


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def settle(hub: HubProcess) -> None:
    """Wait until the mirror shows the hub's current revision (after a fill, it renders every new key once)."""
    with hub.client(timeout=10.0) as client:
        rev = client.status().rev
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while (_header_rev(hub.data_dir / "state.txt") or -1) < rev:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the mirror did not reach revision {rev} within {CATCH_UP_TIMEOUT:.0f} s")
        time.sleep(0.05)


def measure(hub: HubProcess, rate: float, seconds: float) -> dict[str, Any]:
    """Write at ``rate`` for ``seconds`` to a running hub; the mirror's lag behind the acknowledgements."""
    settle(hub)
    watcher = _Watcher(hub.data_dir / "state.txt")
    watcher.start()
    acked: list[tuple[float, int]] = []
    try:
        with hub.client(timeout=10.0) as client:
            next_at = time.monotonic()
            end = next_at + seconds
            n = 0
            while time.monotonic() < end:
                rev = client.set(f"lag.k{n % 100}", {"n": n}).rev
                acked.append((time.monotonic(), rev))
                n += 1
                next_at += 1.0 / rate
                time.sleep(max(0.0, next_at - time.monotonic()))
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while time.monotonic() < deadline and (not watcher.seen or watcher.seen[-1][1] < acked[-1][1]):
            time.sleep(0.01)
    finally:
        watcher.stop.set()
        watcher.join(5)
    if not watcher.seen or watcher.seen[-1][1] < acked[-1][1]:
        raise RuntimeError(f"the mirror did not reach revision {acked[-1][1]} within {CATCH_UP_TIMEOUT:.0f} s")
    lags, shown = [], 0
    for when, rev in acked:
        while watcher.seen[shown][1] < rev:
            shown += 1
        lags.append(max(0.0, watcher.seen[shown][0] - when))
    return {
        "writes": len(acked),
        "rewrites_seen": len(watcher.seen),
        "lag_p50_ms": percentile(lags, 50) * 1e3,
        "lag_p99_ms": percentile(lags, 99) * 1e3,
        "lag_max_ms": max(lags) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0, help="writes per second (default 500)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="statehub-mirror-lag-") as temp,
        HubProcess(Path(temp) / "data", heartbeat=1.0) as hub,
    ):
        footprint.fill(hub, args.keys)
        result = {"keys": args.keys, "rate": args.rate, **measure(hub, args.rate, args.seconds)}
    print(
        f"mirror lag, {args.keys:,} keys, {result['writes']:,} writes at {args.rate:g}/s: "
        f"p50 {result['lag_p50_ms']:.0f} ms, p99 {result['lag_p99_ms']:.0f} ms, max {result['lag_max_ms']:.0f} ms; "
        f"{result['rewrites_seen']} rewrites seen"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
