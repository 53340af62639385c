"""The batch request and the backfill flag, against real hub processes and real SQLite stores."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from statehub import ConflictError, InvalidRequest, Op
from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import (
    MAX_BATCH_OPS,
    MAX_BATCH_WRITES,
    Batch,
    BatchCommitted,
    BatchWrite,
    Changed,
    Txn,
    reply_decoder,
)
from statehub.hub.rules import check_batch
from statehub.hub.store import Store
from statehub.hub.store_file import MIGRATIONS, SCHEMA_VERSION
from statehub.subscription import Update
from statehub.testing import HubProcess

from .test_hub import collect, raw_request


def readings(key: str, values: list[float]) -> list[list[Op]]:
    """One write per value, each setting ``key``: what a replay of one point sends."""
    return [[Op(op="set", key=key, value={"value": value})] for value in values]


def test_a_batch_gives_each_write_its_own_revision_in_one_transaction(hub: HubProcess) -> None:
    """Every write of a batch gets its own revision, in order, and the whole batch costs one commit."""
    with hub.client() as client:
        client.set("other", 1)
        before = client.status()
        reply = client.batch(readings("eds.stiles.FI-405/415", [1.0, 2.0, 3.0, 4.0]))
        after = client.status()
        history = client.history("eds.stiles.FI-405/415")
        item = client.get("eds.stiles.FI-405/415").item
    assert reply.revs == [2, 3, 4, 5] and not reply.duplicate
    assert (item.rev, item.created_rev, item.value) == (5, 2, {"value": 4.0})
    assert after.rev == 5
    assert after.commits - before.commits == 1
    assert [(v.rev, v.value) for v in history] == [
        (5, {"value": 4.0}),
        (4, {"value": 3.0}),
        (3, {"value": 2.0}),
        (2, {"value": 1.0}),
    ]
    assert [v.prev_rev for v in history] == [4, 3, 2, 0]


def test_a_refused_write_applies_none_of_the_batch_and_is_named(hub: HubProcess) -> None:
    """A failed condition in write 2 refuses the whole batch: nothing changes and the message names the write."""
    with hub.client() as client:
        client.set("a", 1)
        writes = [
            [Op(op="set", key="a", value=2, expect=1)],
            [Op(op="set", key="b", value=2)],
            [Op(op="set", key="b", value=3, expect=99)],
            [Op(op="set", key="c", value=4)],
        ]
        with pytest.raises(ConflictError) as refused:
            client.batch(writes)
        assert refused.value.message.startswith("write 2 of the batch (none was applied): conflict on 'b'")
        assert client.status().rev == 1
        assert client.get("a").item.value == 1
        assert [item.key for item in client.list().items] == ["a"]
        # The revisions a refused batch would have used are used by the next write.
        assert client.set("d", 5).rev == 2


def test_a_repeated_batch_is_answered_with_its_revisions_and_applied_once(hub: HubProcess) -> None:
    """Retrying a batch with its request id returns the original revisions as a duplicate and applies nothing."""
    endpoint = read_hub_info(Layout(hub.data_dir)).rpc
    batch = Batch(
        v=1, writes=[BatchWrite(ops=ops) for ops in readings("k", [1.0, 2.0, 3.0])], request_id="b-7"
    )
    body = msgspec.msgpack.encode(batch)
    first = reply_decoder().decode(raw_request(endpoint, [b"", body]))
    second = reply_decoder().decode(raw_request(endpoint, [b"", body]))
    assert isinstance(first, BatchCommitted) and isinstance(second, BatchCommitted)
    assert (first.revs, first.duplicate) == ([1, 2, 3], False)
    assert (second.revs, second.duplicate) == ([1, 2, 3], True)
    with hub.client() as client:
        assert client.status().rev == 3


def test_subscribers_see_every_revision_of_a_batch_marked_as_backfill(hub: HubProcess) -> None:
    """A backfilled batch reaches subscribers as one update per revision, in order, each flagged backfill."""
    with hub.client() as client, client.subscribe("eds.") as subscription:
        collect(subscription, lambda events: bool(events))
        client.batch(readings("eds.maxson.M100FI", [10.0, 11.0, 12.0]), backfill=True)
        client.txn([Op(op="set", key="eds.maxson.M100FI", value={"value": 13.0})])
        events = collect(subscription, lambda events: sum(isinstance(e, Update) for e in events) >= 4)
    updates = [e for e in events if isinstance(e, Update)]
    assert [(u.rev, u.changes[0].value["value"], u.changes[0].backfill) for u in updates] == [
        (1, 10.0, True),
        (2, 11.0, True),
        (3, 12.0, True),
        (4, 13.0, False),
    ]


def test_history_remembers_which_changes_were_backfill(hub: HubProcess) -> None:
    """History versions carry the backfill flag of the write that made them."""
    with hub.client() as client:
        client.txn([Op(op="set", key="p", value=1)], backfill=True)
        client.txn([Op(op="set", key="p", value=2)])
        versions = client.history("p")
    assert [(v.value, v.backfill) for v in versions] == [(2, False), (1, True)]


@pytest.mark.parametrize(
    ("writes", "message"),
    [
        ([], "a batch needs at least one write"),
        (
            [[Op(op="set", key="k", value=i)] for i in range(MAX_BATCH_WRITES + 1)],
            f"limit of {MAX_BATCH_WRITES}",
        ),
        (
            [
                [Op(op="set", key=f"k{i}.{j}", value=j) for j in range(1000)]
                for i in range(MAX_BATCH_OPS // 1000 + 1)
            ],
            f"operations in all exceeds the limit of {MAX_BATCH_OPS}",
        ),
        (
            [[Op(op="set", key="ok", value=1)], [Op(op="set", key="bad..key", value=1)]],
            "write 1 of the batch: invalid key",
        ),
        (
            [[Op(op="set", key="k", value=1), Op(op="unset", key="k")]],
            "write 0 of the batch: key 'k' appears twice",
        ),
    ],
)
def test_a_batch_out_of_bounds_is_refused_naming_the_limit(writes: list[list[Op]], message: str) -> None:
    """Empty batches, too many writes or ops, and a bad write are refused before anything is sent."""
    batch = Batch(v=1, writes=[BatchWrite(ops=ops) for ops in writes])
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_batch(batch)


def test_the_hub_checks_a_batch_itself(hub: HubProcess) -> None:
    """A batch sent around the client's checks is refused by the hub with the same message."""
    endpoint = read_hub_info(Layout(hub.data_dir)).rpc
    batch = Batch(v=1, writes=[BatchWrite(ops=[Op(op="set", key="x..y", value=1)])])
    reply = reply_decoder().decode(raw_request(endpoint, [b"", msgspec.msgpack.encode(batch)]))
    assert reply.code == "invalid"
    assert reply.message.startswith("write 0 of the batch: invalid key 'x..y'")


