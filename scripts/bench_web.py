"""The web dashboard's figures: SSE fan-out under load, the hub's ack latency beside it, first render.

    python scripts/bench_web.py [--clients 50] [--rate 500] [--seconds 10] [--keys 1000] [--json FILE]

Starts a hub in a temp dir, then:

1. **baseline**: writers commit ``--rate`` changes/s for ``--seconds`` with no web server; the
   hub's write-ack latency (request to ``committed`` reply) p50/p99.
2. **fan-out**: ``statehub web`` runs and ``--clients`` SSE clients follow ``/api/events`` (in
   child processes, raw HTTP over loopback) while the same writers run again: the ack latency
   again, and hub -> SSE-client latency (the change's commit ``time`` to the moment a client
   read it, same clock) p50/p99 over every change every client received, events lost (must be
   0), streams dropped, and the web process's RSS (peak, from /proc).
3. **browser** (skipped without chromium + chromium-driver): ``--keys`` keys, then the page
   opened in headless Chromium: ms from navigation start to the first paint of the full table
   (the page records ``performance.now()`` in the frame after it rendered), median of 5 loads;
   and a ``Client.set`` to its row updating in the page (a MutationObserver stamps it).

Every wait is bounded; processes are stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.client import Client  # noqa: E402
from statehub.hub.protocol import Op  # noqa: E402
from statehub.testing import HubProcess, wait_until  # noqa: E402

READY = re.compile(r"statehub web: serving http://127\.0\.0\.1:(\d+)/")
WRITERS = 4  # writer threads, each with its own Client, sharing the rate


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- writers ------------------------------------------------------------------------------------


def write_load(data_dir: Path, rate: float, seconds: float) -> tuple[list[float], int]:
    """``rate`` sets/s for ``seconds`` from WRITERS threads, paced; returns ack latencies and the count."""
    acks: list[float] = []
    lock = threading.Lock()
    per_writer = rate / WRITERS

    def writer(index: int) -> None:
        mine = []
        with Client(data_dir, timeout=5.0, source="bench") as client:
            start = time.perf_counter()
            n = 0
            while (elapsed := time.perf_counter() - start) < seconds:
                due = start + n / per_writer
                if due > time.perf_counter():
                    time.sleep(due - time.perf_counter())
                began = time.perf_counter()
                client.set(f"bench.w{index}.k{n % 50}", n)
                mine.append(time.perf_counter() - began)
                n += 1
            del elapsed
        with lock:
            acks.extend(mine)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return acks, len(acks)


# --- SSE clients (in child processes) ----------------------------------------------------------


class _Change(msgspec.Struct):
    time: float


class _ChangeEvent(msgspec.Struct):
    rev: int
    changes: list[_Change]


async def _follow(port: int, stop_at: float, latencies: list[float], revs: list[set[int]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    decode = msgspec.json.Decoder(_ChangeEvent).decode
    seen: set[int] = set()
    revs.append(seen)
    body = b""
    try:
        while time.time() < stop_at:
            try:
                size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), max(0.1, stop_at - time.time()))
            except TimeoutError:
                break
            size = int(size_line.strip(), 16)
            chunk = await reader.readexactly(size + 2)
            now = time.time()
            body += chunk[:-2]
            *events, body = body.split(b"\n\n")
            for event in events:
                if not event.startswith(b"event: change"):
                    continue
                data = event[event.index(b"data: ") + 6 :]
                change = decode(data)
                seen.add(change.rev)
                latencies.extend(now - c.time for c in change.changes)
    finally:
        writer.close()


def sse_child(port: int, clients: int, stop_at: float, out: str) -> None:
    latencies: list[float] = []
    revs: list[set[int]] = []

    async def main() -> None:
        await asyncio.gather(*(_follow(port, stop_at, latencies, revs) for _ in range(clients)))

    asyncio.run(main())
    Path(out).write_text(json.dumps({"latencies": latencies, "revs": [sorted(r) for r in revs]}))


# --- the web process ------------------------------------------------------------------------------


class Web:
    def __init__(self, data_dir: Path) -> None:
        command = [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), "web", "--port", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = 0
        self.lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                found = READY.search(line)
                if found:
                    self.port = int(found.group(1))
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError("statehub web did not start:\n" + "".join(self.lines))

    def rss_mib(self) -> tuple[float, float]:
        """(current, peak) resident memory of the web process."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def status(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status", timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


# --- the phases ---------------------------------------------------------------------------------------


