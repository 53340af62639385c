"""Snapshots, rollback, export/import, the offline queue and restore, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statehub.hub.mirror import read_mirror
from statehub.hub.paths import Layout
from statehub.subscription import Subscription, Synced, Update
from statehub.testing import HubProcess

from .conftest import run_cli
from .test_hub import collect


def values(hub: HubProcess) -> dict[str, object]:
    return json.loads(run_cli(hub.data_dir, "export").stdout)["values"]


def test_snapshot_create_list_show_and_retention(hub: HubProcess) -> None:
    run_cli(hub.data_dir, "set", "a", "1")
    assert run_cli(hub.data_dir, "snapshot", "create", "--name", "keep-me").returncode == 0
    for _ in range(4):
        run_cli(hub.data_dir, "snapshot", "create", "--keep", "2")
    listed = json.loads(run_cli(hub.data_dir, "snapshot", "list", "--json").stdout)
    names = [row["name"] for row in listed]
    assert "keep-me" in names and len(names) == 3  # the named one and the newest two unnamed
    shown = json.loads(run_cli(hub.data_dir, "snapshot", "show", "keep-me").stdout)
    assert (shown["values"], shown["rev"], shown["name"]) == ({"a": 1}, 1, "keep-me")
    bad = run_cli(hub.data_dir, "snapshot", "create", "--name", "../x")
    assert bad.returncode == 2 and "invalid snapshot name" in bad.stderr


def test_rollback_is_one_published_txn_and_history_is_kept(hub: HubProcess) -> None:
    for key, value in (("r.a", "1"), ("r.b", "2")):
        run_cli(hub.data_dir, "set", key, value)
    run_cli(hub.data_dir, "snapshot", "create", "--name", "good")
    run_cli(hub.data_dir, "set", "r.a", "10")
    run_cli(hub.data_dir, "set", "r.c", "3")
    dry = run_cli(hub.data_dir, "rollback", "good", "--dry-run")
    assert "r.a: 10 -> 1" in dry.stdout and "r.c: 3 -> (unset)" in dry.stdout
    assert values(hub) == {"r.a": 10, "r.b": 2, "r.c": 3}
    with Subscription(hub.data_dir, timeout=2.0) as subscription:
        assert isinstance(subscription.next_event(5), Synced)
        result = run_cli(hub.data_dir, "rollback", "good")
        assert result.returncode == 0, result.stderr
        events = collect(subscription, lambda ev: any(isinstance(e, Update) for e in ev))
    update = next(e for e in events if isinstance(e, Update))
    assert {(c.key, c.op, c.source) for c in update.changes} == {("r.a", "set", "rollback"), ("r.c", "unset", "rollback")}
    assert values(hub) == {"r.a": 1, "r.b": 2}
    history = run_cli(hub.data_dir, "history", "r.a").stdout
    assert "10 -> 1" in history and "1 -> 10" in history


def test_rollback_to_a_past_revision(hub: HubProcess) -> None:
    for i in range(5):
        run_cli(hub.data_dir, "set", "t.n", str(i))
    run_cli(hub.data_dir, "set", "t.late", "x")
    assert run_cli(hub.data_dir, "rollback", "--to-rev", "2").returncode == 0
    assert values(hub) == {"t.n": 1}
    pruned = run_cli(hub.data_dir, "rollback", "--to-rev", "999")
    assert pruned.returncode == 2 and "does not exist" in pruned.stderr


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_export_then_import_into_another_hub_round_trips(hub: HubProcess, tmp_path: Path, fmt: str) -> None:
    run_cli(hub.data_dir, "set", "x.list", "[1, 2.5, \"s\"]")
    run_cli(hub.data_dir, "set", "x.map", '{"a": {"b": true}}')
    out = tmp_path / f"state.{fmt}"
    assert run_cli(hub.data_dir, "export", "--format", fmt, "-o", str(out)).returncode == 0
    with HubProcess(tmp_path / "other") as other:
        result = run_cli(other.data_dir, "import", str(out))
        assert result.returncode == 0, result.stderr
        assert values(other) == values(hub)
        assert "import" in run_cli(other.data_dir, "history", "x.map").stdout


def test_a_bad_import_names_the_line_and_applies_nothing(hub: HubProcess, tmp_path: Path) -> None:
    run_cli(hub.data_dir, "set", "keep", "1")
    broken = tmp_path / "broken.json"
    broken.write_text('{"values": {\n  "a": 1,\n  "b": 2,,\n}}\n')
    result = run_cli(hub.data_dir, "import", str(broken))
    assert result.returncode == 2 and "broken.json, line 3, column" in result.stderr
    bad_key = tmp_path / "bad.json"
    bad_key.write_text('{"values": {\n  "good.key": 1,\n  "bad..key": 2\n}}\n')
    result = run_cli(hub.data_dir, "import", str(bad_key))
    assert result.returncode == 2 and "bad.json, line 3: invalid key 'bad..key'" in result.stderr
    assert values(hub) == {"keep": 1}


def test_queued_writes_apply_when_the_hub_returns_and_stale_ones_are_rejected(hub: HubProcess) -> None:
    run_cli(hub.data_dir, "set", "q.a", "1")
    run_cli(hub.data_dir, "set", "q.b", "1")
    assert hub.terminate() == 0  # a clean stop writes the final mirror
    assert read_mirror(Layout(hub.data_dir).mirror).rev == 2
    first = run_cli(hub.data_dir, "set", "q.a", "2", "--queue")
    second = run_cli(hub.data_dir, "set", "q.a", "3", "--queue")  # saw the same revision: will conflict
    third = run_cli(hub.data_dir, "set", "q.new", "x", "--queue")
    assert first.returncode == second.returncode == third.returncode == 0
    assert "queued the change" in first.stderr
    listed = json.loads(run_cli(hub.data_dir, "queue", "--json").stdout)
    assert [row["keys"] for row in listed["pending"]] == [["q.a"], ["q.a"], ["q.new"]]
    hub.start()
    assert values(hub) == {"q.a": 2, "q.b": 1, "q.new": "x"}
    listed = json.loads(run_cli(hub.data_dir, "queue", "--json").stdout)
    assert listed["pending"] == []
    assert len(listed["rejected"]) == 1
    assert "conflict on 'q.a'" in listed["rejected"][0]["reason"]


def test_set_without_queue_says_how_to_queue(hub: HubProcess) -> None:
    hub.kill()
    result = run_cli(hub.data_dir, "set", "a", "1")
    assert result.returncode == 5 and "add --queue" in result.stderr


def test_a_damaged_store_is_refused_with_the_restore_command_and_restore_works(hub: HubProcess) -> None:
    with hub.client() as client:
        for i in range(3):
            client.set(f"d.k{i}", i)
        for i in range(2000):
            client.set(f"d.bulk{i}", "x" * 100)
    run_cli(hub.data_dir, "snapshot", "create", "--name", "last-good")
    assert hub.terminate() == 0
    store = Layout(hub.data_dir).store
    with open(store, "r+b") as handle:  # scribble over pages in the middle of the file
        handle.seek(store.stat().st_size // 2)
        handle.write(b"\xde\xad" * 8192)
    with pytest.raises(RuntimeError) as caught:
        hub.start(timeout=10)
    message = str(caught.value)
    assert "is damaged" in message
    assert f"statehub restore last-good --data-dir {hub.data_dir}" in message
    result = run_cli(hub.data_dir, "restore", "last-good", "--yes")
    assert result.returncode == 0, result.stderr
    assert "kept the old file as" in result.stdout
    hub.start()
    restored = values(hub)
    assert restored["d.k2"] == 2 and len(restored) == 2003
    with hub.client() as client:
        assert client.status().rev > 2003  # revisions continue above everything seen before