def test_a_store_of_schema_1_is_migrated_and_keeps_its_history(tmp_path: Path) -> None:
    """Opening a store written before the backfill column adds it: old history reads as live, new writes keep the flag."""
    path = tmp_path / "state.db"
    first = Store(path)
    first.commit([Txn(v=1, ops=[Op(op="set", key="old", value=1)])])
    first.close()
    with closing(sqlite3.connect(path)) as conn, conn:  # what a statehub of schema 1 left behind
        conn.execute("ALTER TABLE history DROP COLUMN backfill")
        conn.execute("ALTER TABLE history DROP COLUMN origin")  # and what schema 3 added
        conn.execute("ALTER TABLE kv DROP COLUMN origin")
        conn.execute("ALTER TABLE kv DROP COLUMN ttl")  # added by schema 4
        conn.execute("ALTER TABLE history DROP COLUMN ttl")  # added by schema 5
        conn.execute("UPDATE meta SET value = 1 WHERE name = 'schema'")
    store = Store(path)
    store.commit([Txn(v=1, ops=[Op(op="set", key="old", value=2)], backfill=True)])
    store.commit([Txn(v=1, ops=[Op(op="set", key="old", value=3, ttl=30)])])
    assert [(c.rev, c.backfill, c.ttl) for c in store.history("old", 10)] == [
        (3, False, 30.0),
        (2, True, None),
        (1, False, None),
    ]
    assert store.meta("schema") == SCHEMA_VERSION == 1 + len(MIGRATIONS)


def test_a_store_from_a_newer_statehub_is_refused(tmp_path: Path) -> None:
    """A store whose schema is newer than this statehub's is refused at open, naming both numbers."""
    path = tmp_path / "state.db"
    Store(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (SCHEMA_VERSION + 1,))
    with pytest.raises(
        Exception, match=f"has schema {SCHEMA_VERSION + 1}; this statehub understands {SCHEMA_VERSION}"
    ):
        Store(path)


def test_a_big_backfill_batch_is_one_commit_in_the_store(tmp_path: Path) -> None:
    """The store applies a batch of 1000 writes in one call, each its own revision, history complete."""
    store = Store(tmp_path / "state.db")
    batch = Batch(
        v=1,
        writes=[BatchWrite(ops=ops) for ops in readings("eds.a.b", [float(i) for i in range(1000)])],
        backfill=True,
    )
    (result,) = store.commit([batch])
    assert not isinstance(result, Exception)
    assert result.revs == list(range(1, 1001))  # type: ignore[union-attr]
    history = store.history("eds.a.b", 2000)
    assert len(history) == 1000 and all(change.backfill for change in history)


def test_the_web_change_stream_marks_backfilled_changes() -> None:
    """A dashboard reading /api/events sees backfill: true on replayed changes, and no such field on live ones."""
    sse = pytest.importorskip("statehub.web.sse", reason="statehub[web] is not installed")
    replayed = Changed(epoch="e", rev=3, index=0, count=1, key="eds.a.b", op="set", time=1.0, value=1, backfill=True)
    live = Changed(epoch="e", rev=4, index=0, count=1, key="eds.a.b", op="set", time=2.0, value=2)
    assert sse.change_json(replayed)["backfill"] is True
    assert "backfill" not in sse.change_json(live)
