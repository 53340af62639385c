"""The change feed's figures (issue 14): replay speed, and catching up after missing 100,000 changes.

    python scripts/bench_feed.py                 # 100,000 revisions; a subscriber stopped 30 s
    python scripts/bench_feed.py --quick         # 10,000 revisions, stopped 3 s (a smoke run)

Starts a hub (heartbeat 1 s, as deployed) in a temp dir and fills it with 8 writer
processes (one change per revision, about 64-byte values).  Then, each timed:

1. **replay, pages**: one client reads the whole feed from revision 0, page by
   page (``Client.changes``, 1,000 changes a page): revisions per second;
2. **replay, replica**: the same pages applied to a ``Replica`` (the rules every
   subscriber runs): revisions per second, decoding and applying included;
3. **catch-up**: a subscriber process (``statehub watch``'s library, its own
   process) is SIGSTOPped, the writers commit N more revisions (again one change
   each), it stays stopped ``--pause`` seconds in all (at least as long as the
   writing takes), then SIGCONT: the time until it holds the hub's last revision,
   and how it got there (revisions replayed, snapshot resyncs: there must be none).

Prints one line per figure; ``--json`` also writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.client import Client  # noqa: E402
from statehub.hub.protocol import Op  # noqa: E402
from statehub.replica import Fetch, Replica  # noqa: E402
from statehub.testing import HubProcess  # noqa: E402

WRITERS = 8
PAYLOAD = "x" * 48


def fill(data_dir: Path, revisions: int, ops: int = 1) -> float:
    """Commit ``revisions`` revisions of ``ops`` changes with WRITERS processes; seconds taken."""
    share = revisions // WRITERS
    began = time.perf_counter()
    workers = [
        subprocess.Popen([sys.executable, __file__, "--writer", str(data_dir), str(share), str(ops), str(n)])
        for n in range(WRITERS)
    ]
    for worker in workers:
        if worker.wait(3600) != 0:
            raise SystemExit("a writer failed")
    return time.perf_counter() - began


def writer(data_dir: str, count: int, ops: int, number: int) -> None:
    with Client(data_dir, timeout=10.0, source="bench") as client:
        for i in range(count):
            if ops == 1:
                client.set(f"feed.w{number}.k{i % 50}", {"i": i, "p": PAYLOAD})
            else:
                client.txn([Op(op="set", key=f"feed.w{number}.t{n}", value={"i": i, "p": PAYLOAD}) for n in range(ops)])


def replay_pages(data_dir: Path) -> tuple[int, int, float]:
    """Read the whole feed from revision 0: (revisions, changes, seconds)."""
    with Client(data_dir, timeout=10.0) as client:
        began = time.perf_counter()
        after, changes = 0, 0
        while True:
            page = client.changes(after)
            changes += len(page.changes)
            after = page.last
            if not page.more:
                return after, changes, time.perf_counter() - began


def replay_replica(data_dir: Path) -> tuple[int, float]:
    """Apply the whole feed to a Replica, as a subscriber catching up does: (revisions, seconds)."""
    with Client(data_dir, timeout=10.0) as client:
        replica = Replica("")
        replica.load(client.snapshot(at_rev=0), "resume", "bench")
        began = time.perf_counter()
        fetch = replica.catch_up("resume", "bench")
        while isinstance(fetch, Fetch):
            outcomes = replica.receive_page(client.changes(fetch.after, limit=fetch.limit))
            fetch = outcomes[-1]
        return replica.rev, time.perf_counter() - began


def follower(data_dir: str) -> None:
    """A subscriber process: one JSON line per sync, catch-up and outage, and its revision when idle."""
    from statehub.replica import CaughtUp, Synced
    from statehub.subscription import HubDown

    def say(**fields: Any) -> None:
        print(json.dumps({**fields, "t": time.monotonic()}), flush=True)

    with Client(data_dir, timeout=2.0) as client, client.subscribe("") as subscription:
        shown = -1
        while True:
            event = subscription.next_event(0.05)
            if isinstance(event, Synced):
                say(event="synced", rev=event.rev, resync=event.resync)
            elif isinstance(event, CaughtUp):
                say(event="caught_up", rev=event.rev, replayed=event.replayed)
            elif isinstance(event, HubDown):
                say(event="hub_down", reason=event.reason)
            elif event is None and subscription.rev != shown:
                shown = subscription.rev
                say(event="at", rev=shown, replayed=subscription.replayed, resyncs=subscription.resyncs)


def catch_up(hub: HubProcess, revisions: int, pause: float) -> dict[str, Any]:
    """Stop a follower, commit ``revisions`` single-change revisions, keep it stopped ``pause`` s, time its catch-up."""
    follow = subprocess.Popen(
        [sys.executable, __file__, "--follower", str(hub.data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert follow.stdout is not None
    try:
        first = json.loads(follow.stdout.readline())
        assert first["event"] == "synced", first
        os.kill(follow.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        fill(hub.data_dir, revisions)
        with hub.client() as client:
            head = client.status().rev
        time.sleep(max(0.0, pause - (time.monotonic() - stopped)))
        resumed = time.monotonic()
        os.kill(follow.pid, signal.SIGCONT)
        lines = []
        for line in follow.stdout:
            lines.append(json.loads(line))
            if lines[-1].get("rev", -1) >= head and lines[-1]["event"] == "at":
                break
        last = lines[-1]
        return {
            "stopped_s": round(resumed - stopped, 1),
            "missed_revisions": head - first["rev"],
            "missed_changes": revisions,
            "catch_up_s": round(last["t"] - resumed, 2),
            "replayed": last["replayed"],
            "resyncs": last["resyncs"],
            "hub_down_reported": sum(line["event"] == "hub_down" for line in lines),
        }
    finally:
        follow.kill()
        follow.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=100_000)
    parser.add_argument("--pause", type=float, default=30.0, help="seconds the subscriber stays stopped, at least")
    parser.add_argument("--quick", action="store_true", help="10,000 revisions, a 3 s pause")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--writer", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--follower", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        data_dir, count, ops, number = args.writer
        writer(data_dir, int(count), int(ops), int(number))
        return
    if args.follower:
        follower(args.follower)
        return
    revisions, pause = (10_000, 3.0) if args.quick else (args.revisions, args.pause)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, HubProcess(Path(tmp) / "data", heartbeat=1.0) as hub:
        seconds = fill(hub.data_dir, revisions)
        print(f"filled {revisions} revisions with {WRITERS} writers in {seconds:.1f} s", file=sys.stderr)
        head, changes, seconds = replay_pages(hub.data_dir)
        figures["replay_pages_rev_per_s"] = round(head / seconds)
        print(f"replay, pages:   {head} revisions ({changes} changes) in {seconds:.2f} s: {head / seconds:,.0f} revisions/s")
        head, seconds = replay_replica(hub.data_dir)
        figures["replay_replica_rev_per_s"] = round(head / seconds)
        print(f"replay, replica: {head} revisions applied in {seconds:.2f} s: {head / seconds:,.0f} revisions/s")
        result = catch_up(hub, revisions, pause)
        figures["catch_up"] = result
        print(
            f"catch-up: stopped {result['stopped_s']} s while {result['missed_revisions']} revisions "
            f"({result['missed_changes']} changes) committed; caught up {result['catch_up_s']} s after SIGCONT, "
            f"{result['replayed']} revisions replayed, {result['resyncs']} snapshot resyncs, "
            f"{result['hub_down_reported']} hub-down reports"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
