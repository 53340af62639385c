"""Benchmark drivers shared by scripts/bench_suite.py: ack latency, notification latency, throughput.

Run them with ``scripts/bench`` (see docs/performance.md).  Each driver measures one *target*
(statehub here; Redis and etcd in bench_peers.py) the same way:

- ``write_ack``: one client in this process, sequential durable writes, each timed;
- ``notify_latency``: subscriber processes, this process writing values that carry
  CLOCK_MONOTONIC (system-wide on Linux), each arrival timestamped by the subscriber;
- ``throughput``: writer processes, each one connection writing sequentially, for a fixed time.

A target is a small picklable object: worker processes rebuild their own connections from it.
Every driver runs all repetitions in one go (the processes stay up between them), so the
figures of repetition r come from the same processes as those of repetition r + 1.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAYLOAD = "x" * 48  # {"i": n, "p": PAYLOAD}: about 64 bytes as MessagePack or JSON
NOTIFY_PAD = "x" * 40  # {"r": rep, "t": ns, "p": NOTIFY_PAD}: about 64 bytes
NOTIFY_PREFIX = "lat."
ACK_WARMUP = 200
NOTIFY_WARMUP = 50  # changes before each repetition's measured ones, tagged r = -1
THROUGHPUT_WARMUP = 20
THROUGHPUT_GAP = 1.0  # seconds between two repetitions of a throughput run
READY_TIMEOUT = 180.0  # worker processes connected and live; 100 of them on 2 cores take a while
QUIET_AFTER_DONE = 1.0  # a subscriber stops this long after the writer finished and nothing came


class Writer(Protocol):
    def write(self, key: str, value: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Listener(Protocol):
    def wait_live(self, timeout: float) -> bool: ...

    def receive(self, timeout: float) -> list[tuple[int, float]]:
        """(repetition, latency in seconds) of the changes that arrived within ``timeout``."""
        ...

    def close(self) -> None: ...


class Target(Protocol):
    @property
    def name(self) -> str: ...

    def writer(self) -> Writer: ...

    def listener(self, prefix: str) -> Listener: ...

    def change(self, rep: int, index: int, t_ns: int) -> tuple[str, dict[str, Any]]:
        """The key and value of notification change ``index`` of repetition ``rep``, written at ``t_ns``."""
        ...


# --- statehub as a target -----------------------------------------------------------


@dataclass(frozen=True)
class StatehubTarget:
    """A running hub, reached through the real client library (statehub.client, statehub.subscription)."""

    data_dir: str
    name: str = "statehub"

    def writer(self) -> Writer:
        return _StatehubWriter(Path(self.data_dir))

    def listener(self, prefix: str) -> Listener:
        return _StatehubListener(Path(self.data_dir), prefix)

    def change(self, rep: int, index: int, t_ns: int) -> tuple[str, dict[str, Any]]:
        return f"{NOTIFY_PREFIX}k{index % 10}", {"r": rep, "t": t_ns, "p": NOTIFY_PAD}


class _StatehubWriter:
    def __init__(self, data_dir: Path) -> None:
        from statehub.client import Client

        self._client = Client(data_dir, timeout=10)

    def write(self, key: str, value: dict[str, Any]) -> None:
        self._client.set(key, value)

    def close(self) -> None:
        self._client.close()


class _StatehubListener:
    def __init__(self, data_dir: Path, prefix: str) -> None:
        from statehub.subscription import Subscription, Update

        self._update = Update
        self._subscription = Subscription(data_dir, prefix=prefix, timeout=10)

    def wait_live(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._subscription.is_live and time.monotonic() < deadline:
            self._subscription.next_event(0.1)
        return self._subscription.is_live

    def receive(self, timeout: float) -> list[tuple[int, float]]:
        event = self._subscription.next_event(timeout)
        if not isinstance(event, self._update):
            return []
        now = time.monotonic_ns()
        return [
            (c.value["r"], (now - c.value["t"]) / 1e9)
            for c in event.changes
            if isinstance(c.value, dict) and "t" in c.value
        ]

    def close(self) -> None:
        self._subscription.close()


@dataclass(frozen=True)
class StatehubRustTarget(StatehubTarget):
    """The same hub, followed by compiled subscribers (section 2 only): what the hub's fan-out costs without Python's."""

    name: str = "statehub-rust-subscribers"

    def listener(self, prefix: str) -> Listener:
        return _RustListener(Path(self.data_dir), prefix)


RUST_CRATE = Path(__file__).resolve().parent.parent / "clients" / "rust"
RUST_LISTENER = RUST_CRATE / "target" / "release" / "examples" / "notify_latency"


def build_rust_listener() -> Path:
    """Build clients/rust/examples/notify_latency.rs (offline, from Debian's crates, as ci.sh builds); its path."""
    import subprocess

    command = [
        "cargo", "build", "--config", ".cargo-offline/config.toml", "--locked", "--release",
        "--example", "notify_latency",
    ]  # fmt: skip
    env = {**os.environ, "CARGO_NET_OFFLINE": "true", "CARGO_TARGET_DIR": str(RUST_CRATE / "target")}
    done = subprocess.run(command, cwd=RUST_CRATE, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"error: cannot build the Rust subscriber ({' '.join(command)}):\n{done.stderr[-2000:]}"
        )
    return RUST_LISTENER


class _RustListener:
    """A notify_latency process: it times each change itself and prints ``REP LATENCY_NS`` lines."""

    def __init__(self, data_dir: Path, prefix: str) -> None:
        import subprocess

        self._process = subprocess.Popen(
            [str(RUST_LISTENER), str(data_dir), prefix], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        assert self._process.stdout is not None
        self._fd = self._process.stdout.fileno()
        self._pending = b""

    def _lines(self, timeout: float) -> list[bytes]:
        import select

        readable, _, _ = select.select([self._fd], [], [], timeout)
        if not readable:
            return []
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            raise RuntimeError(f"the Rust subscriber exited with {self._process.wait()}")
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return lines

    def wait_live(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b"ready" in self._lines(min(0.5, max(0.0, deadline - time.monotonic()))):
                return True
        return False

    def receive(self, timeout: float) -> list[tuple[int, float]]:
        found = []
        for line in self._lines(timeout):
            rep, latency_ns = line.split()
            found.append((int(rep), int(latency_ns) / 1e9))
        return found

    def close(self) -> None:
        self._process.kill()
        self._process.wait()


# --- figures --------------------------------------------------------------------------


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _latency_summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_us": percentile(samples, 50) * 1e6,
        "p99_us": percentile(samples, 99) * 1e6,
        "count": len(samples),
    }


# --- 1. write-ack latency --------------------------------------------------------------


def write_ack(target: Target, count: int, reps: int) -> list[dict[str, float]]:
    """Sequential durable writes from one client; per repetition the p50 and p99 of ``count`` acks."""
    writer = target.writer()
    try:
        for i in range(ACK_WARMUP):
            writer.write("bench.warm", {"i": i, "p": PAYLOAD})
        runs = []
        for _ in range(reps):
            samples = []
            for i in range(count):
                start = time.perf_counter()
                writer.write(f"bench.k{i % 100}", {"i": i, "p": PAYLOAD})
                samples.append(time.perf_counter() - start)
            runs.append(_latency_summary(samples))
        return runs
    finally:
        writer.close()


# --- worker processes -------------------------------------------------------------------


def context() -> BaseContext:
    """Worker processes fork from a server that has this module loaded: 100 of them start in seconds."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bench", "bench_peers", "bench_mosquitto", "bench_naive", "bench_floors"])
    return ctx


@contextlib.contextmanager
def processes(procs: list[Any]) -> Iterator[list[Any]]:
    """Start ``procs``; on the way out (also on error or Ctrl-C) end any still running."""
    try:
        for p in procs:
            p.start()
        yield procs
    finally:
        # One deadline for them all: a hundred stuck workers joined 5 s each took 8 minutes to stop.
        deadline = time.monotonic() + 5
        for p in procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + 5
        for p in procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))


def _collect(out: Any, expected: int, timeout: float, what: str, procs: list[Any]) -> list[Any]:
    """``expected`` results from worker queue ``out``, raising on a worker's error, death or on timeout."""
    results: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(results) < expected:
        try:
            kind, payload = out.get(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"{what}: {len(dead)} worker(s) died (exit codes {dead[:5]})") from None
            if time.monotonic() < deadline:
                continue
            raise TimeoutError(
                f"{what}: {len(results)} of {expected} workers answered within {timeout:.0f} s"
            ) from None
        if kind == "error":
            raise RuntimeError(f"{what}: a worker failed: {payload}")
        results.append(payload)
    return results


# --- 2. change-notification latency -------------------------------------------------------


def _listen(target: Target, expected: int, seconds: float, ready: Any, done: Any, out: Any) -> None:
    try:
        listener = target.listener(NOTIFY_PREFIX)
    except Exception as exc:
        out.put(("error", repr(exc)))
        return
    try:
        if not listener.wait_live(READY_TIMEOUT):
            out.put(("error", f"{target.name} subscription not live within {READY_TIMEOUT:.0f} s"))
            return
        ready.put(("ready", None))
        samples: dict[int, list[float]] = {}
        got, quiet_since = 0, None
        deadline = time.monotonic() + seconds
        while got < expected and time.monotonic() < deadline:
            batch = listener.receive(0.1)
            for rep, latency in batch:
                if rep >= 0:
                    samples.setdefault(rep, []).append(latency)
                    got += 1
            if batch or not done.is_set():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > QUIET_AFTER_DONE:
                break
        out.put(("samples", samples))
    except Exception as exc:
        out.put(("error", repr(exc)))
    finally:
        listener.close()


def notify_latency(
    target: Target, subscribers: int, count: int, rate: float, reps: int, ctx: BaseContext
) -> list[dict[str, float]]:
    """Writer (this process) -> server -> ``subscribers`` processes, ``count`` changes a repetition at ``rate``/s.

    Per repetition, the p50 and p99 over every delivery to every subscriber, and how many
    deliveries arrived of those expected.
    """
    ready, out, done = ctx.Queue(), ctx.Queue(), ctx.Event()
    per_change = 1.0 / rate
    seconds = READY_TIMEOUT + reps * (NOTIFY_WARMUP + count) * per_change * 4 + 60
    procs = [
        ctx.Process(target=_listen, args=(target, reps * count, seconds, ready, done, out), daemon=True)  # type: ignore[attr-defined]
        for _ in range(subscribers)
    ]
    with processes(procs):
        _collect(
            _ReadyOrError(ready, out),
            subscribers,
            READY_TIMEOUT,
            f"{target.name}: {subscribers} subscribers",
            procs,
        )
        writer = target.writer()
        try:
            for rep in range(reps):
                next_at = time.monotonic()
                for i in range(NOTIFY_WARMUP + count):
                    key, value = target.change(rep if i >= NOTIFY_WARMUP else -1, i, time.monotonic_ns())
                    writer.write(key, value)
                    next_at += per_change
                    time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            writer.close()
            done.set()
        results = _collect(
            out, subscribers, seconds, f"{target.name}: {subscribers} subscribers' samples", procs
        )
    runs = []
    for rep in range(reps):
        pooled = [s for samples in results for s in samples.get(rep, [])]
        if not pooled:
            raise RuntimeError(f"{target.name}: no change of repetition {rep + 1} reached any subscriber")
        summary = _latency_summary(pooled)
        summary["delivered"] = len(pooled) / (count * subscribers)
        runs.append(summary)
    return runs


class _ReadyOrError:
    """Read readiness from one queue, but surface a worker's error posted on the other."""

    def __init__(self, ready: Any, out: Any) -> None:
        self._ready, self._out = ready, out

    def get(self, timeout: float) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item: tuple[str, Any] = self._ready.get(timeout=0.1)
                return item
            except queue.Empty:
                pass
            with contextlib.suppress(queue.Empty):
                failure: tuple[str, Any] = self._out.get_nowait()
                return failure
            if time.monotonic() >= deadline:
                raise queue.Empty


# --- 3. sustained durable write throughput ----------------------------------------------------


def _write_for(
    target: Target,
    index: int,
    reps: int,
    seconds: float,
    gap: float,
    ready: Any,
    go: Any,
    start_at: Any,
    out: Any,
) -> None:
    try:
        writer = target.writer()
    except Exception as exc:
        out.put(("error", repr(exc)))
        return
    try:
        for i in range(THROUGHPUT_WARMUP):
            writer.write(f"bench.w{index}.warm", {"i": i, "p": PAYLOAD})
        ready.put(("ready", index))
        if not go.wait(READY_TIMEOUT):
            out.put(("error", f"writer {index}: no start signal within {READY_TIMEOUT:.0f} s"))
            return
        counts, cpu = [], []
        for rep in range(reps):
            begin = start_at.value + rep * (seconds + gap)
            time.sleep(max(0.0, begin - time.monotonic()))
            done, end = 0, begin + seconds
            started_cpu = time.process_time()  # this process's threads: the client library's I/O thread too
            while time.monotonic() < end:
                writer.write(f"bench.w{index}.k{done % 50}", {"i": done, "p": PAYLOAD})
                done += 1
            counts.append(done)
            cpu.append(time.process_time() - started_cpu)
        out.put(("counts", (counts, cpu)))
    except Exception as exc:
        out.put(("error", repr(exc)))
    finally:
        writer.close()


@dataclass
class ThroughputRun:
    """Writer processes started and connected; ``start`` begins the timed repetitions."""

    target: Target
    writers: int
    seconds: float
    reps: int
    ctx: BaseContext
    gap: float = THROUGHPUT_GAP  # seconds between repetitions

    def __post_init__(self) -> None:
        self._ready, self._out = self.ctx.Queue(), self.ctx.Queue()
        self._go = self.ctx.Event()
        self._start_at = self.ctx.Value("d", 0.0)
        self.procs = [
            self.ctx.Process(  # type: ignore[attr-defined]
                target=_write_for,
                args=(
                    self.target,
                    n,
                    self.reps,
                    self.seconds,
                    self.gap,
                    self._ready,
                    self._go,
                    self._start_at,
                    self._out,
                ),
                daemon=True,
            )
            for n in range(self.writers)
        ]

    def wait_ready(self) -> None:
        _collect(
            _ReadyOrError(self._ready, self._out),
            self.writers,
            READY_TIMEOUT,
            f"{self.target.name}: {self.writers} writers",
            self.procs,
        )

    def start(self, delay: float = 0.3) -> float:
        """Let the writers go ``delay`` s from now; return when repetition 0 begins (CLOCK_MONOTONIC)."""
        self._start_at.value = time.monotonic() + delay
        self._go.set()
        return float(self._start_at.value)

    def rep_window(self, begin: float, rep: int) -> tuple[float, float]:
        start = begin + rep * (self.seconds + self.gap)
        return start, start + self.seconds

    def results(self) -> list[float]:
        """Writes per second of each repetition, summed over the writers."""
        return [rate for rate, _cpu in self.results_with_cpu()]

    def results_with_cpu(self) -> list[tuple[float, float]]:
        """Per repetition: writes per second summed over the writers, and the writers' CPU seconds per write."""
        timeout = self.reps * (self.seconds + self.gap) + 120
        reports = _collect(
            self._out,
            self.writers,
            timeout,
            f"{self.target.name}: {self.writers} writers' counts",
            self.procs,
        )
        results = []
        for rep in range(self.reps):
            done = sum(counts[rep] for counts, _cpu in reports)
            cpu = sum(cpu[rep] for _counts, cpu in reports)
            results.append((done / self.seconds, cpu / done if done else 0.0))
        return results


def throughput(target: Target, writers: int, seconds: float, reps: int, ctx: BaseContext) -> list[float]:
    """Durable writes per second with ``writers`` processes writing as fast as acks come back."""
    run = ThroughputRun(target, writers, seconds, reps, ctx)
    with processes(run.procs):
        run.wait_ready()
        run.start()
        return run.results()


@dataclass(frozen=True)
class CpuUse:
    """Writes/s of one timed window, the server's CPU per write in it, and how busy the machine was."""

    writes_per_s: float
    server_us_per_write: float | None  # user + system, every thread of the server process
    client_us_per_write: float  # the writer processes' CPU (their client library included)
    machine_busy: float  # share of all CPUs' time not idle (other processes' included)


def _process_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def throughput_cpu(target: Target, writers: int, seconds: float, ctx: BaseContext, pid: int | None) -> CpuUse:
    """``throughput`` for one repetition, with the CPU the server (``pid``) and the machine spent in its window.

    On a 2-core machine the writer processes share the CPUs with the server: when
    the machine is busy all the time, CPU per write, not the design, sets the rate.
    """
    run = ThroughputRun(target, writers, seconds, 1, ctx)
    with processes(run.procs):
        run.wait_ready()
        begin = run.start()
        time.sleep(max(0.0, begin - time.monotonic()))
        cpu0, ticks0 = (_process_cpu_s(pid) if pid else None), _machine_ticks()
        time.sleep(max(0.0, begin + seconds - time.monotonic()))
        cpu1, ticks1 = (_process_cpu_s(pid) if pid else None), _machine_ticks()
        rate, client_cpu = run.results_with_cpu()[0]
    per_write = None
    if cpu0 is not None and cpu1 is not None and rate > 0:
        per_write = (cpu1 - cpu0) / (rate * seconds) * 1e6
    busy = (ticks1[0] - ticks0[0]) / max(1, ticks1[1] - ticks0[1])
    return CpuUse(rate, per_write, client_cpu * 1e6, busy)
