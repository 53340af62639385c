"""Overload: a stalled subscriber catches up by itself and stalls no one else; a short many-subscriber run ends equal.

Subscribers here are real processes running scripts/overload.py's subscriber worker (status lines
on stdout, "stop" on stdin); the stall is a real SIGSTOP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from statehub.testing import HubProcess, wait_until
from tests.conftest import SCRIPTS, load_script

overload = load_script("overload")


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
@pytest.mark.slow
def test_a_stalled_subscriber_resyncs_to_the_hub_state_and_stalls_no_one_else(tmp_path: Path) -> None:
    """SIGSTOP a subscriber while 40,000 changes stream past: writers and another subscriber keep going; after SIGCONT it notices the loss, replays it from history and ends equal."""
    with HubProcess(tmp_path / "data", heartbeat=0.2) as hub:
        victim = overload.SubscriberProcess(hub.data_dir, 1)
        bystander = overload.SubscriberProcess(hub.data_dir, 1)
        try:
            assert wait_until(lambda: victim.all_live() and bystander.all_live(), timeout=20)
            os.kill(victim.pid, signal.SIGSTOP)
            burst = subprocess.Popen(
                [sys.executable, str(SCRIPTS / "overload.py"), "burst", str(hub.data_dir), "400", "100"]
            )
            probes = 0
            with hub.client(timeout=5.0) as client:
                deadline = time.monotonic() + 40
                while burst.poll() is None and time.monotonic() < deadline:
                    client.set("probe.n", probes)
                    probes += 1
                assert burst.wait(10) == 0
                final = client.list()
            final_rev = final.origin.rev or 0
            # Every probe write was answered within the client's timeout (else it raised); how fast is a
            # benchmark's question (scripts/bench), not a test's on a shared machine.
            assert probes >= 50, "the probe writer made almost no progress during the stall"
            # The live subscriber catches up while the stalled one is still stopped.
            assert wait_until(lambda: bystander.min_rev() >= final_rev, timeout=15), (
                "the live subscriber was held up"
            )
            assert victim.min_rev() < final_rev
            os.kill(victim.pid, signal.SIGCONT)
            assert wait_until(lambda: victim.min_rev() >= final_rev, timeout=20), (
                "the stalled subscriber never caught up"
            )
            [stalled] = victim.stop()
            [live] = bystander.stop()
        finally:
            victim.kill()
            bystander.kill()
    expected = overload.digest(final.items)
    assert (stalled["rev"], stalled["digest"], stalled["error"]) == (final_rev, expected, "")
    assert (live["rev"], live["digest"], live["error"]) == (final_rev, expected, "")
    # It noticed what it lost and replayed it from the hub's history: no snapshot resync.
    assert stalled["replayed"] >= 1 and stalled["resyncs"] == 0, stalled
    assert any(r.startswith(("gap", "missed revisions", "the hub is back")) for r in stalled["reasons"]), (
        stalled
    )


@pytest.mark.skipif(
    not Path("/proc/self/status").exists() or not hasattr(signal, "SIGSTOP"), reason="needs /proc and SIGSTOP"
)
@pytest.mark.slow
def test_a_stalled_subscriber_cannot_make_the_hub_hold_more_than_64_mib(tmp_path: Path) -> None:
    """While a subscriber is SIGSTOPped, 100 MB of changes (200 values of 500 KB) grow the hub's RSS by less
    than 64 MiB (large values travel without their value); resumed, it ends equal to the hub."""
    with HubProcess(tmp_path / "data", heartbeat=0.2) as hub:
        victim = overload.SubscriberProcess(hub.data_dir, 1)
        try:
            assert wait_until(victim.all_live, timeout=20)
            before = overload.proc_status(hub.pid)["VmRSS"]
            os.kill(victim.pid, signal.SIGSTOP)
            with hub.client(timeout=10.0) as client:
                for i in range(200):
                    client.set(f"big.k{i % 5}", f"{i:06d}" + "x" * 500_000)
                final = client.snapshot()
            grown = overload.proc_status(hub.pid)["VmHWM"] - before
            os.kill(victim.pid, signal.SIGCONT)
            assert wait_until(lambda: victim.min_rev() >= final.rev, timeout=30)
            [report] = victim.stop()
        finally:
            victim.kill()
    assert grown < 64 * 1024, f"the hub's RSS grew by {grown // 1024} MiB for one stopped subscriber"
    assert (report["rev"], report["digest"], report["error"]) == (final.rev, overload.digest(final.items), "")


@pytest.mark.slow
def test_eight_subscribers_and_two_full_speed_writers_all_end_equal_to_the_hub(tmp_path: Path) -> None:
    """The CI variant of scripts/overload.py: 8 subscribers (2 processes), 2 writers for 3 s; no mismatch, bounded hub RSS."""
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "overload.py"),
            "--subscribers",
            "8",
            "--per-process",
            "4",
            "--writers",
            "2",
            "--seconds",
            "3",
            "--heartbeat",
            "0.2",
            "--converge-timeout",
            "30",
            "--work-dir",
            str(tmp_path / "work"),
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=55,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["problems"] == [] and report["mismatches"] == 0
    assert report["changes"] >= 200
    assert 0 < report["hub_peak_rss_kib"] < 200 * 1024
    assert "mismatches=0" in result.stdout
