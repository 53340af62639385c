"""Overload: many subscribers and writers at full speed; every subscriber must end equal to the hub.

    python scripts/overload.py                                  # 100 subscribers, 8 writers, 60 s
    python scripts/overload.py --subscribers 8 --writers 2 --seconds 3   # about what CI runs

Subscribers run as threads, ``--per-process`` Subscriptions per process (the machine has few
cores; one process each would spend them on interpreters).  Writers are processes setting keys as
fast as the hub acknowledges.  When the writers stop, every subscriber must reach the hub's final
revision and hold exactly the hub's items (compared by digest).  Reported: changes (revisions
written), resyncs (gap, heartbeat or silence), mismatches (must be 0), and the hub's peak RSS
(VmHWM from /proc).  Exit status 0 means no mismatch.

The same file is the worker program the tests start:

    overload.py subscriber DATA_DIR [--threads N]   status lines on stdout; "stop" on stdin ends it
    overload.py writer DATA_DIR N SECONDS           sets w{N}.k0..k19 as fast as it can
    overload.py burst DATA_DIR TXNS OPS             TXNS txns of OPS keys each (OPS changes per txn)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from statehub.client import Client  # noqa: E402
from statehub.hub.protocol import Item, Op  # noqa: E402
from statehub.subscription import CaughtUp, Subscription, Synced  # noqa: E402
from statehub.testing import HubProcess  # noqa: E402

REPORT_EVERY = 0.2  # seconds between a subscriber process's status lines


def digest(items: dict[str, Item] | list[Item]) -> str:
    """A fingerprint of a replica: every key with its value and revision."""
    values = items.values() if isinstance(items, dict) else items
    rows = sorted([item.key, item.value, item.rev] for item in values)
    return hashlib.sha256(msgspec.json.encode(rows)).hexdigest()[:16]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB; {} when it is gone."""
    found = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(rest.split()[0])
    except OSError:
        pass
    return found


# --- worker: a process of subscriber threads ------------------------------------------------


class _Replica(threading.Thread):
    def __init__(self, data_dir: Path, stopping: threading.Event) -> None:
        super().__init__(daemon=True)
        self.data_dir = data_dir
        self.stopping = stopping
        self.subscription: Subscription | None = None
        self.reasons: list[str] = []
        self.updates = 0
        self.error = ""

    def run(self) -> None:
        try:
            with Subscription(self.data_dir, timeout=2.0) as subscription:
                self.subscription = subscription
                while not self.stopping.is_set():
                    event = subscription.next_event(0.1)
                    if isinstance(event, (Synced, CaughtUp)) and not (isinstance(event, Synced) and event.first):
                        self.reasons.append(event.reason)  # a resync, or a catch-up from history
                    elif event is not None:
                        self.updates += 1
        except Exception as exc:  # reported, so the supervisor sees it instead of a silent thread
            self.error = f"{type(exc).__name__}: {exc}"

    def status(self) -> list[Any]:
        s = self.subscription
        return [s.rev, s.resyncs, s.is_live] if s is not None else [0, 0, False]

    def final(self) -> dict[str, Any]:
        s = self.subscription
        if s is None:
            return {"rev": 0, "resyncs": 0, "replayed": 0, "digest": "", "keys": 0, "reasons": [], "error": self.error}
        return {
            "rev": s.rev,
            "resyncs": s.resyncs,
            "replayed": s.replayed,
            "digest": digest(s.items),
            "keys": len(s.items),
            "reasons": self.reasons[-5:],
            "updates": self.updates,
            "error": self.error,
        }


