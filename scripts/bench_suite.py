"""statehub's benchmark (issue 8): latency, throughput, cold start and footprint, optionally against peers.

    scripts/bench                      # every section, 3 repetitions (several minutes)
    scripts/bench --peers              # also Redis (AOF, appendfsync always), etcd and Mosquitto, same run
    scripts/bench --quick              # ~10 s smoke variant: 1 repetition, small counts
    scripts/bench --only ack,notify    # some sections: ack, notify, throughput, cli, footprint
    scripts/bench --schema             # also a second hub whose schema judges every write (its cost)

Everything runs on this machine: the hub on ipc:// endpoints in a temp data dir, the peers on
free 127.0.0.1 ports.  Each figure is the median of the repetitions with their spread (min-max).
Results go to a JSON file and a markdown table (default: bench-results/ in the repository).
What each figure means and how it is measured: docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench  # noqa: E402
import footprint  # noqa: E402
from bench import PAYLOAD, StatehubTarget, Target, ThroughputRun  # noqa: E402

from statehub.testing import HubProcess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("ack", "notify", "throughput", "cli", "footprint")
MB = 1e6  # memory is reported in MB (10^6 bytes), as the targets are

# Absolute targets (issue 8, and issue 15's 100-subscriber p99), for a full run's figure ids.
# (threshold, True if higher is better)
TARGETS = MappingProxyType(
    {
        "notify_100_p99_us": (5000.0, False),
        "cli_ratio": (1.3, False),
        "rss_idle_mb": (40.0, False),
        "rss_filled_mb": (120.0, False),
        "rss_keys_mb": (120.0, False),
        "start_keys_s": (1.0, False),
    }
)
# Targets of issue 15 as ratios to Redis (appendfsync always) measured in the same run:
# (statehub / Redis at most this for latencies, at least this for writes/s, True if higher is better).
REDIS_TARGETS = MappingProxyType(
    {
        "ack_p50_us": (1.0, False),
        "ack_p99_us": (1.2, False),
        "notify_1_p50_us": (1.0, False),
        "notify_1_p99_us": (1.5, False),
        "throughput_1_wps": (1.0, True),
        "throughput_8_wps": (1.1, True),
        "throughput_32_wps": (1.1, True),
    }
)
# Without peers: 32 writers no lower than 8.
RELATIVE_TARGETS = MappingProxyType({"throughput_32_wps": "throughput_8_wps"})


@dataclass(frozen=True)
class Plan:
    """The counts of one run: a full run's, or the --quick smoke variant's."""

    repeat: int
    ack_writes: int
    notifications: int
    rate: float
    subscribers: tuple[int, ...]
    writers: tuple[int, ...]
    seconds: float
    cli_runs: int
    keys: int
    restarts: int
    storm_writers: int
    storm_seconds: float


FULL = Plan(
    repeat=3, ack_writes=3000, notifications=2000, rate=1000.0, subscribers=(1, 100), writers=(1, 8, 32),
    seconds=5.0, cli_runs=10, keys=100_000, restarts=3, storm_writers=8, storm_seconds=60.0,
)  # fmt: skip
QUICK = Plan(
    repeat=1, ack_writes=300, notifications=200, rate=1000.0, subscribers=(1, 4), writers=(1, 4),
    seconds=0.5, cli_runs=3, keys=2000, restarts=1, storm_writers=2, storm_seconds=1.0,
)  # fmt: skip


# --- figures --------------------------------------------------------------------------


@dataclass
class Figure:
    id: str
    section: str
    label: str
    unit: str
    runs: dict[str, list[float]] = field(default_factory=dict)  # target name -> one value per repetition

    def summary(self, name: str) -> dict[str, Any] | None:
        runs = self.runs.get(name)
        if not runs:
            return None
        return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "runs": runs}

    def median(self, name: str) -> float | None:
        runs = self.runs.get(name)
        return statistics.median(runs) if runs else None


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)

    def add(self, id: str, section: str, label: str, unit: str, target: str, runs: list[float]) -> None:
        figure = self.figures.setdefault(id, Figure(id, section, label, unit))
        figure.runs[target] = [float(r) for r in runs]

    def met(self, figure: Figure) -> bool | None:
        value = figure.median("statehub")
        if value is None:
            return None
        if figure.id in REDIS_TARGETS:
            redis = figure.median("redis")
            if redis:
                limit, higher = REDIS_TARGETS[figure.id]
                return value / redis >= limit if higher else value / redis <= limit
        if figure.id in TARGETS:
            threshold, higher = TARGETS[figure.id]
            return value >= threshold if higher else value <= threshold
        if figure.id in RELATIVE_TARGETS:
            other = self.figures.get(RELATIVE_TARGETS[figure.id])
            reference = other.median("statehub") if other else None
            return None if reference is None else value >= reference
        return None


def target_text(figure: Figure) -> str:
    if figure.id in REDIS_TARGETS and figure.median("redis"):
        limit, higher = REDIS_TARGETS[figure.id]
        return f"{'≥' if higher else '≤'} {limit:g}× Redis"
    if figure.id in TARGETS:
        threshold, higher = TARGETS[figure.id]
        return f"{'≥' if higher else '≤'} {threshold:g}"
    if figure.id in RELATIVE_TARGETS:
        return "≥ 8 writers'"
    return ""


# --- the run ----------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    plan: Plan
    tmp: Path
    results: Results = field(default_factory=Results)
    started: float = field(default_factory=time.monotonic)
    ctx: Any = None
    floors: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # floor -> p50_us/p99_us -> runs
    pids: dict[str, int] = field(default_factory=dict)  # target name -> its server's process id

    def progress(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


def _rounded(values: list[float], digits: int) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _fmt_us(summary: dict[str, float]) -> str:
    return f"p50 {summary['p50_us']:.0f} us, p99 {summary['p99_us']:.0f} us"


def _interleaved(run: Run, targets: list[Target], measure: Any) -> dict[str, list[Any]]:
    """``measure(target)`` once per repetition per target, the targets taking turns.

    Taking turns spreads whatever else the machine is doing (other processes' fsyncs
    and CPU) over every target instead of letting it fall on one target's repetitions.
    """
    runs: dict[str, list[Any]] = {t.name: [] for t in targets}
    for _ in range(run.plan.repeat):
        for target in targets:
            runs[target.name].append(measure(target))
    return runs


def section_ack(run: Run, targets: list[Target]) -> None:
    def measure(target: Target) -> dict[str, float]:
        result = bench.write_ack(target, run.plan.ack_writes, 1)[0]
        run.progress(f"ack {target.name}: {_fmt_us(result)}")
        return result

    for name, runs in _interleaved(run, targets, measure).items():
        for p in ("p50", "p99"):
            run.results.add(
                f"ack_{p}_us",
                "ack",
                f"write ack {p}, 1 client (µs)",
                "us",
                name,
                [r[f"{p}_us"] for r in runs],
            )


def section_notify(run: Run, targets: list[Target]) -> None:
    plan = run.plan
    for subscribers in plan.subscribers:

        def measure(target: Target, subscribers: int = subscribers) -> dict[str, float]:
            result = bench.notify_latency(target, subscribers, plan.notifications, plan.rate, 1, run.ctx)[0]
            run.progress(
                f"notify {target.name}, {subscribers} subscriber(s) at {plan.rate:.0f}/s: "
                f"{_fmt_us(result)} ({result['delivered']:.1%} delivered)"
            )
            return result

        what = f"{subscribers} subscriber{'s' if subscribers > 1 else ''}, {plan.rate:,.0f} changes/s"
        for name, runs in _interleaved(run, targets, measure).items():
            for p in ("p50", "p99"):
                run.results.add(
                    f"notify_{subscribers}_{p}_us", "notify", f"change notification {p}, {what} (µs)", "us",
                    name, [r[f"{p}_us"] for r in runs],
                )  # fmt: skip
            run.results.add(
                f"notify_{subscribers}_delivered", "notify", f"changes delivered, {what} (fraction)", "fraction",
                name, [r["delivered"] for r in runs],
            )  # fmt: skip


def section_throughput(run: Run, targets: list[Target]) -> None:
    plan = run.plan
    for writers in plan.writers:

        def measure(target: Target, writers: int = writers) -> bench.CpuUse:
            use = bench.throughput_cpu(target, writers, plan.seconds, run.ctx, run.pids.get(target.name))
            per_write = f"{use.server_us_per_write:.0f}" if use.server_us_per_write is not None else "?"
            run.progress(
                f"throughput {target.name}, {writers} writer(s): {use.writes_per_s:.0f} writes/s; CPU a write: "
                f"server {per_write} us, client {use.client_us_per_write:.0f} us; machine {use.machine_busy:.0%} busy"
            )
            return use

        what = f"{writers} writer process{'es' if writers > 1 else ''}"
        for name, runs in _interleaved(run, targets, measure).items():
            run.results.add(
                f"throughput_{writers}_wps", "throughput", f"durable writes/s, {what}", "writes/s", name,
                [u.writes_per_s for u in runs],
            )  # fmt: skip
            per_write = [u.server_us_per_write for u in runs if u.server_us_per_write is not None]
            if per_write:
                run.results.add(
                    f"throughput_{writers}_cpu_us", "throughput", f"server CPU per write, {what} (µs)", "us", name,
                    per_write,
                )  # fmt: skip
            run.results.add(
                f"throughput_{writers}_client_cpu_us", "throughput", f"client CPU per write, {what} (µs)", "us",
                name, [u.client_us_per_write for u in runs],
            )  # fmt: skip
            run.results.add(
                f"throughput_{writers}_busy", "throughput", f"machine CPU busy, {what} (fraction)", "fraction",
                name, [u.machine_busy for u in runs],
            )  # fmt: skip


FLOOR_TITLES = MappingProxyType(
    {
        "zmq_round_trip": "ZeroMQ REQ/REP round trip, ipc, another process",
        "fdatasync": "4 KiB pwrite + fdatasync, the hub's disk",
        "sqlite_commit": "one-row SQLite commit, WAL, synchronous=FULL",
        "pub_sub": "PUB -> SUB one way, ipc, another process, 1,000/s",
    }
)


def measure_floors(run: Run) -> None:
    """One measurement of every floor (bench_floors), added to the run's; a run takes one per latency section."""
    import bench_floors

    folder = run.tmp / "floors"
    folder.mkdir(exist_ok=True)
    count = 200 if run.args.quick else 2000
    for name, summary in bench_floors.floors(folder, run.ctx, count).items():
        for p in ("p50_us", "p99_us"):
            run.floors.setdefault(name, {}).setdefault(p, []).append(summary[p])
        run.progress(f"floor {name}: {_fmt_us(summary)}")


