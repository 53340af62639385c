"""Change-notification latency as seen by a watcher process: Rust `statehub-rs watch` vs Python `statehub watch`.

Both watchers run as subprocesses printing JSON lines; this process writes values carrying
CLOCK_MONOTONIC (system-wide on Linux) and timestamps each line as it arrives, so both are
measured the same way, pipe included.

    python scripts/bench_watch.py [--count 2000] [--rate 500]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.client import Client  # noqa: E402
from statehub.testing import HubProcess  # noqa: E402

RUST = Path(__file__).resolve().parent.parent / "clients" / "rust" / "target" / "release" / "statehub-rs"


def measure(command: list[str], data_dir: Path, count: int, rate: float) -> list[float]:
    with Client(data_dir, timeout=5) as client:
        client.set("lat.ready", 0)
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert watcher.stdout is not None
    latencies: list[float] = []
    ready = threading.Event()

    def read() -> None:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            arrived = time.monotonic_ns()
            change = json.loads(line)
            if change.get("key") == "lat.ready":
                ready.set()
            elif isinstance(change.get("value"), dict):
                latencies.append((arrived - change["value"]["t"]) / 1e3)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with Client(data_dir, timeout=5) as client:
        deadline = time.monotonic() + 30
        while not ready.wait(0.2) and time.monotonic() < deadline:
            client.set("lat.ready", time.time())  # the watcher prints it once it is live
        next_at = time.monotonic()
        for i in range(count):
            client.set(f"lat.k{i % 10}", {"t": time.monotonic_ns(), "p": "x" * 40})
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    deadline = time.monotonic() + 10
    while len(latencies) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    watcher.terminate()
    watcher.wait(10)
    return latencies


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    print(f"{name:<22} n={len(samples):<6} p50 {p(0.50):7.0f} us   p99 {p(0.99):7.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, HubProcess(Path(tmp) / "data", heartbeat=1.0) as hub:
        python_watch = [
            sys.executable,
            "-m",
            "statehub.cli",
            "--data-dir",
            str(hub.data_dir),
            "watch",
            "lat.",
            "--json",
        ]
        report("python statehub watch", measure(python_watch, hub.data_dir, args.count, args.rate))
        if RUST.exists():
            rust_watch = [str(RUST), "--data-dir", str(hub.data_dir), "watch", "lat.", "--json"]
            report("rust statehub-rs watch", measure(rust_watch, hub.data_dir, args.count, args.rate))
        else:
            print(f"no {RUST}: build it with clients/rust/ci.sh")


if __name__ == "__main__":
    main()