def fan_out(data_dir: Path, web: Web, clients: int, rate: float, seconds: float, work: Path) -> dict[str, Any]:
    children = max(1, min(4, clients // 13 + 1))
    stop_at = time.time() + seconds + 3.0
    processes = []
    for i in range(children):
        share = clients // children + (1 if i < clients % children else 0)
        out = work / f"sse-{i}.json"
        process = multiprocessing.Process(target=sse_child, args=(web.port, share, stop_at, str(out)))
        process.start()
        processes.append((process, out))
    if not wait_until(lambda: web.status()["streams"] == clients, 30, 0.05):
        raise RuntimeError(f"only {web.status()['streams']} of {clients} streams connected")
    peak = [0.0]

    def sample() -> None:
        while time.time() < stop_at:
            peak[0] = max(peak[0], web.rss_mib()[0])
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with Client(data_dir) as client:
        first_rev = client.status().rev + 1
    acks, writes = write_load(data_dir, rate, seconds)
    with Client(data_dir) as client:
        last_rev = client.status().rev
    for process, _out in processes:
        process.join(seconds + 60)
    latencies: list[float] = []
    missing = 0
    expected = set(range(first_rev, last_rev + 1))
    for _process, out in processes:
        data = json.loads(out.read_text())
        latencies.extend(data["latencies"])
        missing += sum(len(expected - set(revs)) for revs in data["revs"])
    status = web.status()
    return {
        "clients": clients,
        "writes": writes,
        "rate": writes / seconds,
        "ack_p50_ms": statistics.median(acks) * 1000,
        "ack_p99_ms": percentile(acks, 0.99) * 1000,
        "sse_latency_p50_ms": statistics.median(latencies) * 1000,
        "sse_latency_p99_ms": percentile(latencies, 0.99) * 1000,
        "sse_deliveries": len(latencies),
        "revisions_missed": missing,
        "streams_dropped": status["dropped_streams"],
        "web_rss_peak_mib": max(peak[0], web.rss_mib()[0]),
    }


def browser(data_dir: Path, web: Web, keys: int, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.web_support import chromium, chromium_paths

    if chromium_paths() is None:
        return {"skipped": "chromium and chromium-driver are not installed"}
    with Client(data_dir, source="eds") as client:
        for start in range(0, keys, 500):
            client.txn([Op(op="set", key=f"eds.point{n:05}", value=round(n * 1.37, 2)) for n in range(start, min(keys, start + 500))])
    driver = chromium(work / "chromium")
    url = f"http://127.0.0.1:{web.port}/"
    try:
        renders = []
        for _ in range(5):
            driver.get(url)
            if not wait_until(lambda: driver.execute_script("return document.body.dataset.firstPaint"), 20, 0.01):
                raise RuntimeError("the page never painted its table")
            rows = driver.execute_script("return document.querySelectorAll('#keys tbody tr').length")
            if rows < keys:
                raise RuntimeError(f"the first paint had {rows} rows, not {keys}")
            renders.append(float(driver.execute_script("return document.body.dataset.firstPaint")))
        updates = []
        with Client(data_dir) as client:
            for n in range(10):
                key = f"eds.point{n:05}"
                driver.execute_script(
                    """window.__seen = 0; const tr = document.querySelector(`tr[data-key="${arguments[0]}"]`);
                       new MutationObserver((m, o) => { window.__seen = Date.now(); o.disconnect(); }).observe(tr, {subtree: true, childList: true, characterData: true});""",
                    key,
                )
                began = time.time()
                client.set(key, 1000 + n)
                if not wait_until(lambda: driver.execute_script("return window.__seen"), 10, 0.005):
                    raise RuntimeError("the row never changed")
                updates.append(driver.execute_script("return window.__seen") / 1000 - began)
                time.sleep(0.1)
    finally:
        driver.quit()
    return {
        "keys": keys,
        "first_render_ms_median": statistics.median(renders),
        "first_render_ms_max": max(renders),
        "set_to_row_ms_median": statistics.median(updates) * 1000,
        "set_to_row_ms_max": max(updates) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=500.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=1000, help="keys for the first-render measurement")
    parser.add_argument("--no-browser", action="store_true", help="skip the browser measurements")
    parser.add_argument("--browser-only", action="store_true", help="only the browser measurements")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="statehub-bench-web-") as temp:
        work = Path(temp)
        data_dir = work / "data"
        with HubProcess(data_dir, heartbeat=1.0):
            if options.browser_only:
                options.seconds = 0.0
            acks, writes = write_load(data_dir, options.rate, options.seconds) if options.seconds else ([0.0], 0)
            results["baseline"] = {
                "writes": writes,
                "rate": writes / options.seconds if options.seconds else 0.0,
                "ack_p50_ms": statistics.median(acks) * 1000,
                "ack_p99_ms": percentile(acks, 0.99) * 1000,
            }
            if not options.browser_only:
                print(f"baseline (no web): {writes} writes, ack p50 {results['baseline']['ack_p50_ms']:.2f} ms, p99 {results['baseline']['ack_p99_ms']:.2f} ms", flush=True)
            web = Web(data_dir)
            try:
                wait_until(lambda: web.status()["state"] == "live", 15, 0.05)
                idle = web.rss_mib()[0]
                if options.browser_only:
                    results["browser"] = browser(data_dir, web, options.keys, work)
                    print(results["browser"])
                    return
                results["fan_out"] = fan_out(data_dir, web, options.clients, options.rate, options.seconds, work)
                results["fan_out"]["web_rss_idle_mib"] = idle
                f = results["fan_out"]
                print(
                    f"with {f['clients']} SSE clients: {f['writes']} writes ({f['rate']:.0f}/s), ack p50 {f['ack_p50_ms']:.2f} ms, "
                    f"p99 {f['ack_p99_ms']:.2f} ms; hub->SSE p50 {f['sse_latency_p50_ms']:.1f} ms, p99 {f['sse_latency_p99_ms']:.1f} ms "
                    f"over {f['sse_deliveries']} deliveries; missed {f['revisions_missed']}, dropped {f['streams_dropped']}; "
                    f"web RSS idle {idle:.1f} MiB, peak {f['web_rss_peak_mib']:.1f} MiB",
                    flush=True,
                )
                if not options.no_browser:
                    results["browser"] = browser(data_dir, web, options.keys, work)
                    b = results["browser"]
                    if "skipped" in b:
                        print(f"browser: skipped ({b['skipped']})")
                    else:
                        print(
                            f"browser: first render of {b['keys']} keys {b['first_render_ms_median']:.0f} ms median "
                            f"(max {b['first_render_ms_max']:.0f}); set -> row {b['set_to_row_ms_median']:.0f} ms median "
                            f"(max {b['set_to_row_ms_max']:.0f})"
                        )
            finally:
                web.stop()
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
