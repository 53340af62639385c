"""Liveness: keys with a ttl are removed by the hub, once, as a published unset with source 'ttl'."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import msgspec
import pytest

from statehub import Changed, InvalidRequest, NotFound, Op, Synced, Update
from statehub.hub.liveness import Liveness
from statehub.hub.protocol import Set
from statehub.hub.records import Applied, Change
from statehub.testing import HubProcess, wait_until

from .schema_support import SMALL
from .test_hub import collect


def is_gone(client: object, key: str) -> bool:
    try:
        client.get(key)  # type: ignore[attr-defined]
    except NotFound:
        return True
    return False


def unsets_of(events: list[object], key: str) -> list[object]:
    return [c for e in events if isinstance(e, Update) for c in e.changes if c.key == key and c.op == "unset"]


def test_a_key_written_with_a_ttl_expires_once_as_a_published_unset_by_ttl(hub: HubProcess) -> None:
    """A set with ttl is unset by the hub when not written again: one change, source 'ttl', seen by subscribers."""
    with hub.client() as client, client.subscribe("svc.") as subscription:
        client.set("svc.pumpd.alive", True, ttl=0.5)
        events = collect(subscription, lambda evs: len(unsets_of(evs, "svc.pumpd.alive")) >= 1)
        client.set("svc.other", 1)  # a later revision: an extra expiry would have come before it
        events += collect(subscription, lambda evs: any(isinstance(e, Update) and e.changes[0].key == "svc.other" for e in evs))
        history = client.history("svc.pumpd.alive")
    [unset] = unsets_of(events, "svc.pumpd.alive")
    assert unset.source == "ttl"
    assert [(v.op, v.source) for v in history] == [("unset", "ttl"), ("set", client.source)]


def test_a_schema_ttl_expires_keys_its_rule_matches(hub: HubProcess) -> None:
    """A key matched by a rule with ttl expires with no ttl on its write."""
    with hub.client() as client:
        client.set("statehub.schema", SMALL)
        client.set("service.pumpd.heartbeat", time.time())
        assert wait_until(lambda: is_gone(client, "service.pumpd.heartbeat"), timeout=20)
        assert client.history("service.pumpd.heartbeat")[0].source == "ttl"


def test_writing_a_key_again_keeps_it_alive(hub: HubProcess) -> None:
    """Each write restarts the ttl: a key rewritten within its ttl outlives several ttls."""
    with hub.client() as client:
        client.set("svc.a", 0, ttl=1.0)
        started = time.monotonic()
        for beat in range(1, 40):
            client.set("svc.a", beat, ttl=1.0)
            assert client.get("svc.a").value == beat
            if time.monotonic() - started > 3.0:
                break
            time.sleep(0.1)
        assert time.monotonic() - started > 3.0  # three ttls went by while it was kept alive
        assert [v.source for v in client.history("svc.a")].count("ttl") == 0


def test_keepalive_keeps_keys_alive_until_stopped(hub: HubProcess) -> None:
    """Client.keepalive writes the keys from a thread; once stopped, they expire by themselves."""
    with hub.client(source="pumpd") as client:
        with client.keepalive("service.pumpd.heartbeat", 0.2, ttl=1.0, value=lambda key: time.time()) as beat:
            assert wait_until(lambda: beat.beats >= 8, timeout=20)  # 8 beats: 1.6 s, longer than the ttl
            assert client.get("service.pumpd.heartbeat").item.source == "pumpd"
        assert not beat.is_running
        assert wait_until(lambda: is_gone(client, "service.pumpd.heartbeat"), timeout=20)


def test_keepalive_of_a_prefix_rewrites_only_this_sources_keys(hub: HubProcess) -> None:
    """A prefix keepalive rewrites the keys this source wrote last, with their own values, and no other's."""
    with hub.client(source="pumpd") as mine, hub.client(source="other") as theirs:
        mine.set("svc.pumpd.state", "running", ttl=1.0)
        theirs.set("svc.pumpd.note", "hello")
        with mine.keepalive("svc.pumpd.", 0.2, ttl=1.0) as beat:
            assert wait_until(lambda: beat.beats >= 8, timeout=20)
            assert mine.get("svc.pumpd.state").value == "running"
            assert mine.get("svc.pumpd.note").item.rev == 2  # not rewritten
        assert wait_until(lambda: is_gone(mine, "svc.pumpd.state"), timeout=20)
        assert mine.get("svc.pumpd.note").value == "hello"