def run_subscribers(data_dir: Path, threads: int) -> int:
    """Print {"subs": [[rev, resyncs, live], ...]} every REPORT_EVERY s; on "stop" or EOF print the finals."""
    stopping = threading.Event()
    replicas = [_Replica(data_dir, stopping) for _ in range(threads)]
    for replica in replicas:
        replica.start()

    def watch_stdin() -> None:
        sys.stdin.readline()  # "stop", or EOF when the supervisor goes away
        stopping.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while not stopping.wait(REPORT_EVERY):
        print(json.dumps({"subs": [r.status() for r in replicas]}), flush=True)
    for replica in replicas:
        replica.join(10)
    print(json.dumps({"final": [r.final() for r in replicas]}), flush=True)
    return 0


class SubscriberProcess:
    """The supervisor's handle on one subscriber process: its latest status and its final report."""

    def __init__(self, data_dir: Path, threads: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "subscriber", str(data_dir), "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.subs: list[list[Any]] = []
        self.final: list[dict[str, Any]] | None = None
        self.lines = 0
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            message = json.loads(line)
            self.lines += 1
            if "final" in message:
                self.final = message["final"]
            else:
                self.subs = message["subs"]

    @property
    def pid(self) -> int:
        return self.process.pid

    def all_live(self) -> bool:
        return bool(self.subs) and all(live for _rev, _resyncs, live in self.subs)

    def min_rev(self) -> int:
        return min((rev for rev, _resyncs, _live in self.subs), default=0)

    def stop(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        self.process.wait(timeout)
        self._reader.join(timeout)
        return self.final or []

    def kill(self) -> None:
        """End the process if it still runs (even when stopped) and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()  # SIGKILL ends a SIGSTOPped process too
            self.process.wait()
        self._reader.join(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()


# --- workers: writers -----------------------------------------------------------------------


def run_writer(data_dir: Path, index: int, seconds: float) -> int:
    """Set w{index}.k0..k19 round-robin until ``seconds`` pass; print how many were acknowledged."""
    done = 0
    with Client(data_dir, timeout=5.0, source="overload") as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            client.set(f"w{index}.k{done % 20}", done)
            done += 1
    print(json.dumps({"writer": index, "writes": done}), flush=True)
    return 0


def run_burst(data_dir: Path, txns: int, ops: int) -> int:
    """Commit ``txns`` txns of ``ops`` keys each: ``txns * ops`` published changes, fast."""
    with Client(data_dir, timeout=5.0, source="burst") as client:
        for n in range(txns):
            client.txn([Op(op="set", key=f"burst.k{i}", value=n) for i in range(ops)])
    return 0


# --- the supervisor ---------------------------------------------------------------------------


@dataclass
class Report:
    subscribers: int = 0
    writers: int = 0
    seconds: float = 0.0
    changes: int = 0
    writes_per_second: float = 0.0
    resyncs: int = 0
    max_resyncs: int = 0
    subscribers_that_resynced: int = 0
    mismatches: int = 0
    converge_seconds: float = 0.0
    hub_rss_start_kib: int = 0
    hub_rss_end_kib: int = 0
    hub_peak_rss_kib: int = 0
    sample_reasons: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"overload: subscribers={self.subscribers} writers={self.writers} seconds={self.seconds:g} "
            f"changes={self.changes} ({self.writes_per_second:.0f}/s) resyncs={self.resyncs} "
            f"(max {self.max_resyncs} per subscriber, {self.subscribers_that_resynced} subscribers) "
            f"mismatches={self.mismatches} converged_in={self.converge_seconds:.1f}s "
            f"hub_rss={self.hub_rss_start_kib // 1024}->{self.hub_rss_end_kib // 1024} MiB "
            f"peak={self.hub_peak_rss_kib // 1024} MiB {'PASS' if not self.problems else 'FAIL'}"
        )


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def run(args: argparse.Namespace) -> Report:
    report = Report(subscribers=args.subscribers, writers=args.writers, seconds=args.seconds)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="statehub-overload-"))
    hub = HubProcess(work / "data", heartbeat=args.heartbeat).start()
    counts = [args.per_process] * (args.subscribers // args.per_process)
    if args.subscribers % args.per_process:
        counts.append(args.subscribers % args.per_process)
    groups: list[SubscriberProcess] = []
    writers: list[subprocess.Popen[str]] = []
    try:
        with hub.client() as client:
            client.set("overload.start", time.time())
        groups = [SubscriberProcess(hub.data_dir, n) for n in counts]
        if not wait_for(lambda: all(g.all_live() for g in groups), timeout=60):
            report.problems.append("not every subscriber went live within 60 s")
            return report
        report.hub_rss_start_kib = proc_status(hub.pid).get("VmRSS", 0)
        started = time.monotonic()
        writers = [
            subprocess.Popen(
                [sys.executable, __file__, "writer", str(hub.data_dir), str(n), str(args.seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(args.writers)
        ]
        for writer in writers:
            if writer.wait(args.seconds + 60) != 0:
                report.problems.append(f"a writer exited with {writer.returncode}")
        elapsed = time.monotonic() - started
        with hub.client(timeout=10.0) as client:
            final = client.list()
        final_rev = final.origin.rev or 0
        expected = digest(final.items)
        report.changes = final_rev - 1  # the first revision is overload.start
        report.writes_per_second = report.changes / elapsed
        converge_from = time.monotonic()
        if not wait_for(lambda: all(g.min_rev() >= final_rev for g in groups), timeout=args.converge_timeout):
            behind = [g.min_rev() for g in groups]
            report.problems.append(
                f"subscribers did not reach revision {final_rev} within {args.converge_timeout} s: {behind}"
            )
        report.converge_seconds = time.monotonic() - converge_from
        status = proc_status(hub.pid)
        report.hub_rss_end_kib = status.get("VmRSS", 0)
        report.hub_peak_rss_kib = status.get("VmHWM", 0)
        finals = [sub for g in groups for sub in g.stop()]
        if len(finals) != args.subscribers:
            report.problems.append(f"{len(finals)} of {args.subscribers} subscribers reported")
        for sub in finals:
            if sub["error"]:
                report.problems.append(f"a subscriber failed: {sub['error']}")
            if (sub["rev"], sub["digest"]) != (final_rev, expected):
                report.mismatches += 1
        report.mismatches += args.subscribers - len(finals)
        if report.mismatches:
            report.problems.append(f"{report.mismatches} subscribers differ from the hub")
        report.resyncs = sum(sub["resyncs"] for sub in finals)
        report.max_resyncs = max((sub["resyncs"] for sub in finals), default=0)
        report.subscribers_that_resynced = sum(1 for sub in finals if sub["resyncs"])
        report.sample_reasons = sorted({r.split(":")[0] for sub in finals for r in sub["reasons"]})[:10]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        for group in groups:
            group.kill()
        hub.kill()
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "subscriber":
        p = argparse.ArgumentParser(prog="overload.py subscriber")
        p.add_argument("data_dir", type=Path)
        p.add_argument("--threads", type=int, default=1)
        a = p.parse_args(argv[1:])
        return run_subscribers(a.data_dir, a.threads)
    if argv and argv[0] == "writer":
        return run_writer(Path(argv[1]), int(argv[2]), float(argv[3]))
    if argv and argv[0] == "burst":
        return run_burst(Path(argv[1]), int(argv[2]), int(argv[3]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument(
        "--per-process", type=int, default=10, help="Subscription threads per process (default 10)"
    )
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0, help="how long the writers write (default 60)")
    p.add_argument(
        "--heartbeat", type=float, default=1.0, help="the hub's heartbeat interval (default 1, as deployed)"
    )
    p.add_argument("--converge-timeout", type=float, default=120.0)
    p.add_argument("--work-dir", help="where the data dir goes (default: a temp dir)")
    p.add_argument("--json", dest="json_path", help="also write the report as JSON here")
    args = p.parse_args(argv)
    report = run(args)
    for problem in report.problems[:20]:
        print(f"problem: {problem}", file=sys.stderr)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    print(report.line(), flush=True)
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
