#!/usr/bin/env python3
"""How a fresh client treats a hub that is alive but paused: does it wait its whole timeout?

Starts a hub, then, for each run, freezes it (SIGSTOP), starts a write from a
new client with ``--timeout`` seconds, and lets the hub go on (SIGCONT) after
``--pause`` seconds.  A client that honours its timeout waits and gets its
answer (exit 0, about ``--pause`` seconds); one that judges "not running" from
a slow handshake gives up early with "no reply ... within TIMEOUT s".

    python scripts/hub_pause.py                      # CLI and library, pause 2 s, timeout 5 s, 3 runs each
    python scripts/hub_pause.py --pause 1 --runs 5 --json pause.json

Prints one line per run and a summary last; exits 0 only if every write succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from statehub import Client, StatehubError
from statehub.testing import HubProcess


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pause", type=float, default=2.0, help="seconds the hub stays frozen (default 2)")
    parser.add_argument("--timeout", type=float, default=5.0, help="the client's timeout (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="runs per client kind (default 3)")
    parser.add_argument("--tcp", action="store_true", help="run the hub on loopback tcp instead of ipc")
    parser.add_argument("--json", type=Path, help="also write the runs as JSON here")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="statehub-pause-") as tmp, HubProcess(
        Path(tmp) / "data", args=["--tcp"] if args.tcp else []
    ) as hub:
        for kind in ("cli", "library"):
            for n in range(args.runs):
                run = paused_write(hub, kind, n, args.pause, args.timeout)
                runs.append(run)
                print(f"{kind:<8} run {n + 1}: {run['outcome']:<4} after {run['seconds']:.2f} s  {run['detail']}")
    ok = sum(run["outcome"] == "ok" for run in runs)
    print(f"summary: {ok}/{len(runs)} writes answered by a hub paused {args.pause:g} s (client timeout {args.timeout:g} s)")
    if args.json:
        args.json.write_text(json.dumps({"pause": args.pause, "timeout": args.timeout, "runs": runs}, indent=1))
    return 0 if ok == len(runs) else 1


def paused_write(hub: HubProcess, kind: str, n: int, pause: float, timeout: float) -> dict[str, Any]:
    """Freeze the hub, write from a fresh client, let the hub go on after ``pause``; what the write came to."""
    os.kill(hub.pid, signal.SIGSTOP)
    resume = threading.Timer(pause, os.kill, (hub.pid, signal.SIGCONT))
    resume.start()
    started = time.monotonic()
    try:
        if kind == "cli":
            command = [sys.executable, "-m", "statehub.cli", "--data-dir", str(hub.data_dir), "--timeout", str(timeout)]
            done = subprocess.run([*command, "set", "pause.n", str(n)], capture_output=True, text=True, timeout=60)
            outcome, detail = ("ok" if done.returncode == 0 else f"exit {done.returncode}"), (done.stdout + done.stderr).strip()
        else:
            with Client(hub.data_dir, timeout=timeout) as client:
                try:
                    outcome, detail = "ok", f"revision {client.set('pause.n', n).rev}"
                except StatehubError as exc:
                    outcome, detail = type(exc).__name__, exc.message
    finally:
        seconds = time.monotonic() - started
        resume.join()
        os.kill(hub.pid, signal.SIGCONT)  # in case the timer had not fired yet
    return {"client": kind, "outcome": outcome, "seconds": round(seconds, 3), "detail": detail.splitlines()[0] if detail else ""}


if __name__ == "__main__":
    raise SystemExit(main())