def test_a_restart_neither_expires_at_once_nor_resurrects(tmp_path: Path) -> None:
    """After a SIGKILL and restart, a key with a ttl still lives (a whole ttl from the start), then expires."""
    data_dir = tmp_path / "data"
    with HubProcess(data_dir) as hub, hub.client() as client:
        client.set("svc.gone", 1, ttl=0.3)
        assert wait_until(lambda: is_gone(client, "svc.gone"), timeout=20)
        client.set("svc.alive", 1, ttl=4.0)
        hub.kill()
    with HubProcess(data_dir) as hub, hub.client() as client:
        assert client.get("svc.alive").value == 1  # not expired at once by the restart
        assert is_gone(client, "svc.gone")  # nor brought back
        assert wait_until(lambda: is_gone(client, "svc.alive"), timeout=20)
        assert client.history("svc.alive")[0].source == "ttl"


LONG_TTL_SCHEMA = """\
[schema]
format = 1

[keys."svc.*.beat"]
type = "number"
ttl = 600
"""


def changes_of(events: list[object], key: str) -> list[Changed]:
    return [c for e in events if isinstance(e, Update) for c in e.changes if c.key == key]


def test_a_writes_own_ttl_reaches_get_list_snapshot_and_subscribers(hub: HubProcess) -> None:
    """set --ttl 30 (or a txn op's ttl): the item and the published change carry ttl 30; an unset carries none."""
    with hub.client() as client, client.subscribe("svc.") as subscription:
        assert isinstance(subscription.next_event(5), Synced)
        client.set("svc.pumpd.alive", True, ttl=30)
        client.txn([Op(op="set", key="svc.txn", value=1, ttl=45.5), Op(op="set", key="svc.plain", value=2)])
        client.unset("svc.plain")
        events = collect(subscription, lambda evs: any(c.op == "unset" for c in changes_of(evs, "svc.plain")))
        assert client.get("svc.pumpd.alive").item.ttl == 30.0
        assert client.get("svc.txn").item.ttl == 45.5
        assert {item.key: item.ttl for item in client.list("svc.").items} == {"svc.pumpd.alive": 30.0, "svc.txn": 45.5}
        assert {item.key: item.ttl for item in client.snapshot("svc.").items} == {"svc.pumpd.alive": 30.0, "svc.txn": 45.5}
    [alive] = changes_of(events, "svc.pumpd.alive")
    [in_txn] = changes_of(events, "svc.txn")
    plain_set, plain_unset = changes_of(events, "svc.plain")
    assert (alive.ttl, in_txn.ttl, plain_set.ttl, plain_unset.ttl) == (30.0, 45.5, None, None)


def test_a_schema_ttl_reaches_items_and_changes_and_a_writes_own_wins(hub: HubProcess) -> None:
    """A key whose rule has a ttl shows the rule's; a write's own ttl is shown instead; the unset shows none."""
    with hub.client() as client, client.subscribe("svc.") as subscription:
        assert isinstance(subscription.next_event(5), Synced)
        client.set("statehub.schema", LONG_TTL_SCHEMA)
        client.set("svc.a.beat", 1)
        client.set("svc.b.beat", 2, ttl=5)
        client.set("svc.other", 3)
        client.unset("svc.a.beat")
        events = collect(subscription, lambda evs: any(c.op == "unset" for c in changes_of(evs, "svc.a.beat")))
        items = {item.key: item.ttl for item in client.list("svc.").items}
        assert client.get("svc.b.beat").item.ttl == 5.0
    assert items == {"svc.b.beat": 5.0, "svc.other": None}
    assert [c.ttl for c in changes_of(events, "svc.a.beat")] == [600.0, None]
    assert [c.ttl for c in changes_of(events, "svc.b.beat")] == [5.0]
    assert [c.ttl for c in changes_of(events, "svc.other")] == [None]


def test_a_schema_change_gives_items_the_new_rules_ttl(hub: HubProcess) -> None:
    """Items read after the schema changes show the new rule's ttl (the hub does not serve a stale schema)."""
    with hub.client() as client:
        client.set("svc.a.beat", 1)
        assert client.get("svc.a.beat").item.ttl is None
        client.set("statehub.schema", LONG_TTL_SCHEMA)
        assert client.get("svc.a.beat").item.ttl == 600.0
        client.set("statehub.schema", LONG_TTL_SCHEMA.replace("ttl = 600", "ttl = 900"))
        assert client.get("svc.a.beat").item.ttl == 900.0
        client.unset("statehub.schema")
        assert client.get("svc.a.beat").item.ttl is None


