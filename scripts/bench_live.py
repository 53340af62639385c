"""How long a change takes to appear in the GUI and in a synced file (and a save to reach the hub).

    python scripts/bench_live.py [--samples 30]

Starts a hub in a temp dir, then, with the real commands as processes:
- ``statehub sync-file`` with its default interval (0.2 s) and settle time (0.15 s):
  hub -> file: from just before ``Client.set`` until the file holds the new value;
  file -> hub: from just before a save (rename) until ``Client.get`` returns it;
- ``statehub gui`` under Xvfb (skipped without Xvfb), with the test-only --dump-state:
  hub -> GUI: from just before ``Client.set`` until the window's table shows the value.
Samples are spaced so that each is independent; every wait is bounded.  Prints p50/p90/max.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.client import Client  # noqa: E402
from statehub.testing import HubProcess, wait_until  # noqa: E402

POLL = 0.002  # how often the bench itself looks (adds at most this to a sample)
GAP = 0.3  # between samples


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "statehub.cli", *args],
        env=env or dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def timed(action: Callable[[], None], seen: Callable[[], bool], timeout: float = 10.0) -> float:
    began = time.perf_counter()
    action()
    if not wait_until(seen, timeout, POLL):
        raise RuntimeError(f"not seen within {timeout} s")
    return time.perf_counter() - began


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    print(
        f"{name:<22} n={len(samples):<3} p50 {statistics.median(samples) * 1000:6.0f} ms   "
        f"p90 {p90 * 1000:6.0f} ms   max {ordered[-1] * 1000:6.0f} ms"
    )


def bench_file(hub: HubProcess, client: Client, folder: Path, samples: int) -> None:
    path = folder / "bench.toml"
    process = start("sync-file", str(path), "--data-dir", str(hub.data_dir), "--prefix", "bench.")
    try:
        assert wait_until(lambda: path.exists() and '"bench.v" = 0' in path.read_text(), 15)
        to_file = []
        for i in range(1, samples + 1):
            to_file.append(
                timed(
                    lambda i=i: client.set("bench.v", i), lambda i=i: f'"bench.v" = {i}\n' in path.read_text()
                )
            )
            time.sleep(GAP)
        to_hub = []
        for i in range(samples + 1, 2 * samples + 1):
            text = path.read_text()
            old = f'"bench.v" = {i - 1}\n'
            assert old in text, "the file is not at the last value"
            temp = path.with_name(".bench.toml.save")
            temp.write_text(text.replace(old, f'"bench.v" = {i}\n'))

            def save(temp: Path = temp) -> None:
                os.replace(temp, path)

            to_hub.append(timed(save, lambda i=i: client.get("bench.v").value == i))
            assert wait_until(
                lambda i=i: (
                    f'"bench.v" = {i}\n' in path.read_text() and path.read_text().count("# revision") == 1
                ),
                10,
            )
            time.sleep(GAP)
        report("hub -> synced file", to_file)
        report("file save -> hub", to_hub)
    finally:
        process.terminate()
        process.wait(10)


def bench_gui(hub: HubProcess, client: Client, folder: Path, samples: int) -> None:
    if shutil.which("Xvfb") is None:
        print("hub -> GUI: skipped (no Xvfb)")
        return
    display = ":189"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
    )
    dump = folder / "gui.json"
    try:
        assert wait_until(lambda: Path(f"/tmp/.X11-unix/X{display[1:]}").exists(), 10)
        gui = start(
            "gui",
            "--data-dir",
            str(hub.data_dir),
            "--dump-state",
            str(dump),
            env={**os.environ, "DISPLAY": display},
        )
        try:

            def shows(value: int) -> bool:
                try:
                    rows = json.loads(dump.read_text())["rows"]
                except (FileNotFoundError, ValueError):
                    return False
                return ["bench.v", str(value)] in [row[:2] for row in rows]

            start_value = client.get("bench.v").value
            assert wait_until(lambda: shows(start_value), 20), "the GUI did not start"
            to_gui = []
            for i in range(start_value + 1, start_value + samples + 1):
                to_gui.append(timed(lambda i=i: client.set("bench.v", i), lambda i=i: shows(i)))
                time.sleep(GAP)
            report("hub -> GUI table", to_gui)
        finally:
            gui.terminate()
            gui.wait(10)
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        with HubProcess(folder / "data", heartbeat=1.0) as hub, hub.client(source="bench") as client:
            client.set("bench.v", 0)
            bench_file(hub, client, folder, args.samples)
            bench_gui(hub, client, folder, args.samples)


if __name__ == "__main__":
    main()
