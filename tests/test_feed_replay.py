"""Subscribers that miss revisions replay them from the hub's history: real hubs, real `statehub watch` processes.

A watcher is SIGSTOPped while changes stream past (its socket overflows, so
revisions are really lost on the wire), then resumed: it must not call the hub
down, and must print every change in order, replayed from history, with no
snapshot resync, unless history no longer reaches back, which it must say.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from statehub.hub.paths import Layout, read_hub_info
from statehub.testing import HubProcess, wait_until

from .conftest import cli_env

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP and SIGCONT are POSIX")


class Watcher:
    """`statehub watch --json ARGS` as a process; its output lines, parsed, collected by a thread."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        command = [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), "watch", "--json", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        self.lines: list[dict[str, Any]] = []
        self.top_rev = 0  # the highest revision whose every change has been printed
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            line = msgspec.json.decode(text)  # 100,000 lines: ~3x quicker than json.loads
            self.lines.append(line)
            if line["event"] == "changed" and line["index"] == line["count"] - 1:  # a revision's last change
                self.top_rev = max(self.top_rev, line["rev"])

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line["event"] == kind]

    def has_rev(self, rev: int) -> bool:
        # Kept by the reader: scanning 100,000 lines at each poll took more CPU than the watcher itself.
        return self.top_rev >= rev

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> str:
        """End it (SIGTERM, after SIGCONT in case it is stopped); its stderr."""
        self.resume()
        self.process.terminate()
        _, err = self.process.communicate(timeout=30)
        self._reader.join(10)
        return err


def wait_heartbeats(hub: HubProcess, count: int, timeout: float = 30.0) -> None:
    """Return once the hub has published ``count`` heartbeats: that long has passed by the hub's clock."""
    info = read_hub_info(Layout(hub.data_dir))
    assert info is not None
    context = zmq.Context()
    try:
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"@hb")
        sub.connect(info.events)
        seen, deadline = 0, time.monotonic() + timeout
        while seen < count and time.monotonic() < deadline:
            if sub.poll(100) and sub.recv_multipart()[0] == b"@hb":
                seen += 1
        assert seen >= count, f"only {seen} heartbeats within {timeout} s"
    finally:
        context.destroy(linger=0)


def run_worker(hub: HubProcess, *args: str) -> None:
    worker = subprocess.run([sys.executable, "-m", "tests.workers", *args], timeout=120, capture_output=True, text=True)
    assert worker.returncode == 0, worker.stderr


def hub_state(hub: HubProcess, prefix: str) -> dict[str, Any]:
    with hub.client() as client:
        return {item.key: item.value for item in client.list(prefix).items}


def replica_of(watcher: Watcher) -> dict[str, Any]:
    """What the watcher's output says the keys hold: its changes applied in order."""
    state: dict[str, Any] = {}
    for line in watcher.events("changed"):
        if line["op"] == "set":
            state[line["key"]] = line["value"]
        else:
            state.pop(line["key"], None)
    return state


def test_a_paused_subscriber_reads_what_is_queued_before_calling_the_hub_down(hub: HubProcess) -> None:
    """Issue 13 item 11: stopped past the silence window, then resumed, a watcher reports no hub down and
    prints every change made meanwhile, in order."""
    watcher = Watcher(hub.data_dir, "p.")
    try:
        assert wait_until(lambda: watcher.events("synced"), 15)
        with hub.client() as client:
            value = 0
            for _ in range(8):  # a resume that judges silence before reading fails one time in a few
                watcher.pause()
                for _ in range(10):
                    client.set(f"p.k{value % 3}", value)
                    value += 1
                wait_heartbeats(hub, 6)  # 1.2 s: twice the silence window of three heartbeat intervals
                watcher.resume()
                assert wait_until(lambda last=value: watcher.has_rev(last), 15), watcher.lines[-3:]
    finally:
        err = watcher.stop()
    assert watcher.events("hub_down") == [], err
    assert [line["value"] for line in watcher.events("changed")] == list(range(80))
    assert not [line for line in watcher.events("synced") if line["resync"]]


def test_a_subscriber_stopped_while_100000_changes_pass_catches_up_by_replay(hub: HubProcess) -> None:
    """100,000 changes overflow a stopped watcher's socket; resumed, it replays them all from history, in order,
    with no snapshot resync."""
    watcher = Watcher(hub.data_dir, "big.")
    try:
        assert wait_until(lambda: watcher.events("synced"), 15)
        watcher.pause()
        run_worker(hub, "txns", str(hub.data_dir), "1000", "100", "big.")  # 1,000 revisions of 100 changes
        wait_heartbeats(hub, 4)
        watcher.resume()
        assert wait_until(lambda: watcher.has_rev(1000), 60), watcher.lines[-3:]
    finally:
        err = watcher.stop()
    changes = watcher.events("changed")
    assert len(changes) == 100_000, err
    assert [(c["rev"], c["index"]) for c in changes] == [(rev, n) for rev in range(1, 1001) for n in range(100)]
    assert [c["value"] for c in changes] == list(range(100_000))
    assert {c["origin"] for c in changes[-70_000:]} == {"replay"}  # the sockets held 20,000 at most
    assert [e["cause"] for e in watcher.events("caught_up")] and not watcher.events("hub_down"), err
    assert not [line for line in watcher.events("synced") if line["resync"]]
    assert replica_of(watcher) == hub_state(hub, "big.")


