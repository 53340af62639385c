"""Regenerate tests/vectors/protocol.json, the golden vectors of the wire protocol.

Each vector is one message: its kind (request, reply or published), its meaning
as JSON, and its exact MessagePack bytes as hex.  The Python and Rust test suites
both decode every vector and compare it with its meaning, and encode the requests
and compare the bytes.  It also writes the mirror vector, and tests/vectors/sync.json,
the table of sync cases both replicas are held to (scripts/sync_cases.py).
Run this only when the protocol changes on purpose:

    python scripts/make_vectors.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sync_cases  # noqa: E402

from statehub.hub.protocol import (  # noqa: E402
    Batch,
    BatchCommitted,
    BatchWrite,
    Changed,
    ChangePage,
    Changes,
    Committed,
    ConflictDetail,
    Error,
    Get,
    Heartbeat,
    History,
    HubStatus,
    Item,
    Items,
    List,
    Op,
    Rotated,
    RotateKey,
    Set,
    SiteOrigin,
    Snapshot,
    Status,
    Txn,
    Unset,
    Version,
    Versions,
    Welcome,
)

T = 1795000000.25  # a fixed time so the bytes never change
E = "3f2a9c0d1e2b4a5f"


def vectors() -> list[tuple[str, str, msgspec.Struct]]:
    return [
        ("get", "request", Get(v=1, key="plant.rate")),
        ("get_reveal", "request", Get(v=1, key="eds.password", reveal=True)),
        ("snapshot_sealed", "request", Snapshot(v=1, prefix="eds.", sealed=True)),
        ("rotate_key", "request", RotateKey(v=1)),
        (
            "set_secret",
            "request",
            Set(v=1, key="eds.password", value="hunter2", secret="value", request_id="9b1d", source="cli", user="ana"),
        ),
        (
            "txn_sealed_secret",
            "request",
            Txn(
                v=1,
                ops=[Op(op="set", key="eds.password", value="gAAAAABtoken", expect=0, secret="sealed")],
                source="import",
            ),
        ),
        ("list_all", "request", List(v=1)),
        ("list_prefix", "request", List(v=1, prefix="plant.")),
        ("snapshot", "request", Snapshot(v=1, prefix="")),
        ("snapshot_at_rev", "request", Snapshot(v=1, prefix="plant.", at_rev=40)),
        ("history", "request", History(v=1, key="plant.rate", limit=10)),
        ("status", "request", Status(v=1)),
        (
            "set_int",
            "request",
            Set(v=1, key="plant.rate", value=30, request_id="9b1c", source="cli", user="ana"),
        ),
        ("set_expect_absent", "request", Set(v=1, key="plant.name", value="Maxson", expect=0)),
        (
            "set_nested",
            "request",
            Set(v=1, key="plant.limits", value={"high": 12.5, "low": -3, "tags": ["a", None, True]}),
        ),
        ("set_null", "request", Set(v=1, key="plant.note", value=None, expect=7)),
        ("unset", "request", Unset(v=1, key="plant.rate", expect=9, source="rust")),
        (
            "txn",
            "request",
            Txn(
                v=1,
                ops=[
                    Op(op="set", key="pump.1.speed", value=1450, expect=3),
                    Op(op="unset", key="pump.2.speed"),
                ],
                request_id="r-17",
                source="gui",
                user="bob",
            ),
        ),
        (
            "item",
            "reply",
            Item(key="plant.rate", value=30, rev=9, created_rev=4, time=T, source="gui", user="bob"),
        ),
        (
            "items",
            "reply",
            Items(
                epoch=E,
                rev=12,
                items=[Item(key="a.b", value=[1, 2.5, "x"], rev=12, created_rev=12, time=T)],
            ),
        ),
        ("items_empty", "reply", Items(epoch=E, rev=0, items=[])),
        (
            "versions",
            "reply",
            Versions(
                key="plant.rate",
                versions=[
                    Version(rev=9, op="set", value=30, prev_rev=6, prev_value=25, time=T, source="gui", user="bob"),
                    Version(rev=6, op="set", value=25, time=T, source="cli"),
                ],
            ),
        ),
        (
            "hub_status",
            "reply",
            HubStatus(
                version="0.1.0",
                protocol=1,
                epoch=E,
                rev=12,
                uptime=3.5,
                keys=2,
                pid=4242,
                data_dir="/var/lib/statehub",
                store="/var/lib/statehub/state.db",
                mirror="/var/lib/statehub/state.txt",
                endpoints={"rpc": "ipc:///var/lib/statehub/rpc.sock", "events": "ipc:///var/lib/statehub/events.sock"},
            ),
        ),
        ("committed", "reply", Committed(epoch=E, rev=13)),
        ("committed_duplicate", "reply", Committed(epoch=E, rev=13, duplicate=True)),
        ("error_invalid", "reply", Error(code="invalid", message="invalid key 'plant..rate': empty segment at position 6")),
        (
            "error_conflict",
            "reply",
            Error(
                code="conflict",
                message="conflict on 'plant.rate': you expected revision 7, it is at revision 9",
                conflicts=[
                    ConflictDetail(key="plant.rate", expected=7, rev=9, exists=True, value=30, time=T, source="gui", user="bob"),
                    ConflictDetail(key="plant.name", expected=3),
                ],
            ),
        ),
        (
            "changed_set",
            "published",
            Changed(epoch=E, rev=13, index=0, count=1, key="plant.rate", op="set", value=31, time=T, source="cli", user="ana"),
        ),
        (
            "changed_unset_in_txn",
            "published",
            Changed(epoch=E, rev=14, index=1, count=2, key="pump.2.speed", op="unset", time=T, source="gui"),
        ),
        (
            "changed_secret",
            "published",
            Changed(
                epoch=E, rev=15, index=0, count=1, key="eds.password", op="set", value="<secret>", time=T, secret=True
            ),
        ),
        (
            "changed_value_omitted",
            "published",
            Changed(epoch=E, rev=16, index=0, count=1, key="plant.table", op="set", time=T, value_omitted=True),
        ),
        (
            "changed_from_a_site",
            "published",
            Changed(
                epoch=E, rev=17, index=0, count=1, key="sites.north.plant.rate", op="set", value=31, time=T,
                source="follow-sites", user="statehub",
                origin=SiteOrigin(site="north", rev=41, time=T - 2.5, source="eds", user="ana"),
            ),  # fmt: skip
        ),
        (
            "item_from_a_site",
            "reply",
            Item(
                key="sites.north.plant.rate", value=31, rev=17, created_rev=2, time=T, source="follow-sites",
                origin=SiteOrigin(site="north", rev=41, time=T - 2.5),
            ),  # fmt: skip
        ),
        ("rotated", "reply", Rotated(secrets=2, versions=7)),
        (
            "batch_backfill",
            "request",
            Batch(
                v=1,
                writes=[
                    BatchWrite(
                        ops=[Op(op="set", key="eds.stiles.FI-405/415", value={"value": 12.5}, expect=0)]
                    ),
                    BatchWrite(ops=[Op(op="set", key="eds.stiles.FI-405/415", value={"value": 12.75})]),
                ],
                request_id="b-1",
                source="eds",
                backfill=True,
            ),
        ),
        (
            "txn_backfill",
            "request",
            Txn(v=1, ops=[Op(op="set", key="eds.maxson.M100FI", value=51.5)], source="eds", backfill=True),
        ),
        ("batch_committed", "reply", BatchCommitted(epoch=E, revs=[17, 18])),
        (
            "versions_backfill",
            "reply",
            Versions(
                key="eds.stiles.FI-405/415",
                versions=[
                    Version(
                        rev=18,
                        op="set",
                        value=12.75,
                        prev_rev=17,
                        prev_value=12.5,
                        time=T,
                        source="eds",
                        backfill=True,
                    )
                ],
            ),
        ),
        (
            "changed_backfill",
            "published",
            Changed(
                epoch=E,
                rev=18,
                index=0,
                count=1,
                key="eds.stiles.FI-405/415",
                op="set",
                value=12.75,
                time=T,
                source="eds",
                backfill=True,
            ),
        ),
        (
            "item_secret",
            "reply",
            Item(key="eds.password", value="<secret>", rev=15, created_rev=15, time=T, source="cli", secret=True),
        ),
        ("heartbeat", "published", Heartbeat(epoch=E, rev=14, time=T)),
        ("welcome", "published", Welcome(epoch=E, rev=14, topic="")),
        *feed_vectors(),
        *ttl_vectors(),
    ]


def ttl_vectors() -> list[tuple[str, str, msgspec.Struct]]:
    """Liveness: a write's ttl, and the ttl items and changes carry (always a float64); schema warnings."""
    return [
        ("set_ttl", "request", Set(v=1, key="svc.pumpd.alive", value=True, source="pumpd", ttl=30.0)),
        (
            "txn_ttl",
            "request",
            Txn(
                v=1,
                ops=[
                    Op(op="set", key="svc.pumpd.alive", value=True, ttl=30.0),
                    Op(op="set", key="svc.pumpd.pid", value=4242),
                ],
                source="pumpd",
            ),
        ),
        (
            "item_ttl",
            "reply",
            Item(key="svc.pumpd.alive", value=True, rev=21, created_rev=20, time=T, source="pumpd", ttl=30.0),
        ),
        (
            "changed_ttl",
            "published",
            Changed(
                epoch=E,
                rev=21,
                index=0,
                count=1,
                key="svc.pumpd.alive",
                op="set",
                value=True,
                time=T,
                source="pumpd",
                prev_rev=20,
                ttl=1.5,
            ),
        ),
        (
            "committed_warnings",
            "reply",
            Committed(
                epoch=E,
                rev=22,
                warnings=["unknown key 'eds.plant': not in the schema (accepted: unknown keys under 'eds.' only warn)"],
            ),
        ),
    ]


