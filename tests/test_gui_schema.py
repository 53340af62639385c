"""The GUI's use of the schema, as plain functions: widgets per type, typed input, expiry (no display)."""

from __future__ import annotations

import pytest

from statehub import InvalidRequest, Item, Schema, Synced, Update, load_schema
from statehub.gui import model, typed
from statehub.hub.protocol import Changed
from statehub.testing import HubProcess

from .schema_support import SMALL, plant_schema
from .test_hub import collect


def item(key: str, value: object, time: float = 1000.0, rev: int = 1) -> Item:
    return Item(key=key, value=value, rev=rev, created_rev=rev, time=time)


def plant() -> Schema:
    return load_schema({"statehub.schema": plant_schema()})


def test_each_type_gets_its_widget() -> None:
    """A boolean edits with a checkbox, an enum with a drop-down of its values, a bounded integer with a spin box."""
    schema = plant()
    assert typed.widget_for(schema, "plant.dosing.enabled").kind == "checkbox"
    mode = typed.widget_for(schema, "plant.mode")
    assert (mode.kind, mode.choices) == ("choice", ("auto", "manual", "maintenance"))
    rate = typed.widget_for(schema, "plant.north.rate")
    assert (rate.kind, rate.low, rate.high) == ("spin", 0, 500)
    assert rate.hint == "integer 0..500, m3/h: Flow setpoint of one train."
    assert typed.widget_for(schema, "plant.version").kind == "text"
    assert typed.widget_for(Schema(), "plant.mode").kind == "text"


def test_a_checkbox_reads_back_as_the_boolean_text_typed_input_reads() -> None:
    """The checkbox's state becomes "true"/"false", which the boolean rule reads as true/false."""
    schema = plant()
    widget = typed.widget_for(schema, "plant.dosing.enabled")
    assert typed.initial_value(widget, "true") is True
    text = typed.widget_text(widget, False)
    assert model.parse_edit(text, schema=schema, key="plant.dosing.enabled") is False


def test_the_edit_dialog_reads_text_by_the_keys_type() -> None:
    """1.10 stays a string for a string key; 30 is 30 for an integer key; "fast" is refused in the hub's words."""
    schema = plant()
    assert model.parse_edit("1.10", schema=schema, key="plant.version") == "1.10"
    assert model.parse_edit("1.10") == 1.1  # no schema: JSON where it parses, as before
    assert model.change_write(item("plant.north.rate", 1), "30", schema=schema).value == 30
    with pytest.raises(InvalidRequest, match=r"expected integer 0\.\.500 \(schema: plant\.\*\.rate\), got \"fast\""):
        model.change_write(item("plant.north.rate", 1), "fast", schema=schema)
    assert model.type_preview("30", schema=schema, key="plant.north.rate") == "stored as 30 (schema: plant.*.rate)"


def test_the_view_follows_the_schema_keys_it_receives() -> None:
    """A schema key arriving in an update recompiles the window's schema; a bad text keeps the last good one."""
    view = model.View()
    change = Changed(epoch="e", rev=1, index=0, count=1, key="statehub.schema", op="set", time=1.0, value=SMALL)
    model.on_update(view, 1, [change], now=1.0)
    assert view.schema.rule_for("plant.x.rate") is not None
    broken = Changed(epoch="e", rev=2, index=0, count=1, key="statehub.schema", op="set", time=2.0, value="[")
    model.on_update(view, 2, [broken], now=2.0)
    assert view.schema.rule_for("plant.x.rate") is not None


def test_a_key_with_a_ttl_says_when_it_expires_and_is_highlighted_near_the_end() -> None:
    """The changed cell counts down the schema's ttl; the last quarter is highlighted; past it, 'expiring'."""
    schema = load_schema({"statehub.schema": SMALL})  # service.*.heartbeat: ttl 1.5 s
    view = model.View(items={"service.a.heartbeat": item("service.a.heartbeat", 1.0, time=1000.0)}, schema=schema)
    assert typed.expiry_text(schema, view.items["service.a.heartbeat"], 1000.2) == "expires in 1 s"
    assert typed.expiry_text(schema, view.items["service.a.heartbeat"], 1002.0) == "expiring"
    [row] = model.visible_rows(view, now=1000.2)
    assert row.changed.endswith(", expires in 1 s")
    assert model.highlighted([row], view, now=1000.2) == []
    assert model.highlighted([row], view, now=1001.3) == [0]


def test_a_key_set_with_its_own_ttl_counts_down_without_a_schema_rule(hub: HubProcess) -> None:
    """set --ttl 30 on a key no rule knows: the row counts down from the item's own ttl, live and after a resync."""
    with hub.client() as client, client.subscribe("svc.") as subscription:
        synced = subscription.next_event(5)
        assert isinstance(synced, Synced)
        view = model.View()
        model.on_synced(view, synced.items, synced.rev, synced.epoch, synced.reason, True, [], now=0.0)
        client.set("svc.pumpd.alive", True, ttl=30)
        events = collect(subscription, lambda evs: any(isinstance(e, Update) for e in evs))
        snapshot = client.snapshot("svc.")
    [update] = [e for e in events if isinstance(e, Update)]
    model.on_update(view, update.rev, update.changes, now=0.0)
    written = view.items["svc.pumpd.alive"].time
    assert view.schema.ttl_of("svc.pumpd.alive") is None  # no rule: the ttl is the write's own
    [row] = model.visible_rows(view, now=written + 10.2)
    assert row.changed.endswith(", expires in 20 s")
    assert model.highlighted([row], view, now=written + 10.2) == []
    assert model.highlighted([row], view, now=written + 23.0) == [0]  # its last quarter
    resynced = model.View()
    items = {item.key: item for item in snapshot.items}
    model.on_synced(resynced, items, snapshot.rev, "e", "test", True, [], now=0.0)
    [row] = model.visible_rows(resynced, now=written + 31.0)
    assert row.changed.endswith(", expiring")


def test_an_items_own_ttl_comes_before_the_schemas() -> None:
    """An item carrying a ttl counts down from it; one without (the mirror, an older hub) from its rule's."""
    schema = load_schema({"statehub.schema": SMALL})  # service.*.heartbeat: ttl 1.5 s
    own = Item(key="service.a.heartbeat", value=1, rev=1, created_rev=1, time=1000.0, ttl=60.0)
    assert typed.expiry_text(schema, own, 1010.0) == "expires in 50 s"
    assert typed.expiry_text(schema, item("service.a.heartbeat", 1), 1000.2) == "expires in 1 s"
    assert typed.expiry_text(Schema(), item("svc.plain", 1), 1000.2) == ""


def test_an_expiry_by_the_hub_is_announced() -> None:
    """An unset with source ttl puts a notice in the window naming the key."""
    view = model.View(items={"svc.a": item("svc.a", 1)})
    gone = Changed(epoch="e", rev=2, index=0, count=1, key="svc.a", op="unset", time=5.0, source="ttl")
    model.on_update(view, 2, [gone], now=5.0)
    assert model.notice_text(view, 5.0) == "svc.a expired: not written within its ttl, so the hub removed it"
