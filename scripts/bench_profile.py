"""Where the hub's time goes under write load: py-spy samples of a real hub, summarised.

    .venv/bin/pip install py-spy            # not a dependency: only this script needs it
    python scripts/bench_profile.py                   # sequential writes, then 8 writers
    python scripts/bench_profile.py --writers 8 --seconds 15 --keep /tmp/profiles

A hub runs in a temp dir; py-spy samples it (``--idle``, so time blocked in fsync or in
poll counts too, unless ``--cpu``; and ``--nonblocking``, so sampling does not slow the hub)
while bench.py's drivers load it.  The report gives, for the hub's server thread and its store
thread, the share of samples in which each step of the write path was on the stack (inclusive),
and the lines that were running (exclusive), so "COMMIT" is the time fsync-ing the WAL and "poll"
the time idle.  It runs against an older tree too (steps it lacks are left out).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench  # noqa: E402

from statehub.testing import HubProcess  # noqa: E402

# Steps of the write path, by the function (and file) py-spy names in a frame.
STEPS = (
    ("poll: waiting for requests", "run (hub/server.py", "poll ("),
    ("Dispatcher.serve: one turn", "serve (hub/dispatch.py", None),
    ("recv_multipart", "_drain (hub/dispatch.py", "recv_multipart ("),
    ("decode + validate", "decode_or_refuse (hub/dispatch.py", None),
    ("reads answered", "_answer (hub/dispatch.py", None),
    ("a lone write committed on the loop (run_here)", "run_here (hub/committer.py", None),
    ("store thread: waiting for a job", "_run (hub/committer.py", "get ("),
    ("Store.commit: the transaction", "commit (hub/store.py", None),
    ("Store._apply: SQL per write", "_apply (hub/store.py", None),
    ("Transaction.__enter__: BEGIN IMMEDIATE", "__enter__ (hub/store_file.py", None),
    ("Transaction.__exit__: COMMIT (WAL fsync)", "__exit__ (hub/store_file.py", None),
    ("_check_still_there: stat per commit", "_check_still_there (hub/store.py", None),
    ("acknowledge + publish (_committed; _commit before the store thread)", "_commit", None),
    ("Publisher.publish: PUB", "publish (hub/publisher.py", None),
    ("_reply: send replies", "_reply (hub/dispatch.py", None),
    ("mirror hand-over (apply; request before)", "(hub/mirror_writer.py", None),
    ("chores: store file, hub.json, inbox, heartbeat", "_housekeeping (hub/server.py", None),
)
THREADS = (("server thread", "run (hub/server.py"), ("store thread", "_run (hub/committer.py"))
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def record(pid: int, seconds: float, out: Path, rate: int, idle: bool) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate)]
    command += ["--format", "raw", "--nonblocking", "--threads", "--output", str(out)]
    return subprocess.Popen(
        command + (["--idle"] if idle else []), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def load_stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarise(stacks: list[tuple[list[str], int]], title: str) -> str:
    lines = [f"## {title}", ""]
    for name, marker in THREADS:
        thread = [(frames, n) for frames, n in stacks if any(marker in f for f in frames)]
        if thread:
            lines += _thread_shares(thread, name)
    known = [marker for _, marker in THREADS]
    others = [(frames, n) for frames, n in stacks if not any(m in f for f in frames for m in known)]
    mirror = sum(n for frames, n in others if any("hub/mirror_writer.py" in f for f in frames))
    lines += [f"other threads: {sum(n for _, n in others)} samples, of which mirror thread {mirror}", ""]
    return "\n".join(lines)


def _thread_shares(thread: list[tuple[list[str], int]], name: str) -> list[str]:
    total = sum(n for _, n in thread) or 1
    lines = [f"{name}: {total} samples", "", "| step (inclusive) | share |", "|---|---|"]
    for label, frame, inner in STEPS:
        hits = 0
        for frames, n in thread:
            positions = [i for i, f in enumerate(frames) if frame in f]
            if positions and (inner is None or any(inner in f for f in frames[positions[0] + 1 :])):
                hits += n
        if hits:
            lines.append(f"| {label} | {hits / total:.1%} |")
    leaves: collections.Counter[str] = collections.Counter()
    for frames, n in thread:
        leaves[_short(frames[-1])] += n
    lines += ["", "| running line (exclusive) | share |", "|---|---|"]
    lines += [f"| `{leaf}` | {n / total:.1%} |" for leaf, n in leaves.most_common(12)]
    return [*lines, ""]


def _short(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame
    file = match.group("file")
    for marker in ("site-packages/", "/lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match.group('func')} ({file}:{match.group('line') or '?'})"


def profile(hub: HubProcess, writers: int, seconds: float, out: Path, rate: int, idle: bool) -> str:
    ctx = bench.context()
    target = bench.StatehubTarget(str(hub.data_dir))
    if writers == 0:
        spy = record(hub.pid, seconds, out, rate, idle)
        time.sleep(0.5)
        count = bench.write_ack(target, int(seconds * 1500), 1)  # ~seconds of sequential acks
        title = f"sequential writes, 1 client (ack p50 {count[0]['p50_us']:.0f} us)"
    else:
        run = bench.ThroughputRun(target, writers, seconds, 1, ctx)
        with bench.processes(run.procs):
            run.wait_ready()
            spy = record(hub.pid, seconds, out, rate, idle)
            time.sleep(0.5)
            run.start(delay=0.0)
            rate_found = run.results()[0]
        title = f"{writers} writer processes ({rate_found:.0f} writes/s)"
    _, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0:
        raise SystemExit(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
    return summarise(load_stacks(out), title)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--writers", type=int, nargs="*", default=[0, 8], help="0: sequential writes, 1 client"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=997, help="py-spy samples per second")
    parser.add_argument("--keep", type=Path, help="keep the raw py-spy stacks in this folder")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="sample only while the hub's threads run (no --idle): CPU, not wall time",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-profile-") as tmp:
        keep = args.keep or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        with HubProcess(Path(tmp) / "data", heartbeat=1.0) as hub:
            for writers in args.writers:
                out = keep / f"hub-{writers or 'seq'}{'-cpu' if args.cpu else ''}.txt"
                print(profile(hub, writers, args.seconds, out, args.rate, not args.cpu), flush=True)


if __name__ == "__main__":
    main()
