"""Renaming escaped EDS keys to readable ones (`statehub eds migrate-keys`), and reading a point's trend back."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from statehub.eds import legacy_keys
from statehub.eds.migrate import plan_migration
from statehub.eds.plants import Plants
from statehub.hub.protocol import Item
from statehub.testing import HubProcess

from .conftest import run_cli
from .eds_support import SHIPPED_PLANTS, run_ingest, wide_csv, write

OLD_STILES = "eds.Stiles.FI-2D405-2F415-2EUNIT1-40NET1"
OLD_INFLUENT = "eds.Maxson.M100FI-2EUNIT0-40NET0"


def reading(point: str, when: str, value: float) -> dict[str, Any]:
    """A record as the escaped-key versions of ingest-eds stored it."""
    return {"value": value, "quality": None, "units": "MGD", "time": when, "point": point, "file": "x.csv", "line": 3}


def item(key: str, value: Any, rev: int = 1) -> Item:
    return Item(key=key, value=value, rev=rev, created_rev=rev, time=0.0)


def test_escaped_keys_map_to_the_keys_an_ingest_makes_now() -> None:
    """The old key's plant and the record's point give the readable key; other keys are left alone."""
    items = [
        item(OLD_STILES, reading("FI-405/415.UNIT1@NET1", "2025-11-02T06:00:00Z", 12.5)),
        item(OLD_INFLUENT, reading("M100FI.UNIT0@NET0", "2025-11-02T06:00:00Z", 51.0)),
        item("eds.Maxson.2308", reading("2308", "2025-11-02T06:00:00Z", 51.0)),
        item("eds.maxson.M310LI", reading("M310LI.UNIT0@NET0", "2025-11-02T06:00:00Z", 3.0)),  # readable already
        item("eds.timezone", "America/Chicago"),
        item("eds.Maxson.note", "hand-written"),
    ]
    migration = plan_migration(items, Plants(by_suffix=SHIPPED_PLANTS))
    assert [(r.olds[0].key, r.new) for r in migration.renames] == [
        ("eds.Maxson.2308", "eds.maxson.2308"),
        (OLD_INFLUENT, "eds.maxson.M100FI"),
        (OLD_STILES, "eds.stiles.FI-405/415"),
    ]
    assert migration.skipped == [("eds.Maxson.note", "it holds no EDS reading record (no point field)")]
    assert len(migration.txns) == 1


def test_a_point_filed_under_another_plant_keeps_its_suffix() -> None:
    """A Stiles point that an old ingest filed under --plant Maxson stays under maxson, with its suffix."""
    old = legacy_keys.point_key("Maxson", "FI-405/415.UNIT1@NET1")
    migration = plan_migration([item(old, reading("FI-405/415.UNIT1@NET1", "2025-01-01T00:00:00Z", 1.0))], Plants(by_suffix=SHIPPED_PLANTS))
    assert [r.new for r in migration.renames] == ["eds.maxson.FI-405/415=UNIT1-NET1"]


def test_renames_are_packed_whole_into_txns_of_at_most_1000_ops() -> None:
    """600 renames (1200 ops) need two txns; no rename is split between them."""
    items = [
        item(legacy_keys.point_key("Maxson", f"P{n}.UNIT0@NET0"), reading(f"P{n}.UNIT0@NET0", "2025-01-01T00:00:00Z", n), rev=n + 1)
        for n in range(600)
    ]
    txns = plan_migration(items, Plants(by_suffix=SHIPPED_PLANTS)).txns
    assert [len(ops) for ops in txns] == [1000, 200]
    for ops in txns:
        unsets = {op.key for op in ops if op.op == "unset"}
        assert len(unsets) * 2 == len(ops)


def test_migrate_keys_renames_in_one_txn_keeps_history_and_is_idempotent(hub: HubProcess, tmp_path: Path) -> None:
    """The escaped keys become readable in one revision; history stays under the old key, the trend follows it,
    a second run changes nothing, and an ingest afterwards continues under the readable key."""
    with hub.client() as client:
        for hour, value in enumerate([12.5, 12.75, 13.0]):
            client.set(OLD_STILES, reading("FI-405/415.UNIT1@NET1", f"2025-11-02T0{5 + hour}:00:00Z", value))
        client.set(OLD_INFLUENT, reading("M100FI.UNIT0@NET0", "2025-11-02T07:00:00Z", 51.0))
        before = client.status().rev
    dry = run_cli(hub.data_dir, "eds", "migrate-keys", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 keys would be renamed (--dry-run: nothing was changed)" in dry.stdout
    done = run_cli(hub.data_dir, "eds", "migrate-keys", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [r["new"] for r in result["renames"]] == ["eds.maxson.M100FI", "eds.stiles.FI-405/415"]
    assert result["revs"] == [before + 1]
    with hub.client() as client:
        keys = [i.key for i in client.list("eds.").items]
        assert keys == ["eds.maxson.M100FI", "eds.stiles.FI-405/415"]
        assert client.get("eds.stiles.FI-405/415").value["renamed_from"] == OLD_STILES
        assert [v.value["value"] for v in client.history(OLD_STILES) if v.op == "set"] == [13.0, 12.75, 12.5]
    trend = json.loads(run_cli(hub.data_dir, "eds", "trend", "eds.stiles.FI-405/415", "--json").stdout)
    assert [(row["value"], row["key"]) for row in trend] == [(12.5, OLD_STILES), (12.75, OLD_STILES), (13.0, OLD_STILES)]
    again = run_cli(hub.data_dir, "eds", "migrate-keys")
    assert again.stdout.strip() == "no escaped EDS keys: nothing to rename"
    export = write(tmp_path / "w.csv", wide_csv(["FI-405/415.UNIT1@NET1"], [(datetime(2025, 11, 2, 2), ["14"])]))
    assert run_ingest(hub.data_dir, str(export), "--replay").returncode == 0
    trend = json.loads(run_cli(hub.data_dir, "eds", "trend", "eds.stiles.FI-405/415", "--json").stdout)
    assert [row["value"] for row in trend] == [12.5, 12.75, 13.0, 14.0]
    assert [row["backfill"] for row in trend] == [False, False, False, True]


def test_the_newer_reading_stays_when_the_readable_key_exists_already(hub: HubProcess) -> None:
    """If an ingest wrote the readable key before the migration, the newer of the two readings is kept."""
    with hub.client() as client:
        client.set(OLD_INFLUENT, reading("M100FI.UNIT0@NET0", "2025-11-02T07:00:00Z", 51.0))
        client.set("eds.maxson.M100FI", reading("M100FI.UNIT0@NET0", "2025-11-03T07:00:00Z", 60.0))
    done = run_cli(hub.data_dir, "eds", "migrate-keys")
    assert done.returncode == 0, done.stderr
    assert "(which holds a newer reading already: kept)" in done.stdout
    with hub.client() as client:
        assert [(i.key, i.value["value"]) for i in client.list("eds.").items] == [("eds.maxson.M100FI", 60.0)]
