"""Origin metadata: a change first made at another hub keeps its site, revision, time and writer."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import Op, SiteOrigin
from statehub.hub.store import Store
from statehub.hub.store_file import SCHEMA_VERSION
from statehub.testing import HubProcess
from tests.test_rust import rust_bin  # noqa: F401 - the fixture, shared with the Rust tests

NORTH = SiteOrigin(site="north", rev=41, time=1795000000.5, source="eds", user="ana")


def test_an_origin_is_kept_on_the_item_in_history_and_in_the_feed(hub: HubProcess) -> None:
    """A write with an origin shows it on get, history and the change feed; a plain write shows none."""
    with hub.client() as client:
        client.set("sites.north.rate", 30, origin=NORTH)
        client.set("plant.rate", 1)
        assert client.get("sites.north.rate").item.origin == NORTH
        assert client.get("plant.rate").item.origin is None
        assert [v.origin for v in client.history("sites.north.rate")] == [NORTH]
        page = client.changes(0)
    assert [change.origin for change in page.changes] == [NORTH, None]


def test_an_op_origin_wins_over_the_txn_origin(hub: HubProcess) -> None:
    """In one txn each op may carry its own origin (a site's resync), else the txn's."""
    other = SiteOrigin(site="north", rev=7, time=1.0, source="gui")
    with hub.client() as client:
        client.txn(
            [
                Op(op="set", key="sites.north.a", value=1, origin=other),
                Op(op="set", key="sites.north.b", value=2),
            ],
            origin=NORTH,
        )
        items = {item.key: item.origin for item in client.list("sites.north.").items}
    assert items == {"sites.north.a": other, "sites.north.b": NORTH}


def test_an_origin_without_a_site_is_refused(hub: HubProcess) -> None:
    """An origin must name its site and a revision of 1 or more."""
    with hub.client() as client, pytest.raises(InvalidRequest, match="name of the site"):
        client.set("sites.x.a", 1, origin=SiteOrigin(site="", rev=1, time=0.0))
    with hub.client() as client, pytest.raises(InvalidRequest, match="must be 1 or more"):
        client.set("sites.x.a", 1, origin=SiteOrigin(site="x", rev=0, time=0.0))


def test_the_history_command_says_which_site_a_change_came_from(hub: HubProcess, tmp_path: Path) -> None:
    """`statehub history` shows "from site X rev N" for a change made at another hub."""
    from typer.testing import CliRunner

    from statehub.cli.app import app

    with hub.client() as client:
        client.set("sites.north.rate", 30, origin=NORTH)
    result = CliRunner().invoke(app, ["--data-dir", str(hub.data_dir), "history", "sites.north.rate"])
    assert result.exit_code == 0, result.output
    assert "from site north rev 41 (eds/ana at" in result.output


def test_a_store_of_schema_1_gains_the_origin_columns(tmp_path: Path) -> None:
    """Opening a store made before origins migrates it: its keys stay, new writes keep their origin."""
    path = tmp_path / "store.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, rev INTEGER NOT NULL,"
        " created_rev INTEGER NOT NULL, time REAL NOT NULL, source TEXT NOT NULL, user TEXT NOT NULL) WITHOUT ROWID;"
        "INSERT INTO meta VALUES ('schema', 1), ('rev', 3), ('epoch', 'e1'), ('history_from', 1);"
        "INSERT INTO kv VALUES ('plant.rate', x'1e', 3, 1, 1.0, 'cli', 'ana');"
    )
    old.commit()
    old.close()
    store = Store(path)
    try:
        assert store.meta("schema") == SCHEMA_VERSION
        assert store.entry("plant.rate").origin is None
        from statehub.hub.protocol import PROTOCOL_VERSION, Set

        store.commit_one(Set(v=PROTOCOL_VERSION, key="sites.north.a", value=1, origin=NORTH))
        assert store.entry("sites.north.a").origin is not None
    finally:
        store.close()


def test_a_client_of_another_hub_keeps_working_without_origins(hub: HubProcess) -> None:
    """Items without an origin encode without the field, so older peers see nothing new."""
    import msgspec

    with hub.client() as client:
        client.set("plant.rate", 1)
        item = client.get("plant.rate").item
    assert "origin" not in msgspec.to_builtins(item)


@pytest.mark.parametrize("cli", ["statehub", "statehub-rs"])
def test_both_clis_print_a_site_origin_in_their_json(
    hub: HubProcess, cli: str, request: pytest.FixtureRequest
) -> None:
    """`get --json` and `history --json` of a key from another site carry its origin as an object, alike in both CLIs."""
    with hub.client() as client:
        client.set("sites.north.rate", 30, origin=NORTH)
    if cli == "statehub":
        command = [sys.executable, "-m", "statehub.cli", "--data-dir", str(hub.data_dir)]
    else:
        command = [str(request.getfixturevalue("rust_bin")), "--data-dir", str(hub.data_dir)]
    expected = {"site": "north", "rev": 41, "time": 1795000000.5, "source": "eds", "user": "ana"}
    for args, pick in (
        (["get", "sites.north.rate", "--json"], lambda out: out),
        (["history", "sites.north.rate", "--json"], lambda out: out[0]),
    ):
        result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert pick(json.loads(result.stdout))["origin"] == expected


def test_a_replica_keeps_the_site_origin_of_the_changes_it_applies(hub: HubProcess) -> None:
    """A subscription's replica, built with apply_change, keeps a change's site origin as the hub's item does."""
    from statehub import Item, Update, apply_change, item_as_change

    with hub.client() as client, client.subscribe("sites.") as subscription:
        assert subscription.next_event(timeout=10) is not None  # the first sync: the subscription is live
        client.set("sites.north.rate", 30, origin=NORTH)
        client.set("sites.local", 1)
        updates: list[Update] = []
        for _ in range(50):  # bounded: two updates arrive well within 50 events or timeouts
            event = subscription.next_event(timeout=0.2)
            if isinstance(event, Update):
                updates.append(event)
            if len(updates) == 2:
                break
        replica = subscription.items
        stored = client.get("sites.north.rate").item
    assert [update.changes[0].origin for update in updates] == [NORTH, None]
    assert replica["sites.north.rate"].origin == NORTH == stored.origin
    assert replica["sites.local"].origin is None
    items: dict[str, Item] = {}
    for update in updates:
        for change in update.changes:
            apply_change(items, change)
    assert items["sites.north.rate"] == replica["sites.north.rate"]
    assert item_as_change(replica["sites.north.rate"], "e").origin == NORTH