def feed_vectors() -> list[tuple[str, str, msgspec.Struct]]:
    """The change feed: pages after a revision, reads at a past revision, prev_rev on changes."""
    replaced = Changed(
        epoch=E, rev=17, index=0, count=1, key="plant.rate", op="set", value=32, time=T, source="cli", prev_rev=13
    )
    txn = [
        Changed(epoch=E, rev=18, index=0, count=2, key="pump.1.speed", op="set", value=1450, time=T, prev_rev=3),
        Changed(epoch=E, rev=18, index=1, count=2, key="pump.2.speed", op="unset", time=T, prev_rev=14),
    ]
    large = Changed(
        epoch=E, rev=19, index=0, count=1, key="plant.table", op="set", value={"rows": [1, 2, 3]}, time=T, prev_rev=16
    )
    return [
        ("changes", "request", Changes(v=1, after=16)),
        ("changes_prefix_limits", "request", Changes(v=1, after=16, prefix="pump.", limit=50, max_bytes=65536)),
        ("get_at_rev", "request", Get(v=1, key="plant.rate", at_rev=12)),
        ("changed_prev_rev", "published", replaced),
        (
            "change_page",
            "reply",
            ChangePage(epoch=E, after=16, last=18, head=19, oldest=1, changes=[replaced, *txn], more=True),
        ),
        ("change_page_last", "reply", ChangePage(epoch=E, after=18, last=19, head=19, oldest=1, changes=[large])),
        ("change_page_caught_up", "reply", ChangePage(epoch=E, after=19, last=19, head=19, oldest=1)),
        (
            "change_page_compacted",
            "reply",
            ChangePage(epoch=E, after=3, last=3, head=120000, oldest=20001, compacted=True),
        ),
    ]