def floors_markdown(floors: dict[str, dict[str, list[float]]]) -> str:
    if not floors:
        return ""
    lines = [
        "",
        "Floors measured in the same run, between its sections (median (min–max) of the measurements):",
        "",
        "| floor | p50 (µs) | p99 (µs) |",
        "|---|---|---|",
    ]
    for name, title in FLOOR_TITLES.items():
        if name in floors:
            cells = []
            for p in ("p50_us", "p99_us"):
                runs = floors[name][p]
                cell = f"{statistics.median(runs):,.0f}"
                if len(runs) > 1:
                    cell += f" ({min(runs):,.0f}–{max(runs):,.0f})"
                cells.append(cell)
            lines.append(f"| {title} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEHUB_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's Python caches bytecode; so does this measurement
    return env


def _wall(command: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``command`` to its exit.

    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, which would round every run
    up; a blocking wait is exact, and a timer kills a run that takes over a minute.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    watchdog = threading.Timer(60.0, process.kill)
    watchdog.start()
    try:
        code = process.wait()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code}")
    return elapsed


def section_cli(run: Run, data_dir: Path) -> None:
    """`statehub get KEY` as a fresh process, next to the bare import of its three big dependencies."""
    script = Path(sys.executable).parent / "statehub"
    statehub = [str(script)] if script.exists() else [sys.executable, "-m", "statehub.cli"]
    get = [*statehub, "--data-dir", str(data_dir), "get", "bench.cli"]
    bare = [sys.executable, "-c", "import typer, zmq, msgspec"]
    env = _cli_env()
    writer = StatehubTarget(str(data_dir)).writer()
    try:
        writer.write("bench.cli", {"i": 0, "p": PAYLOAD})
    finally:
        writer.close()
    for command in (get, bare):  # warm-up: bytecode caches written, files in the page cache
        _wall(command, env)
    gets, bares, ratios = [], [], []
    for _ in range(run.plan.repeat):
        g, b = [], []
        for _ in range(run.plan.cli_runs):  # interleaved, so both see the same machine
            g.append(_wall(get, env))
            b.append(_wall(bare, env))
        gets.append(statistics.median(g) * 1e3)
        bares.append(statistics.median(b) * 1e3)
        ratios.append(gets[-1] / bares[-1])
    run.progress(f"cli: statehub get {_rounded(gets, 1)} ms, bare import {_rounded(bares, 1)} ms")
    run.results.add("cli_get_ms", "cli", "`statehub get KEY`, fresh process (ms)", "ms", "statehub", gets)
    run.results.add(
        "cli_import_ms", "cli", '`python -c "import typer, zmq, msgspec"` (ms)', "ms", "statehub", bares
    )
    run.results.add("cli_ratio", "cli", "cold `statehub get` ÷ bare import", "ratio", "statehub", ratios)


def _small_value(i: int) -> dict[str, Any]:
    return {"i": i, "p": PAYLOAD}


def _rss_mb(hub: HubProcess, field_name: str = "VmRSS") -> float:
    return footprint.rss_kib(hub.pid)[field_name] * 1024 / MB


def section_footprint(run: Run) -> None:
    """RSS idle, with N keys, during and after write storms; start-up and mirror rewrite with N keys."""
    plan, results = run.plan, run.results
    keys = f"{plan.keys:,} keys"
    idle = []
    for rep in range(plan.repeat):
        with HubProcess(run.tmp / f"idle{rep}" / "data", heartbeat=1.0) as hub:
            time.sleep(footprint.SETTLE)
            idle.append(_rss_mb(hub))
    run.progress(f"footprint: RSS idle {_rounded(idle, 1)} MB; writing {keys}")
    results.add("rss_idle_mb", "footprint", "hub RSS idle, empty store (MB)", "MB", "statehub", idle)
    with HubProcess(run.tmp / "keys" / "data", heartbeat=1.0) as hub:
        footprint.fill(hub, plan.keys, value=_small_value, prefix="fp.k")
        time.sleep(footprint.SETTLE)
        results.add(
            "rss_filled_mb",
            "footprint",
            f"hub RSS right after writing {keys} (MB)",
            "MB",
            "statehub",
            [_rss_mb(hub)],
        )
        starts, with_keys = [], []
        for _ in range(plan.restarts):
            hub.terminate()
            starts.append(footprint.timed_start(hub))
            time.sleep(footprint.SETTLE)
            with_keys.append(_rss_mb(hub))
        run.progress(
            f"footprint: start-up with {keys} {_rounded(starts, 3)} s, RSS {_rounded(with_keys, 1)} MB"
        )
        results.add("start_keys_s", "footprint", f"hub start-up with {keys} (s)", "s", "statehub", starts)
        results.add(
            "rss_keys_mb",
            "footprint",
            f"hub RSS with {keys}, restarted, idle (MB)",
            "MB",
            "statehub",
            with_keys,
        )
        mirror = [
            footprint.mirror_rewrite(hub.data_dir, run.tmp / "mirror-copy.txt") * 1e3
            for _ in range(plan.repeat)
        ]
        run.progress(f"footprint: mirror rewrite with {keys} {_rounded(mirror, 1)} ms")
        results.add(
            "mirror_keys_ms", "footprint", f"mirror rewrite with {keys} (ms)", "ms", "statehub", mirror
        )
        _storm(run, hub, keys)


def _storm(run: Run, hub: HubProcess, keys: str) -> None:
    """``storm_writers`` processes writing flat out for ``storm_seconds``, ``repeat`` times; RSS after each."""
    plan = run.plan
    storm = ThroughputRun(
        StatehubTarget(str(hub.data_dir)), plan.storm_writers, plan.storm_seconds, plan.repeat, run.ctx,
        gap=footprint.SETTLE + 1.0,
    )  # fmt: skip
    run.progress(
        f"footprint: {plan.repeat} write storm(s) of {plan.storm_seconds:g} s, {plan.storm_writers} writers"
    )
    after = []
    with bench.processes(storm.procs):
        storm.wait_ready()
        begin = storm.start()
        for rep in range(plan.repeat):
            _, end = storm.rep_window(begin, rep)
            time.sleep(max(0.0, end + footprint.SETTLE - time.monotonic()))
            after.append(_rss_mb(hub))
        rates = storm.results()
    peak = _rss_mb(hub, "VmHWM")
    run.progress(
        f"footprint: storms {_rounded(rates, 0)} writes/s; RSS after {_rounded(after, 1)} MB, peak {peak:.1f} MB"
    )
    what = f"{plan.storm_seconds:g} s write storm, {plan.storm_writers} writers, store with {keys}"
    run.results.add("storm_wps", "footprint", f"{what}: durable writes/s", "writes/s", "statehub", rates)
    run.results.add("rss_storm_mb", "footprint", f"hub RSS after each {what} (MB)", "MB", "statehub", after)
    run.results.add(
        "rss_peak_mb", "footprint", "hub peak RSS (VmHWM) over the storms (MB)", "MB", "statehub", [peak]
    )


# --- reports --------------------------------------------------------------------------------

SECTION_TITLES = MappingProxyType(
    {
        "ack": "1. write-ack latency",
        "notify": "2. change notification",
        "throughput": "3. durable write throughput",
        "cli": "4. CLI cold start",
        "footprint": "5. hub footprint",
    }
)
PEER_TITLES = MappingProxyType(
    {
        "redis": "Redis",
        "etcd": "etcd",
        "mosquitto": "Mosquitto (not durable per message)",
        "naive": "naive hub (a floor)",
        "contract": "contract floor (naive hub + revisions, history, request ids)",
        "log": "log floor (the contract floor durable by a log append)",
        "schema": "statehub with a schema",
        "statehub-rust-subscribers": "statehub, Rust subscribers",
    }
)

# The schema of the --schema hub: every key the benchmark writes has a rule (a pattern, as a
# plant's points do), unknown keys are refused, and 200 other rules stand for a plant's schema.
BENCH_SCHEMA = (
    '[schema]\nformat = 1\n[unknown]\n"" = "refuse"\n'
    '[keys."bench.*"]\ntype = "table"\n[keys."lat.*"]\ntype = "table"\n'
    + "".join(f'[keys."unit{n}.*.rate"]\ntype = "integer"\nmin = 0\nmax = 500\n' for n in range(200))
)


def _fmt(value: float, unit: str) -> str:
    if unit in ("us", "writes/s"):
        return f"{value:,.0f}"
    if unit == "fraction":
        return f"{value:.1%}"
    if unit == "s":
        return f"{value:.3f}"
    if unit == "ratio":
        return f"{value:.2f}"
    return f"{value:.1f}"


def _cell(figure: Figure, name: str) -> str:
    summary = figure.summary(name)
    if summary is None:
        return ""
    text = _fmt(summary["median"], figure.unit)
    if len(summary["runs"]) > 1:
        text += f" ({_fmt(summary['min'], figure.unit)}–{_fmt(summary['max'], figure.unit)})"
    return text


def ratio(figure: Figure, peer: str) -> float | None:
    mine, theirs = figure.median("statehub"), figure.median(peer)
    if mine is None or not theirs or figure.unit == "fraction":
        return None
    return mine / theirs


def _ratio_cell(figure: Figure, peer: str) -> str:
    value = ratio(figure, peer)
    if value is None:
        return ""
    if abs(value - 1) < 0.02:
        return f"{value:.2f} (on par)"
    faster = value > 1 if figure.unit == "writes/s" else value < 1
    return f"{value:.2f} ({'faster' if faster else 'slower'})"


def markdown(results: Results, meta: dict[str, Any], peers: list[str]) -> str:
    header = ["figure", "statehub", "target", "met"] + [PEER_TITLES[p] for p in peers]
    header += [f"statehub ÷ {PEER_TITLES[p]}" for p in peers]
    lines = [
        f"statehub benchmark, {meta['date']}: {meta['machine']['summary']}; "
        f"{meta['plan']['repeat']} repetition(s), each cell the median (min–max); "
        f"load average {meta['load']['before']} before, {meta['load']['after']} after.",
    ]
    if peers:
        described = [
            f"{PEER_TITLES[p]} {meta['peers'][p]['version']} ("
            + ", ".join(f"{k} {v}" for k, v in meta["peers"][p].items() if k != "version")
            + ")"
            for p in peers
        ]
        lines.append("Peers: " + "; ".join(d.replace(" ()", "") for d in described) + ".")
        lines.append("Ratios are statehub ÷ peer: for latencies below 1 is faster, for writes/s above 1 is.")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for section in SECTIONS:
        figures = [f for f in results.figures.values() if f.section == section]
        if not figures:
            continue
        lines.append(f"| **{SECTION_TITLES[section]}** |" + " |" * (len(header) - 1))
        for figure in figures:
            met = results.met(figure)
            row = [
                figure.label,
                _cell(figure, "statehub"),
                target_text(figure),
                "" if met is None else ("yes" if met else "**no**"),
            ]
            row += [_cell(figure, p) for p in peers] + [_ratio_cell(figure, p) for p in peers]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def as_json(results: Results, meta: dict[str, Any], peers: list[str]) -> dict[str, Any]:
    sections: dict[str, list[dict[str, Any]]] = {}
    for figure in results.figures.values():
        values = {name: figure.summary(name) for name in figure.runs}
        sections.setdefault(figure.section, []).append(
            {
                "id": figure.id,
                "label": figure.label,
                "unit": figure.unit,
                "target": target_text(figure) or None,
                "met": results.met(figure),
                "values": values,
                "ratios": {p: r for p in peers if (r := ratio(figure, p)) is not None},
            }
        )
    return {**meta, "sections": sections}


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    cpus = os.cpu_count()
    summary = f"{model or platform.machine()}, {cpus} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    return {
        "summary": summary,
        "cpu": model,
        "cpus": cpus,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also measure Redis, etcd, Mosquitto and a naive one-thread hub (sections ack, notify, throughput)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the ~10 s smoke variant: 1 repetition, small counts"
    )
    parser.add_argument(
        "--schema",
        action="store_true",
        help="also measure a hub whose schema (202 rules, unknown keys refused) judges every write",
    )
    parser.add_argument(
        "--rust-subscribers",
        action="store_true",
        help="in the notify section, also follow the hub with compiled subscribers "
        "(clients/rust/examples/notify_latency.rs, built with cargo offline)",
    )
    parser.add_argument("--repeat", type=int, help="repetitions per figure (default 3; 1 with --quick)")
    parser.add_argument("--only", help=f"comma-separated sections to run, of: {', '.join(SECTIONS)}")
    parser.add_argument(
        "--subscribers", help="comma-separated subscriber counts for the notify section (default 1,100)"
    )
    parser.add_argument("--keys", type=int, help="keys for the footprint section (default 100000)")
    parser.add_argument("--storm-seconds", type=float, help="length of each write storm (default 60)")
    parser.add_argument("--json", type=Path, help="write the results here (default bench-results/DATE.json)")
    parser.add_argument("--markdown", type=Path, help="write the table here (default bench-results/DATE.md)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in (args.only or ",".join(SECTIONS)).split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; sections are: {', '.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if s in only]
    if args.repeat is not None and not 1 <= args.repeat <= 20:
        parser.error(f"--repeat {args.repeat} is outside 1..20")
    if args.subscribers is not None:
        try:
            args.subscribers = tuple(int(n) for n in args.subscribers.split(",") if n.strip())
        except ValueError:
            parser.error(f"--subscribers {args.subscribers!r}: give counts like 1,100")
        if not args.subscribers or not all(1 <= n <= 500 for n in args.subscribers):
            parser.error("--subscribers: each count must be 1..500")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.repeat is not None:
        changes["repeat"] = args.repeat
        changes["restarts"] = args.repeat
    if args.keys is not None:
        changes["keys"] = args.keys
    if args.subscribers is not None:
        changes["subscribers"] = args.subscribers
    if args.storm_seconds is not None:
        changes["storm_seconds"] = args.storm_seconds
    return dataclasses.replace(plan, **changes)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # Unwind like Ctrl-C does, so every `finally` stops the hub, the peers and the workers.
    raise KeyboardInterrupt


@contextlib.contextmanager
def _peer_servers(run: Run, meta: dict[str, Any]) -> Iterator[list[Target]]:
    import bench_mosquitto
    import bench_naive
    import bench_peers

    missing = bench_peers.missing_binaries()
    if missing:
        raise SystemExit(
            f"error: --peers needs {' and '.join(missing)} on PATH; `scripts/bench --peers` installs "
            "them (Debian: apt-get install redis-server etcd-server etcd-client mosquitto)"
        )
    with contextlib.ExitStack() as stack:
        targets: list[Target] = []
        servers: list[Any] = [
            bench_peers.RedisServer(run.tmp),
            bench_peers.EtcdServer(run.tmp),
            bench_mosquitto.MosquittoServer(run.tmp),
            bench_naive.NaiveServer(run.tmp),
            bench_naive.ContractServer(run.tmp),
            bench_naive.LogServer(run.tmp),
        ]
        for server in servers:
            stack.callback(server.stop)
            server.start()
            meta["peers"][server.name] = server.settings()
            run.pids[server.name] = server.pid
            run.progress(
                f"{server.name} {meta['peers'][server.name]} serving on {server.address}, pid {server.pid}"
            )
            targets.append(server.target())
        yield targets


@contextlib.contextmanager
def _schema_hub(run: Run, meta: dict[str, Any]) -> Iterator[Target]:
    """A second hub, like the first but with BENCH_SCHEMA applied from its data dir's schema.toml."""
    from statehub.hub import __version__

    data_dir = run.tmp / "schema-hub" / "data"
    data_dir.mkdir(parents=True, mode=0o700)
    (data_dir / "schema.toml").write_text(BENCH_SCHEMA, encoding="utf-8")
    with HubProcess(data_dir, heartbeat=1.0) as hub:
        meta["peers"]["schema"] = {"version": __version__, "rules": BENCH_SCHEMA.count("[keys.")}
        run.progress(f"hub with a schema serving {data_dir}, pid {hub.pid}")
        yield StatehubTarget(str(data_dir), name="schema")


def _report_hub(run: Run, hub: HubProcess) -> None:
    """After a failure: is the hub still running, and how does its log end?"""
    code = hub.process.poll() if hub.process is not None else None
    state = "still running" if code is None else f"exited with {code}"
    run.progress(f"the hub (pid {hub.pid}) is {state}; its log ends:\n{hub.log[-3000:]}")


def _floors_taken(run: Run) -> int:
    return min((len(f["p50_us"]) for f in run.floors.values()), default=0)


def execute(run: Run, meta: dict[str, Any]) -> None:
    sections = run.args.sections
    needs_hub = [s for s in sections if s in ("ack", "notify", "throughput", "cli")]
    with contextlib.ExitStack() as stack:
        targets: list[Target] = []
        hub_dir = run.tmp / "hub" / "data"
        if needs_hub:
            hub = stack.enter_context(HubProcess(hub_dir, heartbeat=1.0))
            run.progress(f"hub serving {hub_dir}, pid {hub.pid}")
            targets.append(StatehubTarget(str(hub_dir)))
            run.pids["statehub"] = hub.pid
        if run.args.schema and set(sections) & {"ack", "notify", "throughput"}:
            targets.append(stack.enter_context(_schema_hub(run, meta)))
        if run.args.peers and set(sections) & {"ack", "notify", "throughput"}:
            targets += stack.enter_context(_peer_servers(run, meta))
        rust_targets: list[Target] = []
        if run.args.rust_subscribers and "notify" in sections:
            run.progress(f"Rust subscriber built: {bench.build_rust_listener()}")
            rust_targets.append(bench.StatehubRustTarget(str(hub_dir)))
            meta["peers"]["statehub-rust-subscribers"] = {
                "version": "-",
                "what": "the same hub, notify section only, subscribers in Rust",
            }
        try:
            for section in sections:
                run.progress(f"section {section}, load average {load()}")
                if section == "ack":
                    section_ack(run, targets)
                elif section == "notify":
                    section_notify(run, targets + rust_targets)
                elif section == "throughput":
                    section_throughput(run, targets)
                if section in ("ack", "notify", "throughput") and _floors_taken(run) < run.plan.repeat:
                    measure_floors(run)
                if section == "cli":
                    section_cli(run, hub_dir)
                elif section == "footprint":
                    section_footprint(run)
        except Exception:
            if needs_hub:
                _report_hub(run, hub)
            raise


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    json_path = args.json or ROOT / "bench-results" / f"{stamp}{'-quick' if args.quick else ''}.json"
    markdown_path = args.markdown or json_path.with_suffix(".md")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    meta: dict[str, Any] = {
        "benchmark": "statehub (issue 8)",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["scripts/bench", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "plan": dataclasses.asdict(plan),
        "sections_run": args.sections,
        "peers": {},
        "load": {"before": load()},
    }
    with tempfile.TemporaryDirectory(prefix="statehub-bench-") as tmp:
        run = Run(args, plan, Path(tmp))
        run.ctx = bench.context()
        run.progress(
            f"{meta['machine']['summary']}; sections {', '.join(args.sections)}; {plan.repeat} repetition(s)"
        )
        try:
            execute(run, meta)
        except KeyboardInterrupt:
            run.progress("interrupted: hub, peers and workers stopped; no results written")
            return 130
        meta["load"]["after"] = load()
        meta["wall_seconds"] = round(time.monotonic() - run.started, 1)
    peers = [p for p in PEER_TITLES if p in meta["peers"]]
    meta["floors"] = run.floors
    table = markdown(run.results, meta, peers) + floors_markdown(run.floors)
    for path in (json_path, markdown_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(as_json(run.results, meta, peers), indent=2, ensure_ascii=False) + "\n")
    markdown_path.write_text(table)
    print(table)
    run.progress(f"done in {meta['wall_seconds']} s: {json_path}, {markdown_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
