"""The Rust client against a real hub, driven through its binary, next to the Python client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from statehub.hub.mirror import read_mirror
from statehub.hub.paths import Layout
from statehub.hub.protocol import Op
from statehub.testing import HubProcess, wait_until
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
    """`statehub-rs watch PREFIX --initial`, returned once it has printed a marker key (so it is live)."""
    with hub.client() as client:
        client.set(f"{prefix}marker", 1)
    watch = subprocess.Popen(
        [str(rust_bin), "--data-dir", str(hub.data_dir), "watch", prefix, "--initial", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    first = json.loads(watch.stdout.readline())
    assert first["key"] == f"{prefix}marker"
    return watch


def test_python_writes_reach_rust_watch_in_order(rust_bin: Path, hub: HubProcess) -> None:
    watch = start_watch(rust_bin, hub, "py.", "--count", "32")  # --count includes the --initial marker
    with hub.client() as client:
        for i in range(30):
            client.set(f"py.k{i % 4}", i)
        client.set("py.done", True)
    out, err = watch.communicate(timeout=30)
    changes = [json.loads(line) for line in out.splitlines()]
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
    changes = [json.loads(line) for line in out.splitlines() if "marker" not in line]
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
    changes = [json.loads(line) for line in out.splitlines() if "marker" not in line]
    assert [(c["key"], c["value"]) for c in changes] == [("lv.table", big), ("lv.password", "<secret>")], err
    assert "rust-should-never-see-this" not in out + err
    listed = rs(rust_bin, hub.data_dir, "get", "lv.password")
    assert listed.returncode == 0 and listed.stdout.strip() == "<secret>"


def test_with_the_hub_killed_rust_get_answers_from_the_mirror(rust_bin: Path, hub: HubProcess) -> None:
    with hub.client() as client:
        for i in range(5):
            client.set("m.rate", i)
    assert wait_until(lambda: read_mirror(Layout(hub.data_dir).mirror).rev == 5)
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
    """Every change made while react is connected reaches the command in order; across a restart,
    the keys that changed before it reconnected are delivered with their current value."""
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
        assert "resync" in react.stderr.readline()  # back, and resynced by itself
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
    assert any(c["key"] == "r.during" and c["resync"] for c in seen())
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
            [*command, "watch", "rs.", "--initial", "--count", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert watch.stdout is not None
        assert json.loads(watch.stdout.readline())["value"] == 7  # --initial: it is live
        with remote.hub.client() as client:
            client.set("rs.remote", 8)
        out, err = watch.communicate(timeout=30)
        assert json.loads(out.splitlines()[-1])["value"] == 8, err
        wrong = [*command[:3], "--hub", remote.rpc, "--server-key", remote.client_public, "--timeout", "30", "get", "rs.remote"]
        refused = subprocess.run(wrong, capture_output=True, text=True, timeout=30, env=env)
        assert refused.returncode == 5
        assert "the server key given is most likely not this hub's" in refused.stderr  # at once, not after 30 s


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
