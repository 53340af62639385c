"""Measure the hub's footprint: resident memory idle and with 10,000 keys, start-up time with 10,000 keys.

    python scripts/footprint.py                 # a fresh hub in a temp dir
    python scripts/footprint.py --keys 50000 --json out.json

scripts/bench (bench_suite.py) imports the pieces below for its footprint section.

RSS is VmRSS from /proc (Linux), read after the hub has been idle for a moment
(its mirror rewritten).  Keys hold EDS-like records of about 300 bytes, written
1000 per transaction.  Start-up time is from launching `python -m statehub.hub` to its
"ready: serving" log line (interpreter start, imports, opening the store,
writing the mirror and hub.json), the median of several restarts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.hub.mirror_writer import write_mirror  # noqa: E402
from statehub.hub.protocol import Op  # noqa: E402
from statehub.testing import HubProcess  # noqa: E402

SETTLE = 1.5  # seconds of idleness before reading RSS: lets the mirror thread finish its rewrite


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(rest.split()[0])
    return fields


def record(i: int) -> dict[str, object]:
    return {
        "value": 50.0 + i % 97 / 7,
        "quality": "G",
        "units": "MGD",
        "time": "2025-05-29T20:15:00Z",
        "local": "2025-05-29T15:15:00-05:00",
        "tz": "America/Chicago",
        "point": f"P{i:05d}.UNIT0@NET0",
        "sid": i,
        "idcs": f"P{i:05d}",
        "desc": "FOOTPRINT TEST POINT",
        "file": "footprint.csv",
        "line": i + 2,
    }


def fill(
    hub: HubProcess, keys: int, value: Callable[[int], Any] = record, prefix: str = "eds.Footprint.P"
) -> None:
    """Write keys ``prefix00000``... holding ``value(i)``, 1000 per transaction."""
    with hub.client(timeout=30.0) as client:
        for start in range(0, keys, 1000):
            client.txn(
                [
                    Op(op="set", key=f"{prefix}{i:05d}", value=value(i))
                    for i in range(start, min(keys, start + 1000))
                ]
            )


def mirror_rewrite(data_dir: Path, into: Path) -> float:
    """Seconds for one mirror rewrite of the store in ``data_dir`` (the mirror thread's own function),
    written to ``into`` rather than over the hub's mirror."""
    started = time.perf_counter()
    write_mirror(data_dir / "state.db", into)
    return time.perf_counter() - started


def timed_start(hub: HubProcess) -> float:
    started = time.perf_counter()
    hub.start()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-footprint-") as temp:
        hub = HubProcess(Path(temp) / "data", heartbeat=1.0)
        empty_start = timed_start(hub)
        time.sleep(SETTLE)
        idle = rss_kib(hub.pid)
        fill(hub, args.keys)
        time.sleep(SETTLE)
        filled = rss_kib(hub.pid)
        hub.terminate()
        starts = []
        for _ in range(args.restarts):
            starts.append(timed_start(hub))
            time.sleep(SETTLE)
            restarted = rss_kib(hub.pid)
            hub.terminate()
        store = (Path(temp) / "data" / "state.db").stat().st_size
        mirror = (Path(temp) / "data" / "state.txt").stat().st_size
    results = {
        "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}, {os.cpu_count()} CPUs",
        "idle_empty_kib": idle,
        "after_writing_keys_kib": filled,
        "restarted_with_keys_kib": restarted,
        "keys": args.keys,
        "start_empty_s": round(empty_start, 3),
        "start_with_keys_s": {
            "median": round(statistics.median(starts), 3),
            "all": [round(s, 3) for s in starts],
        },
        "store_bytes": store,
        "mirror_bytes": mirror,
    }
    print(results["machine"])
    print(
        f"RSS idle, empty store:            {idle['VmRSS'] / 1024:6.1f} MiB (peak {idle['VmHWM'] / 1024:.1f})"
    )
    print(
        f"RSS after writing {args.keys} keys:    {filled['VmRSS'] / 1024:6.1f} MiB (peak {filled['VmHWM'] / 1024:.1f})"
    )
    print(
        f"RSS restarted with {args.keys} keys:   {restarted['VmRSS'] / 1024:6.1f} MiB (peak {restarted['VmHWM'] / 1024:.1f})"
    )
    print(f"start-up, empty store:            {empty_start:.3f} s")
    print(
        f"start-up with {args.keys} keys:        {statistics.median(starts):.3f} s median of {len(starts)} {results['start_with_keys_s']['all']}"
    )
    print(f"store {store / 1e6:.1f} MB, mirror {mirror / 1e6:.1f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