def test_the_feed_and_past_reads_carry_the_ttl_a_change_was_published_with(hub: HubProcess) -> None:
    """History keeps a set's ttl: a page of the feed and a read at a past revision show it as the stream did."""
    with hub.client() as client:
        first = client.set("svc.a", 1, ttl=30).rev
        client.set("svc.a", 2)
        client.unset("svc.a")
        page = client.changes(first - 1, prefix="svc.")
        assert [(c.op, c.ttl) for c in page.changes] == [("set", 30.0), ("set", None), ("unset", None)]
        assert client.get("svc.a", at_rev=first).item.ttl == 30.0
        assert client.get("svc.a", at_rev=first + 1).item.ttl is None


def test_a_resumed_subscriber_replays_changes_with_their_ttl(hub: HubProcess) -> None:
    """A subscriber resuming from a revision gets the missed changes from history, ttl included."""
    with hub.client() as client:
        start = client.set("svc.start", 0).rev
        client.set("svc.a", 1, ttl=30)
        epoch = client.status().epoch
        with client.subscribe("svc.", since=(epoch, start)) as subscription:
            events = collect(subscription, lambda evs: bool(changes_of(evs, "svc.a")))
    [replayed] = changes_of(events, "svc.a")
    assert replayed.ttl == 30.0


def test_a_ttl_goes_on_the_wire_as_a_float_even_when_the_rule_wrote_an_integer(tmp_path: Path) -> None:
    """A rule's `ttl = 600` and a write's ttl=30 (ints) reach the item and the change as float64, as the wire says."""
    from statehub.hub.publisher import changed_message
    from statehub.hub.replies import item
    from statehub.hub.store import Store, StoreView

    store = Store(tmp_path / "state.db")
    try:
        store.commit_one(Set(v=1, key="statehub.schema", value=LONG_TTL_SCHEMA))
        by_rule = store.commit_one(Set(v=1, key="svc.a.beat", value=1)).changes[0]
        own = store.commit_one(Set(v=1, key="svc.b", value=1, ttl=30)).changes[0]
        view = StoreView(store)
        try:
            items = [item(view.entry(key), view.ttl_rules()) for key in ("svc.a.beat", "svc.b")]
        finally:
            view.close()
    finally:
        store.close()
    float64 = {600.0: b"\xa3ttl\xcb" + struct.pack(">d", 600.0), 30.0: b"\xa3ttl\xcb" + struct.pack(">d", 30.0)}
    for message, ttl in [
        (changed_message("e", by_rule), 600.0),
        (changed_message("e", own), 30.0),
        (items[0], 600.0),
        (items[1], 30.0),
    ]:
        assert float64[ttl] in msgspec.msgpack.encode(message)


def test_a_bad_ttl_is_refused_naming_it() -> None:
    """A ttl must be seconds > 0 on a set: zero, negative, not a number, or on an unset, is refused."""
    from statehub.hub.protocol import Txn
    from statehub.hub.rules import check_write

    with pytest.raises(InvalidRequest, match=r"invalid ttl for 'a': expected seconds > 0, got 0"):
        check_write(Set(v=1, key="a", value=1, ttl=0))
    with pytest.raises(InvalidRequest, match="a ttl goes with a set, not with the unset of 'a'"):
        check_write(Txn(v=1, ops=[Op(op="unset", key="a", ttl=5)]))


def change(rev: int, key: str, op: str = "set", ttl: float | None = 1.0) -> Applied:
    return Applied(rev=rev, changes=[Change(rev, 0, 1, key, op, b"", None, 0, 0.0, "", "", ttl=ttl)])  # type: ignore[arg-type]


def test_the_tracker_pops_only_what_is_due_and_skips_keys_written_since() -> None:
    """The heap gives a key once when due; a key written or unset since its entry is not given."""
    live = Liveness()
    live.observe([change(1, "a"), change(2, "b"), change(3, "c", ttl=5.0)], now=0.0)
    live.observe([change(4, "b", ttl=1.0)], now=0.5)  # written again: its deadline moves to 1.5
    live.observe([change(5, "c", op="unset", ttl=None)], now=0.6)
    assert live.due(0.9) == []
    assert live.due(1.0) == [("a", 1)]
    assert live.due(1.2) == []  # "a" is being expired: not given twice
    assert live.due(1.5) == [("b", 4)]
    assert live.due(100.0) == []  # "c" was unset
    assert len(live) == 2


def test_a_restart_tracks_every_key_from_the_start_and_a_schema_change_keeps_the_start() -> None:
    """track_all starts unknown keys now and keeps the start of a key tracked at the same revision."""
    live = Liveness()
    live.track_all([("a", 1, 10.0)], now=100.0)
    live.track_all([("a", 1, 2.0), ("b", 7, 2.0)], now=101.0)  # a schema change shortened a's ttl
    assert live.due(102.0) == [("a", 1)]
    assert live.due(103.0) == [("b", 7)]
