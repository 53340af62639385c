"""Where one sequential write's time goes inside the hub: each step of the server thread's turn, timed.

    python scripts/bench_turn.py                 # 5,000 sequential writes from one client process
    python scripts/bench_turn.py --writes 20000

The hub runs in this process, in a thread, as ``statehub serve`` runs it; a
client in another process writes the benchmark's values one after the other,
each waiting for its acknowledgement (section 1 of scripts/bench).  The steps
of the write path are wrapped with a timer (about a microsecond each, on top of
what they cost), and the report gives, per write, the median of each step and
how much of the client's acknowledgement time the hub's turn took.  Steps nest:
``COMMIT`` is part of ``Store.commit``, which is part of the turn; the
``poll`` wait is the time between turns (the client and the sockets).

py-spy (scripts/bench_profile.py) tells which lines run; this tells how long
each step takes per write, without sampling.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zmq  # noqa: E402

from statehub.hub import committer, dispatch, intake, publisher, server, store, store_file  # noqa: E402

WARMUP = 500

# (label, owner, attribute): the steps of the turn, in the order a write meets them.
STEPS = (
    ("poll: between turns", zmq.Poller, "poll"),
    ("turn: Dispatcher.serve", dispatch.Dispatcher, "serve"),
    ("  callbacks of the store thread's jobs", committer.Committer, "finish"),
    ("  large requests decoded off the loop", intake.Intake, "take"),
    ("  drain: receive, decode, check", dispatch.Dispatcher, "_drain"),
    ("  commit the waiting writes", dispatch.Dispatcher, "_commit_waiting"),
    ("    Store.commit", store.Store, "commit"),
    ("      BEGIN IMMEDIATE", store_file.Transaction, "__enter__"),
    ("      the write's statements", store.Store, "_apply"),
    ("      COMMIT: WAL write + fsync", store_file.Transaction, "__exit__"),
    ("    acknowledge + publish + hand-over", dispatch.Dispatcher, "_committed"),
    ("      reply: encode + ROUTER send", dispatch.Dispatcher, "_reply"),
    ("      publish: encode + XPUB send", publisher.Publisher, "publish"),
    ("      mirror, ttl, schema hand-over", server.Hub, "_after_commit"),
    ("ttl expiry check", server.Hub, "_expire"),
)

CLIENT = """
import sys, time, json
sys.path.insert(0, {scripts!r})
import bench
writer = bench.StatehubTarget({data_dir!r}).writer()
samples, begin = [], 0.0
for i in range({total}):
    if i == {warmup}:
        begin = time.monotonic()  # the hub's steps from here on are the measured writes'
    start = time.perf_counter()
    writer.write(f"bench.k{{i % 100}}", {{"i": i, "p": bench.PAYLOAD}})
    samples.append(time.perf_counter() - start)
end = time.monotonic()
writer.close()
print(json.dumps({{"begin": begin, "end": end, "acks": samples[{warmup}:]}}))
"""


def timed(record: Callable[[tuple[float, float]], None], original: Callable[..., Any]) -> Callable[..., Any]:
    """``original``, recording (when it started, how long it took) of each call; monotonic clock, system-wide."""

    def step(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            record((start, time.monotonic() - start))

    return step


def median_us(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e6 if ordered else 0.0


def run(writes: int) -> None:
    times: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for label, owner, name in STEPS:
        setattr(owner, name, timed(times[label].append, getattr(owner, name)))
    ready = threading.Event()
    hubs: list[server.Hub] = []
    with tempfile.TemporaryDirectory(prefix="statehub-turn-") as tmp:
        data_dir = Path(tmp) / "data"
        config = server.HubConfig(data_dir=data_dir, heartbeat=1.0)
        thread = threading.Thread(
            target=server.serve,
            args=(config,),
            kwargs={"on_ready": lambda hub: (hubs.append(hub), ready.set())},
        )
        thread.start()
        if not ready.wait(30):
            raise SystemExit("error: the hub did not start within 30 s")
        try:
            client = CLIENT.format(
                scripts=str(Path(__file__).resolve().parent),
                data_dir=str(data_dir),
                total=WARMUP + writes,
                warmup=WARMUP,
            )
            done = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, check=True)
            measured = json.loads(done.stdout)
        finally:
            hubs[0].stop()
            thread.join(30)
    begin, end = measured["begin"], measured["end"]
    steps = {label: [took for start, took in calls if begin <= start < end] for label, calls in times.items()}
    report(measured["acks"], steps)


def report(acks: list[float], times: dict[str, list[float]]) -> None:
    ack = median_us(acks)
    print(f"{len(acks):,} sequential writes; the client's acknowledgement p50 {ack:,.0f} us\n")
    print("| step (nested steps are part of the one above) | calls per write | p50 (us) |")
    print("|---|---|---|")
    for label, _owner, _name in STEPS:
        samples = times[label]
        print(f"| {label} | {len(samples) / len(acks):.2f} | {median_us(samples):,.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writes", type=int, default=5000, help="sequential writes measured (default 5000)")
    args = parser.parse_args()
    run(args.writes)


if __name__ == "__main__":
    main()