def main() -> None:
    out = []
    for name, kind, message in vectors():
        data = msgspec.msgpack.encode(message)
        out.append(
            {
                "name": name,
                "kind": kind,
                "meaning": json.loads(msgspec.json.encode(message)),
                "msgpack": data.hex(),
            }
        )
    folder = Path(__file__).resolve().parent.parent / "tests" / "vectors"
    (folder / "protocol.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    write_mirror_vector(folder)
    cases = sync_cases.cases()
    sync = {"about": (sync_cases.__doc__ or "").strip(), "cases": cases}
    (folder / "sync.json").write_text(json.dumps(sync, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(out)} protocol vectors, a mirror vector and {len(cases)} sync cases to {folder}")


def write_mirror_vector(folder: Path) -> None:
    """A mirror file and what it means, for clients that read the mirror."""
    from statehub.hub.mirror import parse, render
    from statehub.hub.records import Entry

    encode = msgspec.msgpack.encode
    entries = [
        Entry("plant.name", encode("Maxson \"North\" # 1"), 3, 3, T, "cli", "ana"),
        Entry("plant.rate", encode(30.5), 9, 4, T + 60, "gui", "Jane Doe"),
        Entry("pump.1.tags", encode({"k": [1, None, True], "ü": "ø"}), 11, 11, T + 120, "", ""),
        # keys may hold '/' and '=': the line still splits at the first " = "
        Entry(
            "eds.stiles.FI-405/415", encode({"value": 12.75, "status": "good"}), 8, 5, T + 30, "eds", "ana"
        ),
        Entry("eds.maxson.FI-405/415=UNIT1-NET1", encode(13), 7, 7, T + 20, "eds", "ana"),
        # a secret: the mirror shows only its placeholder, marked secret=yes
        Entry("eds.password", encode(msgspec.msgpack.Ext(1, b"gAAAAAB-not-a-real-token")), 10, 10, T + 90, "cli", "ana"),
    ]
    text = render(E, 11, sorted(entries), T + 180)
    (folder / "mirror.txt").write_bytes(text)
    state = parse(text.decode())
    meaning = {
        "epoch": state.epoch,
        "rev": state.rev,
        "written": state.written,
        "items": [json.loads(msgspec.json.encode(item)) for item in state.items.values()],
    }
    (folder / "mirror.json").write_text(json.dumps(meaning, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
