"""statehub benchmarks: write-ack latency, throughput with N writers, change-notification latency.

    python scripts/bench.py                 # all, against a fresh hub in a temp dir
    python scripts/bench.py --json out.json # also write the results as JSON

Everything runs on this machine (ipc:// endpoints in a temp data dir).  Values are ~64 bytes.
Latency figures are percentiles of individual operations after a warm-up; notification latency
uses CLOCK_MONOTONIC, which is system-wide, across separate writer and subscriber processes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.testing import HubProcess  # noqa: E402
from statehub.client import Client  # noqa: E402

PAYLOAD = "x" * 48  # with the timestamp field, about 64 bytes of MessagePack


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def write_latency(data_dir: Path, count: int) -> dict[str, float]:
    with Client(data_dir, timeout=5) as client:
        for i in range(200):
            client.set("bench.warm", {"i": i, "p": PAYLOAD})
        samples = []
        for i in range(count):
            start = time.perf_counter()
            client.set(f"bench.k{i % 100}", {"i": i, "p": PAYLOAD})
            samples.append(time.perf_counter() - start)
    return {"p50_us": percentile(samples, 50) * 1e6, "p99_us": percentile(samples, 99) * 1e6, "count": count}


def _writer(data_dir: str, index: int, seconds: float, start_at: float, out: mp.Queue) -> None:
    with Client(data_dir, timeout=10) as client:
        client.set(f"bench.w{index}.warm", 0)
        while time.time() < start_at:
            time.sleep(0.001)
        done, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            client.set(f"bench.w{index}.k{done % 50}", {"i": done, "p": PAYLOAD})
            done += 1
    out.put(done)


def throughput(data_dir: Path, writers: int, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start_at = time.time() + 2.0  # let every process start before the clock runs
    procs = [ctx.Process(target=_writer, args=(str(data_dir), n, seconds, start_at, out)) for n in range(writers)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join(30)
    return {"writers": writers, "writes_per_s": total / seconds}


def _subscriber(data_dir: str, count: int, ready: mp.Event, out: mp.Queue) -> None:
    from statehub.subscription import Subscription, Update

    latencies: list[float] = []
    with Subscription(Path(data_dir), prefix="lat.", timeout=5) as subscription:
        deadline = time.monotonic() + 120
        while not subscription.is_live and time.monotonic() < deadline:
            subscription.next_event(0.1)
        ready.set()
        while len(latencies) < count and time.monotonic() < deadline:
            event = subscription.next_event(0.5)
            if isinstance(event, Update):
                now = time.monotonic_ns()
                latencies.extend((now - c.value["t"]) / 1e9 for c in event.changes)
    out.put(latencies)


def notify_latency(data_dir: Path, subscribers: int, count: int, rate: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    readies = [ctx.Event() for _ in range(subscribers)]
    procs = [ctx.Process(target=_subscriber, args=(str(data_dir), count, r, out)) for r in readies]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(120)
    with Client(data_dir, timeout=5) as client:
        interval = 1.0 / rate
        next_at = time.monotonic()
        for i in range(count + 50):
            client.set(f"lat.k{i % 10}", {"t": time.monotonic_ns(), "p": PAYLOAD[:40]})
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    samples = [s for _ in procs for s in out.get(timeout=120)]
    for p in procs:
        p.join(30)
    return {
        "subscribers": subscribers,
        "rate_per_s": rate,
        "p50_us": percentile(samples, 50) * 1e6,
        "p99_us": percentile(samples, 99) * 1e6,
        "samples": len(samples),
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="statehub-bench-") as tmp, HubProcess(Path(tmp) / "data", heartbeat=1.0) as hub:
        data_dir = hub.data_dir
        results["write_ack"] = write_latency(data_dir, args.writes)
        print(f"write ack, 1 client: p50 {results['write_ack']['p50_us']:.0f} us, p99 {results['write_ack']['p99_us']:.0f} us")
        for writers in args.writers:
            key = f"throughput_{writers}"
            results[key] = throughput(data_dir, writers, args.seconds)
            print(f"throughput, {writers} writers: {results[key]['writes_per_s']:.0f} durable writes/s")
        for subscribers in args.subscribers:
            key = f"notify_{subscribers}"
            results[key] = notify_latency(data_dir, subscribers, args.notifications, args.rate)
            r = results[key]
            print(f"notify, {subscribers} subscribers at {args.rate:.0f}/s: p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us")
        with Client(data_dir) as client:
            status = client.status()
            results["hub"] = {"writes": status.writes, "commits": status.commits}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=3000, help="sequential writes for the ack latency")
    parser.add_argument("--writers", type=int, nargs="*", default=[1, 8], help="writer process counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--subscribers", type=int, nargs="*", default=[1], help="subscriber process counts")
    parser.add_argument("--notifications", type=int, default=2000, help="changes per notification run")
    parser.add_argument("--rate", type=float, default=1000.0, help="changes per second in notification runs")
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
