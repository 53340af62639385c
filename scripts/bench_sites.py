"""The sites' figures (issue 19): site -> centre through NATS JetStream, and the uplink's memory.

    python scripts/bench_sites.py                # 100,000 changes each (several minutes)
    python scripts/bench_sites.py --quick        # 5,000 (a smoke run)

Runs on one machine: Debian's nats-server (JetStream, its store in a temp dir), a site hub, a
central hub, ``statehub uplink`` beside the site and ``statehub follow-sites`` beside the centre,
all real processes. Then, each timed:

1. **forwarding**: N changes written at the site as fast as the hub takes them (batches of
   1,000 one-change revisions), with the uplink and the follower running: changes per second from
   the first write until the centre's link record holds the site's last revision;
2. **lag**: 300 single writes at the site, 20 ms apart, on a caught-up link: for each, the
   central hub's commit time minus the site's commit time (both hubs' clocks are this machine's),
   p50 and p99;
3. **catch-up**: nats-server is stopped (the link is down), N changes are made at the site, then
   nats-server starts again on the same store: the time until the centre holds the site's last
   revision. (The issue's outage is 10 minutes; the count of changes is what costs, so the
   outage here lasts as long as writing them takes: say so when quoting it.)
4. **uplink RSS**: a fresh uplink (no cursor) started on a site of N keys publishes them all as
   its first resync: its peak RSS (VmHWM) once the centre holds them.

Prints one line per figure; ``--json FILE`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peers import ServerProcess, free_port  # noqa: E402

from statehub import Client, NotFound, Op  # noqa: E402
from statehub.testing import HubProcess  # noqa: E402

DEADLINE = 900.0  # seconds any one phase may take before the benchmark gives up


class NatsServer(ServerProcess):
    """nats-server with JetStream; the port stays the same across restarts."""

    name = "nats"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()

    def command(self) -> list[str]:
        return ["nats-server", "-js", "-sd", str(self.dir / "js"), "-a", "127.0.0.1", "-p", str(self.port)]

    def is_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class Link:
    """An uplink or follow-sites process, stopped by its PID."""

    def __init__(self, data_dir: Path, args: list[str], log: Path) -> None:
        command = [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), *args]
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> float:
    """Seconds until ``predicate`` holds (polled every 20 ms); raise naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"gave up waiting {timeout:.0f} s for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def link_rev(centre: Client, site: str) -> int:
    try:
        return int(centre.get(f"statehub.link.{site}").value["rev"])
    except NotFound:
        return 0


def write_changes(client: Client, count: int, prefix: str) -> int:
    """``count`` one-change revisions at the site, 1,000 a batch; returns the last revision."""
    last = 0
    for start in range(0, count, 1000):
        writes = [[Op(op="set", key=f"{prefix}.k{(start + i) % 1000}", value=start + i)] for i in range(min(1000, count - start))]
        last = client.batch(writes).revs[-1]
    return last


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_forwarding(site: Client, centre: Client, count: int) -> dict[str, float]:
    start = time.monotonic()
    last = write_changes(site, count, "fwd")
    written = time.monotonic() - start
    wait_for(lambda: link_rev(centre, "north") >= last, "the centre to apply every change")
    seconds = time.monotonic() - start
    return {"forwarded_changes": count, "forward_seconds": seconds, "forward_per_second": count / seconds,
            "site_write_seconds": written}  # fmt: skip


def bench_lag(site: Client, centre: Client, writes: int = 300) -> dict[str, float]:
    last = 0
    for index in range(writes):
        last = site.set(f"lag.k{index % 10}", index).rev
        time.sleep(0.02)  # a pace, as a plant writes: not a wait for something to happen
    wait_for(lambda: link_rev(centre, "north") >= last, "the lag writes at the centre")
    lags = []
    for index in range(10):
        for version in centre.history(f"sites.north.lag.k{index}", 1000):
            if version.origin is not None:
                lags.append((version.time - version.origin.time) * 1000)
    return {"lag_samples": len(lags), "lag_p50_ms": percentile(lags, 0.5), "lag_p99_ms": percentile(lags, 0.99)}


def bench_catch_up(site: Client, centre: Client, nats: NatsServer, count: int) -> dict[str, float]:
    nats.stop()
    outage = time.monotonic()
    last = write_changes(site, count, "out")
    nats.start()
    outage = time.monotonic() - outage
    seconds = wait_for(lambda: link_rev(centre, "north") >= last, "the centre to catch up")
    return {"outage_changes": count, "outage_seconds": outage, "catch_up_seconds": seconds}


def bench_rss(root: Path, nats: NatsServer, centre: Client, count: int) -> dict[str, float]:
    with HubProcess(root / "big", heartbeat=1.0) as big, big.client(timeout=10.0) as client:
        for start in range(0, count, 1000):
            client.txn([Op(op="set", key=f"big.k{start + i}", value={"v": start + i, "unit": "mg/L"}) for i in range(1000)])
        uplink = Link(big.data_dir, ["uplink", nats.url, "--site", "big", "--no-fleet"], root / "uplink-big.log")
        try:
            seconds = wait_for(lambda: link_rev(centre, "big") >= 1, "the resync of the big site")
            rss = uplink.peak_rss_mib()
        finally:
            uplink.stop()
    return {"rss_keys": count, "uplink_peak_rss_mib": rss, "resync_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 changes instead of 100,000")
    parser.add_argument("--count", type=int, default=None, help="changes per phase")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if shutil.which("nats-server") is None:
        sys.exit("nats-server is not installed (Debian: apt-get install nats-server)")
    count = args.count or (5_000 if args.quick else 100_000)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sites-") as temp:
        root = Path(temp)
        nats = NatsServer(root)
        nats.start()
        links: list[Link] = []
        try:
            with HubProcess(root / "north", heartbeat=1.0) as north, HubProcess(root / "centre", heartbeat=1.0) as hub:
                links.append(Link(north.data_dir, ["uplink", nats.url, "--site", "north"], root / "uplink.log"))
                links.append(Link(hub.data_dir, ["follow-sites", nats.url], root / "follow.log"))
                with north.client(timeout=10.0) as site, hub.client(timeout=10.0) as centre:
                    site.set("bench.start", 1)
                    wait_for(lambda: link_rev(centre, "north") >= 1, "the first resync", 60)
                    for phase in (
                        lambda: bench_forwarding(site, centre, count),
                        lambda: bench_lag(site, centre),
                        lambda: bench_catch_up(site, centre, nats, count),
                    ):
                        result = phase()
                        figures.update(result)
                        print(json.dumps(result), flush=True)
                    result = bench_rss(root, nats, centre, count)
                    figures.update(result)
                    print(json.dumps(result), flush=True)
        finally:
            for link in links:
                link.stop()
            nats.stop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
