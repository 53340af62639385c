"""The Rust client against a real hub, driven through its binary, next to the Python client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import pytest

from statehub.client import Client
from statehub.hub.protocol import Op
from statehub.testing import HubProcess, mirror_rev, wait_until
from tests.outcome_support import linux_only, receive, rpc_port, silent_hub, stopped, tcp_queues

CRATE = Path(__file__).resolve().parent.parent / "clients" / "rust"
BINARY = CRATE / "target" / "release" / "statehub-rs"


@pytest.fixture(scope="session")
def rust_bin() -> Path:
    """The statehub-rs binary; built here if scripts/test has not built it already."""
    if not BINARY.exists():
        if shutil.which("cargo") is None:
            pytest.skip("cargo is not installed: the Rust client cannot be built here")
        subprocess.run(
            ["cargo", "build", "--config", ".cargo-offline/config.toml", "--locked", "--release"],
            cwd=CRATE,
            check=True,
            timeout=900,
        )
    return BINARY


def rs(rust_bin: Path, data_dir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(rust_bin), "--data-dir", str(data_dir), *args], capture_output=True, text=True, timeout=timeout
    )


def start_watch(rust_bin: Path, hub: HubProcess, prefix: str, *args: str) -> subprocess.Popen[str]:
    """`statehub-rs watch PREFIX --initial --json`, returned once it has printed a marker key (so it is live)."""
    with hub.client() as client:
        client.set(f"{prefix}marker", 1)
    watch = subprocess.Popen(
        [str(rust_bin), "--data-dir", str(hub.data_dir), "watch", prefix, "--initial", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    first = next_change(watch.stdout)
    assert first["key"] == f"{prefix}marker"
    return watch


def is_change(line: dict[str, Any]) -> bool:
    """A change line of `watch --json`, not one of its notices (synced, caught_up, hub_down)."""
    return line.get("event") == "changed"


def next_change(stream: IO[str], lines: int = 20) -> dict[str, Any]:
    """The next change `watch --json` prints on ``stream``, past its notices (at most ``lines`` read)."""
    for _ in range(lines):
        line = json.loads(stream.readline())
        if is_change(line):
            return line
    raise AssertionError(f"no change in {lines} lines of watch --json")


def changes_of(out: str) -> list[dict[str, Any]]:
    """The change lines of what `watch --json` printed, its notices left out."""
    return [line for line in map(json.loads, out.splitlines()) if is_change(line)]


def test_python_writes_reach_rust_watch_in_order(rust_bin: Path, hub: HubProcess) -> None:
    watch = start_watch(rust_bin, hub, "py.", "--count", "32")  # --count includes the --initial marker
    with hub.client() as client:
        for i in range(30):
            client.set(f"py.k{i % 4}", i)
        client.set("py.done", True)
    out, err = watch.communicate(timeout=30)
    changes = changes_of(out)
    assert [c["value"] for c in changes[:30]] == list(range(30)), err
    assert [c["rev"] for c in changes] == sorted(c["rev"] for c in changes)
    assert changes[-1]["key"] == "py.done" and changes[0]["source"] == "python"


def test_rust_writes_reach_the_python_client(rust_bin: Path, hub: HubProcess) -> None:
    assert rs(rust_bin, hub.data_dir, "set", "rs.rate", "42").returncode == 0
    assert rs(rust_bin, hub.data_dir, "set", "rs.name", "pump 1").returncode == 0
    with hub.client() as client:
        rate = client.get("rs.rate")
        assert (rate.value, rate.item.source) == (42, "rust")
        assert client.get("rs.name").value == "pump 1"
    conflict = rs(rust_bin, hub.data_dir, "set", "rs.rate", "1", "--expect-rev", "99")
    assert conflict.returncode == 4 and "conflict on 'rs.rate'" in conflict.stderr
    assert rs(rust_bin, hub.data_dir, "get", "rs.none").returncode == 3
    assert rs(rust_bin, hub.data_dir, "set", "bad..key", "1").returncode == 2


def test_a_txn_arrives_whole_in_rust_watch(rust_bin: Path, hub: HubProcess) -> None:
    watch = start_watch(rust_bin, hub, "t.", "--count", "31")
    with hub.client() as client:
        for i in range(10):
            client.txn([Op(op="set", key=f"t.{name}", value=i) for name in ("a", "b", "c")])
    out, _ = watch.communicate(timeout=30)
    changes = [change for change in changes_of(out) if "marker" not in change["key"]]
    by_rev: dict[int, list[dict]] = {}
    for change in changes:
        by_rev.setdefault(change["rev"], []).append(change)
    assert len(by_rev) == 10
    for group in by_rev.values():
        assert [c["index"] for c in group] == [0, 1, 2] and {c["count"] for c in group} == {3}
        assert len({c["value"] for c in group}) == 1


def test_rust_watch_fetches_large_values_and_masks_secrets(rust_bin: Path, hub: HubProcess) -> None:
    """A value the stream leaves out for its size arrives whole; a secret arrives as its placeholder."""
    big = {"rows": ["y" * 100] * 100}
    watch = start_watch(rust_bin, hub, "lv.", "--count", "3")
    with hub.client() as client:
        client.set("lv.table", big)
        client.set_secret("lv.password", "rust-should-never-see-this")
    out, err = watch.communicate(timeout=30)
    changes = [change for change in changes_of(out) if "marker" not in change["key"]]
    assert [(c["key"], c["value"]) for c in changes] == [("lv.table", big), ("lv.password", "<secret>")], err
    assert "rust-should-never-see-this" not in out + err
    listed = rs(rust_bin, hub.data_dir, "get", "lv.password")
    assert listed.returncode == 0 and listed.stdout.strip() == "<secret>"


def test_with_the_hub_killed_rust_get_answers_from_the_mirror(rust_bin: Path, hub: HubProcess) -> None:
    with hub.client() as client:
        for i in range(5):
            client.set("m.rate", i)
    assert wait_until(lambda: mirror_rev(hub.data_dir) == 5)
    hub.kill()
    result = rs(rust_bin, hub.data_dir, "get", "m.rate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    assert "mirror" in result.stderr and "revision 5" in result.stderr
    as_json = json.loads(rs(rust_bin, hub.data_dir, "--json", "get", "m.rate").stdout)
    assert (as_json["from_mirror"], as_json["mirror_rev"]) == (True, 5)
    assert rs(rust_bin, hub.data_dir, "set", "m.rate", "9").returncode == 5


def test_react_carries_on_across_a_hub_restart_and_misses_nothing(
    rust_bin: Path, hub: HubProcess, tmp_path: Path
) -> None:
    """Every change reaches the command once, in order; across a hub restart react catches up from
    the hub's history (no snapshot resync), so a change made before it reconnected is not lost."""
    log = tmp_path / "react.log"
    react = subprocess.Popen(
        [
            str(rust_bin),
            "--data-dir",
            str(hub.data_dir),
            "react",
            "r.",
            "--exec",
            f"cat >> {log}; echo >> {log}",
            "--timeout",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert react.stderr is not None
    assert "following from revision" in react.stderr.readline()  # live before we write

    def seen() -> list[dict]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    try:
        with hub.client() as client:
            client.set("r.first", 0)
            assert wait_until(lambda: len(seen()) >= 1, timeout=15)
            for i in range(1, 6):
                client.set("r.n", i)
        assert wait_until(lambda: any(c.get("value") == 5 for c in seen()), timeout=15)
        hub.kill()
        assert "hub unavailable" in react.stderr.readline()  # react noticed the silence
        hub.start()
        with hub.client() as client:
            client.set("r.during", "set before react reconnects")
        assert "caught up" in react.stderr.readline()  # back, and replayed what it missed by itself
        with hub.client() as client:
            for i in range(6, 11):
                client.set("r.n", i)
            client.set("r.last", "done")
        assert wait_until(lambda: any(c.get("key") == "r.last" for c in seen()), timeout=20)
    finally:
        react.terminate()
        _, err = react.communicate(timeout=10)
    values = [c["value"] for c in seen() if c["key"] == "r.n"]
    assert values == list(range(1, 11)), err
    assert [c["rev"] for c in seen()] == list(range(1, 14)), err  # every revision once, in order
    assert not any(c["resync"] for c in seen()) and "resync" not in err
    assert react.returncode == 0


def test_rust_client_with_an_allowed_key_works_over_curve(rust_bin: Path, tmp_path: Path) -> None:
    """statehub-rs reaches a --listen hub with the key files `statehub keys init` made, and follows changes."""
    from tests.test_curve import started_remote_hub

    with started_remote_hub(tmp_path) as remote:
        command = [str(rust_bin), "--data-dir", str(tmp_path / "elsewhere"), *remote.options()]
        env = remote.env()
        result = subprocess.run([*command, "set", "rs.remote", "7"], capture_output=True, text=True, timeout=30, env=env)
        assert result.returncode == 0, result.stderr
        got = subprocess.run([*command, "get", "rs.remote"], capture_output=True, text=True, timeout=30, env=env)
        assert got.stdout.strip() == "7", got.stderr
        watch = subprocess.Popen(
            [*command, "watch", "rs.", "--initial", "--json", "--count", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert watch.stdout is not None
        assert next_change(watch.stdout)["value"] == 7  # --initial: it is live
        with remote.hub.client() as client:
            client.set("rs.remote", 8)
        out, err = watch.communicate(timeout=30)
        assert changes_of(out)[-1]["value"] == 8, err
        wrong = [*command[:3], "--hub", remote.rpc, "--server-key", remote.client_public, "--timeout", "30", "get", "rs.remote"]
        refused = subprocess.run(wrong, capture_output=True, text=True, timeout=30, env=env)
        assert refused.returncode == 5
        assert "the server key given is most likely not this hub's" in refused.stderr  # at once, not after 30 s



def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Writer(threading.Thread):
    """Sets r.k0..r.k4 ``count`` times, one revision each, carrying on through a hub restart."""

    def __init__(self, data_dir: Path, count: int) -> None:
        super().__init__(daemon=True)
        self.data_dir, self.count, self.done = data_dir, count, 0
        self.failure = ""

    def run(self) -> None:
        from statehub.hub.errors import HubUnavailable, OutcomeUnknown

        deadline = time.monotonic() + 120
        with Client(self.data_dir, timeout=2.0, fallback=False) as client:
            while self.done < self.count and time.monotonic() < deadline:
                try:
                    client.set(f"r.k{self.done % 5}", self.done)
                except (HubUnavailable, OutcomeUnknown):
                    continue  # the hub is down: the next attempt waits for it (a retried value is one more revision)
                self.done += 1
        if self.done < self.count:
            self.failure = f"wrote only {self.done} of {self.count}"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds react's commands through /proc")
def test_react_with_state_runs_every_revision_in_order_across_kills_of_itself_and_the_hub(
    rust_bin: Path, hub: HubProcess, tmp_path: Path
) -> None:
    """SIGKILL react twice and the hub once while changes keep coming: with --state, the command ran for every
    revision, in order; a revision ran twice only when it was in flight at a kill of react."""
    log, state = tmp_path / "actions.log", tmp_path / "react.state"
    command = [
        str(rust_bin), "--data-dir", str(hub.data_dir), "react", "r.", "--state", str(state),
        "--exec", f'echo "$STATEHUB_EPOCH:$STATEHUB_REV:$STATEHUB_ORIGIN" >> {log}',
    ]  # fmt: skip

    def start() -> subprocess.Popen[str]:
        react = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert react.stderr is not None
        said = ""
        for _ in range(5):  # on a busy machine a notice that the welcome is late may come first
            said += react.stderr.readline()
            if "following from revision" in said:
                return react
        react.kill()
        _, rest = react.communicate(timeout=10)
        raise AssertionError(said + rest)

    def kill(react: subprocess.Popen[str]) -> None:
        commands = children_of(react.pid)
        react.kill()
        react.communicate(timeout=10)
        assert wait_until(lambda: not any(is_running(pid) for pid in commands), 10)  # the one in flight finished

    def ran() -> list[tuple[str, int, str]]:
        if not log.exists():
            return []
        lines = [line.split(":") for line in log.read_text().splitlines() if line]
        return [(epoch, int(rev), origin) for epoch, rev, origin in lines]

    react = start()
    writer = Writer(hub.data_dir, 300)
    writer.start()
    try:
        assert wait_until(lambda: len(ran()) >= 50, 30)
        kill(react)
        react = start()
        assert wait_until(lambda: writer.done >= 150, 30)
        hub.kill()
        hub.start()
        assert wait_until(lambda: len(ran()) >= 200, 60)
        kill(react)
        react = start()
        writer.join(120)
        assert not writer.failure
        with hub.client() as client:
            final = client.status().rev
        assert wait_until(lambda: any(rev == final for _, rev, _ in ran()), 60), ran()[-3:]
    finally:
        react.terminate()
        _, err = react.communicate(timeout=10)
    revs = [rev for _, rev, _ in ran()]
    assert revs == sorted(revs), err  # in order, across every kill
    assert sorted(set(revs)) == list(range(1, final + 1))  # every revision (the writer wrote only r.*)
    repeated = [rev for rev, count in Counter(revs).items() if count > 1]
    assert len(repeated) <= 2 and all(Counter(revs)[rev] == 2 for rev in repeated)  # at most the two in flight
    assert {epoch for epoch, _, _ in ran()} == {json.loads(state.read_text())["epoch"]}
    assert {origin for _, _, origin in ran()} <= {"live", "replay"} and "replay" in {o for _, _, o in ran()}
    assert json.loads(state.read_text())["rev"] == final


def test_rust_watch_since_replays_after_a_revision_then_follows(rust_bin: Path, hub: HubProcess) -> None:
    """`statehub-rs watch --since EPOCH:REV` prints each change after REV from history, then live ones."""
    with hub.client() as client:
        epoch = client.set("ws.a", 1).epoch
        for value in range(2, 5):
            client.set("ws.a", value)
    watch = subprocess.Popen(
        [str(rust_bin), "--data-dir", str(hub.data_dir), "watch", "ws.", "--since", f"{epoch}:2", "--count", "3", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    try:
        notices = [json.loads(watch.stdout.readline()) for _ in range(4)]  # synced, 2 replayed, caught_up
        assert notices[-1] == {
            "event": "caught_up",
            "rev": 4,
            "epoch": epoch,
            "replayed": 2,
            "reason": "resumed after revision 2",
            "cause": "resume",
        }
        with hub.client() as client:
            client.set("ws.b", "live")
        out, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
        watch.wait(timeout=10)
    changes = [line for line in notices if is_change(line)] + changes_of(out)
    assert [(c["rev"], c["value"], c["origin"], c["epoch"]) for c in changes] == [
        (3, 3, "replay", epoch),
        (4, 4, "replay", epoch),
        (5, "live", "live", epoch),
    ], err


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="SIGSTOP and SIGCONT are POSIX")
def test_a_paused_rust_watch_reads_what_is_queued_before_calling_the_hub_down(rust_bin: Path, hub: HubProcess) -> None:
    """statehub-rs watch stopped past the silence window, then resumed, reports no outage and prints every change."""
    from tests.test_feed_replay import wait_heartbeats

    watch = start_watch(rust_bin, hub, "pz.")
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in watch.stdout or []), daemon=True)
    reader.start()
    try:
        with hub.client() as client:
            for cycle in range(6):
                os.kill(watch.pid, signal.SIGSTOP)
                for n in range(10):
                    client.set(f"pz.k{n % 3}", cycle * 10 + n)
                wait_heartbeats(hub, 6)
                os.kill(watch.pid, signal.SIGCONT)
        assert wait_until(lambda: any(c.get("value") == 59 for c in list(lines)), 15)
    finally:
        os.kill(watch.pid, signal.SIGCONT)
        watch.terminate()
        watch.wait(10)
        reader.join(10)
        assert watch.stderr is not None and watch.stdout is not None
        err = watch.stderr.read()
        watch.stderr.close()
        watch.stdout.close()
    assert "hub unavailable" not in err, err
    assert not [line for line in lines if line["event"] == "hub_down"], lines
    assert [c["value"] for c in lines if is_change(c)] == list(range(60)), err


@linux_only
def test_rust_waits_its_timeout_for_a_stopped_hub_and_sets_when_it_resumes(rust_bin: Path, data_dir: Path) -> None:
    """`statehub-rs --timeout 30 set` against a frozen hub (fresh connection) exits 0 once the hub resumes."""
    with HubProcess(data_dir, args=["--tcp"]) as hub:
        port = rpc_port(hub.data_dir)
        with stopped(hub):
            command = [str(rust_bin), "--data-dir", str(hub.data_dir), "--timeout", "30", "set", "rs.rate", "7"]
            setter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert wait_until(lambda: tcp_queues(port)[0] >= 1 or setter.poll() is not None, timeout=30)
            assert setter.poll() is None, f"gave up on a hub that runs: {setter.communicate()}"
        out, err = setter.communicate(timeout=40)
        assert setter.returncode == 0, err
        with hub.client() as client:
            assert client.get("rs.rate").value == 7


def test_rust_says_a_delivered_unanswered_write_is_unknown_and_exits_7(rust_bin: Path, tmp_path: Path) -> None:
    """A write the hub took and never answered: exit 7 and "may or may not have been applied"."""
    with silent_hub(tmp_path) as (router, endpoint):
        result = rs(rust_bin, tmp_path, "--timeout", "1", "set", "rs.rate", "8")
        assert receive(router)  # it was delivered
    assert result.returncode == 7
    assert result.stderr.startswith(
        f"statehub-rs: error: the hub (pid {os.getpid()}) at {endpoint} received the write but did not answer "
        "within 1 s; the write may or may not have been applied; repeating the same command is safe"
    )


def test_rust_says_not_running_from_a_dead_pid(rust_bin: Path, hub: HubProcess) -> None:
    """After SIGKILL, statehub-rs says the hub is not running, naming the dead pid, and exits 5."""
    pid = hub.pid
    hub.kill()
    result = rs(rust_bin, hub.data_dir, "--timeout", "30", "set", "rs.rate", "9")
    assert result.returncode == 5
    assert result.stderr == (
        f"statehub-rs: error: hub unavailable: the hub is not running ({hub.data_dir / 'hub.json'} names pid {pid}, "
        "which has exited); start it with `statehub serve`\n"
    )


def test_rust_get_and_list_at_a_revision_answer_as_the_python_cli_does(rust_bin: Path, hub: HubProcess) -> None:
    """`statehub-rs get KEY --rev R` and `list PREFIX --rev R --json` read the state right after R; a key absent then exits 3."""
    with hub.client() as client:
        client.set("h.a", 1)
        client.set("h.a", 2)
        client.set("h.b", 3)
    assert rs(rust_bin, hub.data_dir, "get", "h.a", "--rev", "1").stdout.strip() == "1"
    listed = json.loads(rs(rust_bin, hub.data_dir, "list", "h.", "--rev", "2", "--json").stdout)
    assert listed["rev"] == 2 and [(i["key"], i["value"]) for i in listed["items"]] == [("h.a", 2)]
    missing = rs(rust_bin, hub.data_dir, "get", "h.b", "--rev", "2")
    assert missing.returncode == 3 and "no key 'h.b' at revision 2" in missing.stderr


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        (["--timeout", "1"], [], "1 s"),
        ([], ["--timeout", "1"], "1 s"),
        ([], ["--timeout=1.5"], "1.5 s"),
        (["--timeout", "5"], ["--timeout", "1"], "1 s"),  # given twice: the last counts, as in the Python CLI
    ],
)
def test_rust_takes_the_hub_timeout_before_or_after_the_command(
    rust_bin: Path, tmp_path: Path, before: list[str], after: list[str], said: str
) -> None:
    """`statehub-rs set k v --timeout 1` waits 1 s for the hub, as `statehub-rs --timeout 1 set k v` does."""
    with silent_hub(tmp_path):
        result = subprocess.run(
            [str(rust_bin), "--data-dir", str(tmp_path), *before, "set", "rs.rate", "8", *after],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 7, result.stderr
    assert f"did not answer within {said};" in result.stderr


@pytest.mark.parametrize("option", ["--exec-timeout", "--timeout"])
def test_react_kills_a_command_after_its_exec_timeout(
    rust_bin: Path, hub: HubProcess, option: str
) -> None:
    """`react --exec-timeout S` kills a command that runs longer (`--timeout` after `react` is its old name),
    while `--timeout` before `react` is the hub's, as for every command."""
    with hub.client() as client:
        client.set("rk.a", 1)
    react = subprocess.Popen(
        [str(rust_bin), "--data-dir", str(hub.data_dir), "--timeout", "5", "react", "rk.", "--initial"]
        + ["--exec", "sleep 30", option, "0.3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert react.stderr is not None
    try:
        lines = [react.stderr.readline() for _ in range(2)]  # following from ..., then the kill
    finally:
        react.terminate()
        react.communicate(timeout=15)
    assert "command for set rk.a at revision 1 killed after 0.3 s" in lines[1], lines