def test_a_subscriber_that_missed_more_than_history_keeps_resyncs_and_says_so(data_dir: Path) -> None:
    """With --history-keep smaller than what it missed, the watcher rebuilds from a snapshot and reports it."""
    with HubProcess(data_dir, args=["--history-keep", "100"]) as hub:
        watcher = Watcher(hub.data_dir, "small.")
        try:
            assert wait_until(lambda: watcher.events("synced"), 15)
            watcher.pause()
            run_worker(hub, "txns", str(hub.data_dir), "1100", "40", "small.")  # 44,000 changes; pruned at 1000
            wait_heartbeats(hub, 4)
            watcher.resume()
            assert wait_until(lambda: [s for s in watcher.events("synced") if s["resync"]], 60), watcher.lines[-3:]
            assert wait_until(lambda: replica_of(watcher) == hub_state(hub, "small."), 30)
        finally:
            err = watcher.stop()
        [resync] = [s for s in watcher.events("synced") if s["resync"]]
        assert resync["cause"] == "compacted" and "history starts at revision 901" in resync["reason"]
        assert not watcher.events("hub_down"), err


def test_watch_since_replays_every_change_after_a_revision_then_follows(hub: HubProcess) -> None:
    """`statehub watch --since EPOCH:REV` prints the changes after REV from history, then live ones."""
    with hub.client() as client:
        epoch = client.set("s.a", 1).epoch
        for value in range(2, 6):
            client.set("s.a", value)  # revisions 2..5
        watcher = Watcher(hub.data_dir, "s.", "--since", f"{epoch}:2", "--initial")
        try:
            assert wait_until(lambda: watcher.events("caught_up"), 15), watcher.lines
            client.set("s.b", "live")
            assert wait_until(lambda: watcher.has_rev(6), 15)
        finally:
            watcher.stop()
    [synced] = watcher.events("synced")
    assert (synced["rev"], synced["resync"], synced["cause"]) == (2, False, "resume")
    changes = [(c["rev"], c["key"], c["value"], c["origin"]) for c in watcher.events("changed")]
    assert changes == [
        (2, "s.a", 2, "snapshot"),  # --initial: the state at revision 2
        (3, "s.a", 3, "replay"),
        (4, "s.a", 4, "replay"),
        (5, "s.a", 5, "replay"),
        (6, "s.b", "live", "live"),
    ]


def test_watch_since_another_store_says_it_cannot_resume(hub: HubProcess) -> None:
    """An epoch that is not the hub's (a restored store) is refused as a resume point: a reported resync."""
    with hub.client() as client:
        client.set("s.a", 1)
    command = [sys.executable, "-m", "statehub.cli", "--data-dir", str(hub.data_dir), "watch", "s.", "--since", "0123456789abcdef:1"]
    watch = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert watch.stderr is not None
        said = ""
        for _ in range(5):  # the library's own warning may come first
            said = watch.stderr.readline()
            if said.startswith("# "):
                break
    finally:
        watch.terminate()
        watch.communicate(timeout=30)
    assert "resynced from a snapshot at revision 1" in said and "not 0123456789abcdef" in said, said
    bad = subprocess.run(
        [sys.executable, "-m", "statehub.cli", "--data-dir", str(hub.data_dir), "watch", "--since", "yesterday"],
        capture_output=True,
        text=True,
        timeout=30,
        env=cli_env(),
    )
    assert bad.returncode == 2 and "--since 'yesterday' is not a revision" in bad.stderr


def test_get_and_list_at_a_revision_from_the_command_line(hub: HubProcess) -> None:
    """`statehub get KEY --rev R` and `list PREFIX --rev R --json` read the state right after R."""
    from .conftest import run_cli

    with hub.client() as client:
        client.set("h.a", 1)
        client.set("h.a", 2)
        client.set("h.b", 3)
    assert run_cli(hub.data_dir, "get", "h.a", "--rev", "1").stdout.strip() == "1"
    listed = msgspec.json.decode(run_cli(hub.data_dir, "list", "h.", "--rev", "2", "--json").stdout)
    assert listed["rev"] == 2 and [(i["key"], i["value"]) for i in listed["items"]] == [("h.a", 2)]
    missing = run_cli(hub.data_dir, "get", "h.b", "--rev", "2")
    assert missing.returncode == 3 and "no key 'h.b' at revision 2" in missing.stderr
